"""yolox-export --to trt: every TensorRT call path, run against the labelled stand-in
``tensorrt`` (tests/tensorrt_fake, surface checked against the 10.x/11.x bindings), and GPU
checks that run where a GPU and TensorRT exist."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import tensorrt_fake

from yolox_deploy.artifacts.sidecar import sidecar_path
from yolox_deploy.artifacts.tensorrt_engines import Profile, read_engine_record
from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, ModelFileError, YoloxDeployError
from yolox_deploy.exporters import get_exporter
from yolox_deploy.exporters.onnx import export_onnx
from yolox_deploy.exporters.tensorrt import export_tensorrt
from yolox_deploy.runtimes import load_backend

VERSIONS = ("10.0.1", "10.13.0", "11.4.0")


def has_cuda_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(params=VERSIONS)
def trt(request, monkeypatch):
    return tensorrt_fake.install(monkeypatch, request.param)


@pytest.fixture(scope="module")
def calib_folder(tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(3)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (64 + 8 * i, 96, 3), dtype=np.uint8))
    return folder


def ort_reference(onnx_path, x):
    import onnxruntime as ort

    from yolox_deploy.runtimes.onnxruntime import fp32_session_options

    session = ort.InferenceSession(str(onnx_path), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def calls(trt, name):
    return [args for call, args in trt.calls if call == name]


@pytest.mark.parametrize("batch, onnx_batch, want", [
    (1, 1, Profile(1, 1, 1)), (4, None, Profile(4, 4, 4)), ((1, 8, 32), None, Profile(1, 8, 32)),
    ([2, 2, 2], 2, Profile(2, 2, 2)),
])
def test_profiles(batch, onnx_batch, want):
    assert Profile.parse(batch, onnx_batch) == want
    assert want.shapes((416, 416))[2] == (want.max, 3, 416, 416)


@pytest.mark.parametrize("batch, onnx_batch, message", [
    ((8, 1, 32), None, "1 <= MIN <= OPT <= MAX"), ((0, 1, 2), None, "1 <= MIN"), ((1, 2), None, "N or MIN OPT MAX"),
    ((1, 8, 32), 1, "static batch of 1"), (4, 1, "static batch of 1"),
])
def test_bad_profiles(batch, onnx_batch, message):
    with pytest.raises(YoloxDeployError, match=message):
        Profile.parse(batch, onnx_batch)


def test_static_batch_4_from_a_checkpoint_builds_strongly_typed_without_tf32(tmp_path, tiny_checkpoint, trt):
    """The review's first defect: --batch 4 never built (the ONNX was exported with batch 1)."""
    report = export_tensorrt(tmp_path / "m.engine", weights=tiny_checkpoint, input_size=(64, 96), batch=4)
    assert report.profile == Profile(4, 4, 4) and report.precision == "FP32"
    strongly_typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert calls(trt, "Builder.create_network") == [(strongly_typed,)]
    assert ("TF32",) in calls(trt, "IBuilderConfig.clear_flag") and not calls(trt, "IBuilderConfig.set_flag")
    assert calls(trt, "IOptimizationProfile.set_shape") == [("images", (4, 3, 64, 96), (4, 3, 64, 96), (4, 3, 64, 96))]
    record = read_engine_record(report.path)
    assert [(t.name, t.dtype, t.shape) for t in record.inputs] == [("images", "float32", (4, 3, 64, 96))]
    assert [t.name for t in record.outputs] == ["output"] and record.tensorrt_version == trt.__version__
    assert record.compute_capability == "9.0" and record.precision == "fp32"

    backend = load_backend(report.path)  # device defaults to cuda for this backend
    x = np.random.default_rng(0).uniform(0, 255, (4, 3, 64, 96)).astype(np.float32)
    onnx_path = tmp_path / "ref.onnx"
    export_onnx(onnx_path, weights=tiny_checkpoint, input_size=(64, 96), batch=4)
    np.testing.assert_allclose(backend.infer(x), ort_reference(onnx_path, x), atol=1e-5)
    assert backend.input_shape == (4, 3, 64, 96)


def test_dynamic_profile_every_batch_equals_batch_one(tmp_path, tiny_onnx, trt):
    report = export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, batch=(1, 2, 4))
    backend = load_backend(report.path, device="cuda:0")
    x = np.random.default_rng(1).uniform(0, 255, (4, 3, 64, 96)).astype(np.float32)
    singles = np.concatenate([backend.infer(x[i:i + 1]) for i in range(4)])
    for n in (1, 2, 3, 4):
        np.testing.assert_array_equal(backend.infer(x[:n]), singles[:n])
    np.testing.assert_allclose(singles, ort_reference(tiny_onnx, x), atol=1e-5)
    with pytest.raises(BackendUnavailableError, match=r"takes batches of 1\.\.4 \(its optimisation profile\), got 5"):
        backend.infer(np.concatenate([x, x[:1]]))
    assert backend.input_shape == (None, 3, 64, 96)


def test_half_builds_from_the_fp16_onnx(tmp_path, tiny_checkpoint, trt):
    report = export_tensorrt(tmp_path / "m.engine", weights=tiny_checkpoint, input_size=(64, 96), half=True)
    assert report.precision == "FP16" and read_engine_record(report.path).precision == "fp16"
    fp16 = tmp_path / "fp16.onnx"
    export_onnx(fp16, weights=tiny_checkpoint, input_size=(64, 96), half=True)
    x = np.random.default_rng(2).uniform(0, 255, (1, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(load_backend(report.path).infer(x), ort_reference(fp16, x), atol=1e-5)
    assert not calls(trt, "IBuilderConfig.set_flag")  # the ONNX carries the precision, no builder flag


def test_int8_builds_from_a_symmetric_qdq_onnx(tmp_path, tiny_onnx, calib_folder, trt):
    report = export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, int8=True, calib=calib_folder, batch=(1, 1, 2))
    assert report.precision == "INT8"
    qdq = tmp_path / "qdq.onnx"
    export_onnx(qdq, weights=tiny_onnx, int8=True, int8_symmetric=True, calib=calib_folder)
    x = np.random.default_rng(3).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(load_backend(report.path).infer(x), ort_reference(qdq, x), atol=1e-5)


def test_cpu_flavoured_qdq_is_refused_with_the_fix(tmp_path, tiny_onnx, calib_folder, trt):
    qdq = tmp_path / "cpu_int8.onnx"
    export_onnx(qdq, weights=tiny_onnx, int8=True, calib=calib_folder)  # uint8 activations, int32 biases
    with pytest.raises(YoloxDeployError, match=r"Q/DQ nodes TensorRT cannot build .* --int8-symmetric"):
        export_tensorrt(tmp_path / "m.engine", weights=qdq)
    assert not calls(trt, "Builder.build_serialized_network") and not (tmp_path / "m.engine").exists()


def test_precision_flags_against_an_already_reduced_onnx(tmp_path, tiny_checkpoint, trt):
    fp16 = tmp_path / "fp16.onnx"
    export_onnx(fp16, weights=tiny_checkpoint, input_size=(64, 96), half=True)
    with pytest.raises(YoloxDeployError, match="already FP16; --int8 converts an FP32 ONNX"):
        export_tensorrt(tmp_path / "m.engine", weights=fp16, int8=True, calib=tmp_path)
    assert export_tensorrt(tmp_path / "m.engine", weights=fp16, half=True).precision == "FP16"


def test_timing_cache_is_written_reused_and_replaced_when_foreign(tmp_path, tiny_onnx, trt, caplog):
    cache = tmp_path / "timing.cache"
    export_tensorrt(tmp_path / "a.engine", weights=tiny_onnx, timing_cache=cache)
    assert cache.read_bytes() == b"FAKECACHE:sm90"
    export_tensorrt(tmp_path / "b.engine", weights=tiny_onnx, timing_cache=cache)
    assert calls(trt, "IBuilderConfig.set_timing_cache")[-1] == ("sm90", False)
    cache.write_bytes(b"FAKECACHE:sm80")  # from another GPU: TensorRT refuses it
    export_tensorrt(tmp_path / "c.engine", weights=tiny_onnx, timing_cache=cache)
    assert "does not match this TensorRT/GPU; building with a new one" in caplog.text
    assert cache.read_bytes() == b"FAKECACHE:sm90" and (tmp_path / "c.engine").is_file()


def test_an_onnx_that_is_not_a_detector_is_refused(tmp_path, trt):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 64, 64]) for n in ("a", "b")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["x"], ["b"])],
                              "g", [x], outputs)
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelFileError, match="is not a YOLOX detector engine"):
        export_tensorrt(tmp_path / "m.engine", weights=path)
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"int8": True}, "--int8 needs --calib"),
    ({"half": True, "int8": True, "calib": "x"}, "choose --half or --int8"),
    ({"workspace_gib": 0}, "workspace must be > 0"),
    ({"batch": (1, 4, 2)}, "1 <= MIN <= OPT <= MAX"),
])
def test_export_argument_errors(tmp_path, tiny_onnx, kwargs, message):
    with pytest.raises(YoloxDeployError, match=message):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, **kwargs)


def test_batch_that_does_not_fit_the_onnx(tmp_path, nano_onnx, trt):
    with pytest.raises(YoloxDeployError, match="static batch of 1; a profile of 1 8 32 needs an ONNX exported "
                                               "with --dynamic"):
        export_tensorrt(tmp_path / "m.engine", weights=nano_onnx, batch=(1, 8, 32))


def test_version_gpu_and_install_errors(tmp_path, tiny_onnx, monkeypatch):
    assert get_exporter("trt") is get_exporter("engine") is export_tensorrt
    tensorrt_fake.install(monkeypatch, "8.6.1")
    with pytest.raises(BackendUnavailableError, match=r"needs TensorRT >= 10\.0 \(strongly typed networks, which an "
                                                      r"FP16 or Q/DQ INT8 ONNX builds as\), and TensorRT 8\.6\.1"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx)
    tensorrt_fake.install(monkeypatch, "10.13.0", gpus=0)
    with pytest.raises(BackendUnavailableError, match="TensorRT needs an NVIDIA GPU with CUDA, and none is visible"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx)
    tensorrt_fake.install(monkeypatch, "10.13.0", gpus=1)
    with pytest.raises(BackendUnavailableError, match=r"'cuda:1' asked for, and this machine has 1 GPU\(s\)"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, device="cuda:1")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[tensorrt\]'"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx)


def test_cli_batch_range_is_only_for_trt(tmp_path, tiny_checkpoint, capsys):
    from yolox_deploy.cli import export

    assert export.main(["--to", "onnx", "--weights", str(tiny_checkpoint), "--batch", "1", "4", "8",
                        "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--batch takes one size (or MIN OPT MAX with --to trt)" in capsys.readouterr().err


def test_cli_builds_an_engine(tmp_path, tiny_onnx, trt, capsys):
    from yolox_deploy.cli import export

    out = tmp_path / "cli.engine"
    assert export.main(["--to", "trt", "--weights", str(tiny_onnx), "--batch", "1", "2", "4", "-o", str(out)]) == 0
    assert f"batch 1/2/4) on Stand-in GPU sm90 (sm 9.0): {out}" in capsys.readouterr().out
    assert json.loads(sidecar_path(out).read_text())["format"] == "yolox_deploy.tensorrt/2"


# --- on a GPU with TensorRT (the issue "GPU checks when a GPU is lent" runs these) -------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda_tensorrt(), reason="needs an NVIDIA GPU and TensorRT")
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 5e-2), ("int8", 0.3)])
def test_engine_matches_onnxruntime_on_a_gpu(tmp_path, nano_pth, coco_images, coco_dir, precision,
                                             tolerance):  # pragma: no cover
    """Engine vs ONNX Runtime on the same ONNX artifact (FP32 / FP16 / symmetric Q/DQ), every
    batch size of a dynamic profile against batch 1, and COCO mAP within 0.01 of the ONNX's."""
    from yolox_deploy import Detector
    from yolox_deploy.evaluation import evaluate_coco
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    onnx_path = tmp_path / f"nano-{precision}.onnx"
    export_onnx(onnx_path, weights=nano_pth, dynamic=True, half=precision == "fp16", int8=precision == "int8",
                int8_symmetric=True, calib=coco_dir / "images" if precision == "int8" else None)
    report = export_tensorrt(tmp_path / f"nano-{precision}.engine", weights=onnx_path, batch=(1, 4, 8))
    backend = load_backend(report.path, device="cuda")
    x = np.stack([letterbox(read_image(p), (416, 416))[0] for p in coco_images[:8]])
    got, ref = backend.infer(x), ort_reference(onnx_path, x)
    assert np.abs(got - ref).max() < tolerance * max(1.0, float(np.abs(ref[..., :4]).max()) if precision == "int8" else 1.0)
    singles = np.concatenate([backend.infer(x[i:i + 1]) for i in range(8)])
    for n in range(1, 9):
        assert np.abs(backend.infer(x[:n]) - singles[:n]).max() < 1e-3
    ann = coco_dir / "instances_val2017.json"
    engine_map = evaluate_coco(Detector(report.path, conf=0.01, iou=0.65), coco_dir / "images", ann)["mAP50_95"]
    onnx_map = evaluate_coco(Detector(onnx_path, conf=0.01, iou=0.65), coco_dir / "images", ann)["mAP50_95"]
    assert abs(engine_map - onnx_map) < 0.01, (engine_map, onnx_map)


def test_a_missing_or_non_onnx_source_is_one_line(tmp_path, trt):
    (tmp_path / "bad.onnx").write_text("not a model")
    with pytest.raises(ModelFileError, match="bad.onnx is not an ONNX model"):
        export_tensorrt(tmp_path / "m.engine", weights=tmp_path / "bad.onnx")
    with pytest.raises(ModelFileError, match="model file not found"):
        export_tensorrt(tmp_path / "m.engine", weights=tmp_path / "missing.onnx")
