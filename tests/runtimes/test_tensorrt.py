"""The tensorrt backend and its engine cache, against the labelled stand-in ``tensorrt``
(tests/tensorrt_fake), whose surface is checked here against the list written from the real
10.x and 11.x bindings."""
from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import pytest
import tensorrt_fake
from tensorrt_fake.surface import ENUMS, FUNCTIONS, METHODS, REMOVED_IN_11

from yolox_deploy import Detector
from yolox_deploy.artifacts.sidecar import sidecar_path
from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, ModelFileError
from yolox_deploy.exporters.tensorrt import export_tensorrt
from yolox_deploy.runtimes import backend_for_path, load_backend


@pytest.mark.parametrize("version", ["10.13.0", "11.4.0"])
def test_the_fake_has_exactly_the_surface_written_from_the_bindings(version):
    trt = tensorrt_fake.make_tensorrt(version)
    major = int(version.split(".")[0])
    for cls_name, methods in METHODS.items():
        cls = getattr(trt, cls_name)
        for method, params in methods.items():
            member = inspect.getattr_static(cls, method)
            if params is None:
                assert isinstance(member, property), (cls_name, method)
                continue
            got = [p for p in inspect.signature(member).parameters if p != "self"]
            assert tuple(got) == params, (cls_name, method, got)
        extra = {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v) or isinstance(v, property)}
        allowed = set(methods) | (set(REMOVED_IN_11.get(cls_name, ())) if major < 11 else set())
        assert extra <= allowed, (cls_name, extra - allowed)
    for enum_name, members in ENUMS[major].items():
        assert {m: int(v) for m, v in getattr(trt, enum_name).__members__.items()} == members, enum_name
    for function, params in FUNCTIONS.items():
        assert tuple(inspect.signature(getattr(trt, function)).parameters) == params
    # the values the bindings give (NvInfer.h): a shifted value would build another network
    assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1 and int(trt.BuilderFlag.TF32) == 6
    assert int(trt.NetworkDefinitionCreationFlag.PREFER_JIT_PYTHON_PLUGINS) == 2 and int(trt.DataType.E8M0) == 11
    assert hasattr(trt.BuilderFlag, "DIRECT_IO")  # deprecated, still bound in 11.1
    if major >= 11:
        for name in REMOVED_IN_11["module"]:
            assert not hasattr(trt, name)
        assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.BuilderFlag, "INT8")
        assert not hasattr(trt.IBuilderConfig, "int8_calibrator")
        assert not hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")


@pytest.fixture
def trt(monkeypatch):
    return tensorrt_fake.install(monkeypatch, "10.13.0")


@pytest.fixture
def engine(tmp_path, tiny_onnx, trt):
    return export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, batch=(1, 2, 4)).path


def test_detector_on_an_engine_equals_onnxruntime(engine, tiny_onnx):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (60 + 10 * i, 100, 3), dtype=np.uint8) for i in range(3)]
    with Detector(engine, conf=0.0) as trt_det, Detector(tiny_onnx, conf=0.0) as ort_det:
        for image in images:
            a, b = trt_det(image), ort_det(image)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
        assert trt_det.class_names == ("cat", "dog", "bird")


def test_engine_from_another_tensorrt_or_gpu_is_refused_in_one_line(engine, monkeypatch):
    assert backend_for_path(engine) == "tensorrt" and backend_for_path(engine.with_suffix(".plan")) == "tensorrt"
    tensorrt_fake.install(monkeypatch, "10.14.1")
    with pytest.raises(ModelFileError, match=r"m.engine was built with TensorRT 10.13.0, this is TensorRT 10.14.1 "
                                             r"\(engines only run on the version that built them\); rebuild it here"):
        load_backend(engine)
    tensorrt_fake.install(monkeypatch, "10.13.0", capability=(8, 6))
    with pytest.raises(ModelFileError, match=r"was built for compute capability 9.0 \(Stand-in GPU sm90\), this GPU "
                                             r"is 8.6 \(Stand-in GPU sm86\)"):
        load_backend(engine)


def test_runtime_checks_io_against_the_sidecar(engine, trt):
    sidecar = json.loads(sidecar_path(engine).read_text())
    sidecar["outputs"][0]["name"] = "detections"
    sidecar_path(engine).write_text(json.dumps(sidecar))
    with pytest.raises(ModelFileError, match=r"I/O \['images', 'output'\] differs from its sidecar's "
                                             r"\['images', 'detections'\]; rebuild"):
        load_backend(engine)
    sidecar["outputs"][0]["name"] = "output"
    sidecar["outputs"][0]["dtype"] = "float16"  # an FP16-I/O engine described as FP32, or the reverse
    sidecar_path(engine).write_text(json.dumps(sidecar))
    with pytest.raises(ModelFileError, match="differs from its sidecar"):
        load_backend(engine)


def test_corrupt_engine_and_missing_sidecar(tmp_path, engine, trt):
    engine.write_bytes(b"not an engine")
    with pytest.raises(ModelFileError, match="TensorRT could not deserialize m.engine"):
        load_backend(engine)
    lonely = tmp_path / "lonely.engine"
    lonely.write_bytes(b"x")
    with pytest.raises(ModelFileError, match="has no sidecar lonely.json"):
        load_backend(lonely)
    old = tmp_path / "old.engine"
    old.write_bytes(b"x")
    sidecar_path(old).write_text('{"format": "yolox_deploy.tensorrt/1"}')
    with pytest.raises(ModelFileError, match="expected 'yolox_deploy.tensorrt/2'"):
        load_backend(old)


def test_device_index_is_used(engine, monkeypatch):
    tensorrt_fake.install(monkeypatch, "10.13.0", gpus=2)
    import yolox_deploy.runtimes.tensorrt as backend_module

    seen = []
    monkeypatch.setattr(backend_module, "memory_for",
                        lambda torch, index: seen.append(index) or tensorrt_fake.HostMemory(torch, index))
    load_backend(engine, device="cuda:1")
    assert seen == [1]
    with pytest.raises(BackendUnavailableError, match="use device='cuda' or 'cuda:N', not 'gpu'"):
        load_backend(engine, device="gpu")
    with pytest.raises(BackendUnavailableError, match=r"runs on a GPU: use device='cuda' \(or 'cuda:N'\)"):
        load_backend(engine, device="cpu")


def test_buffers_are_allocated_once_at_the_profile_maximum(engine, trt, monkeypatch):
    import yolox_deploy.runtimes.tensorrt as backend_module

    shapes = []

    class Counting(tensorrt_fake.HostMemory):
        def device_empty(self, shape, dtype):
            shapes.append(tuple(shape))
            return super().device_empty(shape, dtype)

        host_empty = device_empty

    monkeypatch.setattr(backend_module, "memory_for", Counting)
    backend = load_backend(engine)
    x = np.random.default_rng(4).uniform(0, 255, (4, 3, 64, 96)).astype(np.float32)
    for n in (1, 3, 2, 4, 1):
        backend.infer(x[:n])
    assert sorted(shapes) == sorted([(4, 3, 64, 96)] * 2 + [(4, 126, 8)] * 2)


def test_no_tensorrt_or_no_gpu(engine, monkeypatch):
    tensorrt_fake.install(monkeypatch, "10.13.0", gpus=0)
    with pytest.raises(BackendUnavailableError, match="TensorRT needs an NVIDIA GPU with CUDA, and none is visible"):
        load_backend(engine)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendNotInstalledError, match=r"yolox-deploy\[tensorrt\]"):
        load_backend(engine)


# --- engine cache: Detector("m.onnx", backend="tensorrt") ------------------------------------------------------


def builds(trt):
    return sum(1 for name, _ in trt.calls if name == "Builder.build_serialized_network")


def test_onnx_builds_once_then_loads_from_the_cache(tmp_path, tiny_onnx, trt, monkeypatch):
    monkeypatch.setenv("YOLOX_DEPLOY_CACHE", str(tmp_path / "cache"))
    image = np.random.default_rng(5).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    with Detector(tiny_onnx, backend="tensorrt", conf=0.0) as first:
        got = first(image)
    assert builds(trt) == 1
    cached = sorted((tmp_path / "cache" / "tensorrt").glob("*.engine"))
    assert [p.name.split("-", 2)[2] for p in cached] == ["trt10.13.0-stand-in-gpu-sm90-sm90-fp32-b1_1_8.engine"]
    with Detector(tiny_onnx, backend="tensorrt", conf=0.0) as second:
        np.testing.assert_array_equal(second(image).xyxy, got.xyxy)
    assert builds(trt) == 1  # loaded, not rebuilt
    with Detector(tiny_onnx, backend="tensorrt", batch=(1, 2, 4), engine_cache=tmp_path / "mine"):
        pass
    assert builds(trt) == 2 and len(list((tmp_path / "mine").glob("*-b1_2_4.engine"))) == 1
    with Detector(tiny_onnx, conf=0.0) as ort_det:
        np.testing.assert_allclose(got.xyxy, ort_det(image).xyxy, atol=1e-3)


def test_a_stale_cache_entry_is_rebuilt_never_loaded(tmp_path, tiny_onnx, trt, caplog):
    load_backend(tiny_onnx, backend="tensorrt", engine_cache=tmp_path)
    (path,) = tmp_path.glob("*.engine")
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar["onnx_sha256"] = "0" * 64  # e.g. a file copied over the entry, or half-replaced
    sidecar_path(path).write_text(json.dumps(sidecar))
    load_backend(tiny_onnx, backend="tensorrt", engine_cache=tmp_path)
    assert builds(trt) == 2 and "is stale (its sidecar describes another ONNX" in caplog.text
    assert json.loads(sidecar_path(path).read_text())["onnx_sha256"] != "0" * 64


def test_new_tensorrt_or_gpu_gets_its_own_entry(tmp_path, tiny_onnx, monkeypatch):
    trt = tensorrt_fake.install(monkeypatch, "10.13.0")
    load_backend(tiny_onnx, backend="tensorrt", engine_cache=tmp_path)
    trt = tensorrt_fake.install(monkeypatch, "11.4.0", capability=(10, 0))
    load_backend(tiny_onnx, backend="tensorrt", engine_cache=tmp_path)
    assert builds(trt) == 1
    assert sorted(p.name.split("-", 2)[2] for p in tmp_path.glob("*.engine")) == [
        "trt10.13.0-stand-in-gpu-sm90-sm90-fp32-b1_1_8.engine", "trt11.4.0-stand-in-gpu-sm100-sm100-fp32-b1_1_8.engine"]


def test_cache_folder_that_cannot_be_written(tmp_path, tiny_onnx, trt):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception, match="cannot write the engine cache .* pass engine_cache= a writable folder"):
        load_backend(tiny_onnx, backend="tensorrt", engine_cache=blocker / "sub")


def test_torch_cuda_graph_replay_holds_a_lock():
    """Capture, copy-in, replay and read-back share static buffers: one thread at a time."""
    import threading

    from yolox_deploy.runtimes.torch import TorchBackend

    backend = TorchBackend.__new__(TorchBackend)
    backend._graph_lock = threading.Lock()
    inside, overlaps = [0], []

    class Graph:
        def replay(self):
            inside[0] += 1
            overlaps.append(inside[0])
            threading.Event().wait(0.005)
            inside[0] -= 1

    class Tensor:
        def copy_(self, other):
            return self

        def float(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return np.zeros(1)

    class FakeTorch:
        @staticmethod
        def inference_mode():
            import contextlib

            return contextlib.nullcontext()

    backend._torch = FakeTorch
    backend._graphs = {(1,): (Graph(), Tensor(), Tensor())}
    backend._to_device = lambda batch: Tensor()
    threads = [threading.Thread(target=backend._run_graph, args=(np.zeros(1),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1] * 8


def test_an_engine_with_fp16_io_is_fed_and_read_in_its_dtype(tmp_path, tiny_onnx, trt):
    """An engine whose input and output are FP16 (e.g. built from an ONNX converted without
    keep_io_types): the backend allocates FP16 buffers from the engine's own dtypes instead of
    reading FP16 bytes as float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from yolox_deploy.exporters.quantize import topologically_sorted

    half_io = tmp_path / "half_io.onnx"
    onnx.save(topologically_sorted(convert_float_to_float16(onnx.load(str(tiny_onnx)), keep_io_types=False)),
              str(half_io))
    engine = export_tensorrt(tmp_path / "h.engine", weights=half_io, batch=(1, 1, 2)).path
    record = json.loads(sidecar_path(engine).read_text())
    assert record["inputs"][0]["dtype"] == "float16" and record["outputs"][0]["dtype"] == "float16"
    x = np.random.default_rng(6).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    got = load_backend(engine).infer(x)
    import onnxruntime as ort

    session = ort.InferenceSession(str(half_io), providers=["CPUExecutionProvider"])
    want = session.run(None, {"images": x.astype(np.float16)})[0].astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-2)
