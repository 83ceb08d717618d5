"""Triton: the generated repository against Triton's schema and layout, and the clients
against a KServe v2 stand-in server that runs that repository."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("tritonclient.http")
mc = pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402
from kserve_standin import StandInTriton  # noqa: E402  (tests/integrations is on sys.path)

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, YoloxDeployError  # noqa: E402
from yolox_deploy.exporters.triton import export_triton  # noqa: E402
from yolox_deploy.integrations.triton import TritonDetectionClient  # noqa: E402


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, tiny_checkpoint):
    repo = tmp_path_factory.mktemp("triton") / "repo"
    export_triton(repo, weights=tiny_checkpoint, input_size=(64, 96), class_names=["cat", "dog", "bird"],
                  max_batch=4, instances=2, conf=0.05, max_det=20)
    return repo


@pytest.fixture(scope="module")
def tiny_server(tiny_repo):
    url, server = StandInTriton(tiny_repo).serve()
    assert server.server_address[0] == "127.0.0.1" and url.startswith("127.0.0.1:")  # loopback only
    yield url
    server.shutdown()


def parse(path) -> "mc.ModelConfig":
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def test_repository_layout_matches_tritons_documentation(tiny_repo):
    files = sorted(str(p.relative_to(tiny_repo)) for p in tiny_repo.rglob("*"))
    assert files == ["yolox", "yolox/1", "yolox/config.pbtxt",
                     "yolox_onnx", "yolox_onnx/1", "yolox_onnx/1/model.onnx", "yolox_onnx/config.pbtxt",
                     "yolox_postprocess", "yolox_postprocess/1", "yolox_postprocess/1/model.py",
                     "yolox_postprocess/config.pbtxt"]


def test_every_config_parses_as_tritons_model_config(tiny_repo):
    raw = parse(tiny_repo / "yolox_onnx" / "config.pbtxt")
    assert raw.name == "yolox_onnx" and raw.platform == "onnxruntime_onnx" and raw.max_batch_size == 4
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in raw.input] == [
        ("images", "TYPE_FP32", [3, 64, 96])]
    assert [(o.name, list(o.dims)) for o in raw.output] == [("output", [126, 8])]
    assert raw.HasField("dynamic_batching") and raw.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.count, mc.ModelInstanceGroup.Kind.Name(g.kind)) for g in raw.instance_group] == [(2, "KIND_CPU")]
    post = parse(tiny_repo / "yolox_postprocess" / "config.pbtxt")
    assert post.backend == "python" and [i.name for i in post.input] == ["raw", "ratio", "image_hw"]
    assert post.parameters["conf"].string_value == "0.05" and post.parameters["max_det"].string_value == "20"
    ensemble = parse(tiny_repo / "yolox" / "config.pbtxt")
    assert ensemble.platform == "ensemble" and ensemble.max_batch_size == 4
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["yolox_onnx", "yolox_postprocess"]
    available = {i.name for i in ensemble.input}
    for step, config in zip(steps, (raw, post)):  # every step reads only what exists, with the right names
        assert set(step.input_map) == {i.name for i in config.input} and set(step.input_map.values()) <= available
        assert set(step.output_map) <= {o.name for o in config.output}
        available |= set(step.output_map.values())
    assert {o.name for o in ensemble.output} <= available
    assert ensemble.parameters["yolox_deploy.class_names"].string_value == '["cat", "dog", "bird"]'


def test_detector_on_triton_equals_detector_on_the_onnx(tiny_repo, tiny_server):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (50 + 9 * i, 80 - 4 * i, 3), dtype=np.uint8) for i in range(6)]
    local = Detector(tiny_repo / "yolox_onnx" / "1" / "model.onnx", conf=0.05, input_size=(64, 96))
    remote = Detector("yolox", backend="triton", url=tiny_server, conf=0.05, batch_size=4)
    assert remote.backend.model_name == "yolox_onnx" and remote.class_names == ("cat", "dog", "bird")
    want, got = local(images), remote(images)
    assert sum(len(w) for w in want) > 0
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g.xyxy, w.xyxy)
        np.testing.assert_array_equal(g.scores, w.scores)
        assert g.class_names == w.class_names


def test_ensemble_client_receives_the_same_detections(tiny_repo, tiny_server):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (60, 70 + 5 * i, 3), dtype=np.uint8) for i in range(3)]
    want = Detector(tiny_repo / "yolox_onnx" / "1" / "model.onnx", conf=0.05, max_det=20)(images)
    got = TritonDetectionClient(tiny_server, "yolox")(images)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g.xyxy, w.xyxy)
        np.testing.assert_array_equal(g.class_ids, w.class_ids)
        assert g.class_names == w.class_names and g.image_size == w.image_size


def test_triton_errors(tiny_server, tiny_checkpoint, tmp_path, monkeypatch):
    with pytest.raises(BackendUnavailableError, match="cannot get model 'nope' from Triton at"):
        Detector("nope", backend="triton", url=tiny_server)
    with pytest.raises(BackendUnavailableError, match="cannot get model 'yolox' from Triton at 127.0.0.1:9"):
        Detector("yolox", backend="triton", url="127.0.0.1:9", timeout_s=2)
    with pytest.raises(YoloxDeployError, match="static batch of 1: export it with --dynamic"):
        onnx = tmp_path / "static.onnx"
        from yolox_deploy.exporters.onnx import export_onnx

        export_onnx(onnx, weights=tiny_checkpoint, input_size=(64, 96))
        export_triton(tmp_path / "repo", weights=onnx)
    export_triton(tmp_path / "repo0", weights=onnx, max_batch=0)  # no batching: static ONNX is fine
    assert parse(tmp_path / "repo0" / "yolox_onnx" / "config.pbtxt").input[0].dims == [1, 3, 64, 96]
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[triton\]'"):
        Detector("yolox", backend="triton", url=tiny_server)


def test_one_detector_and_one_ensemble_client_serve_many_threads(tiny_repo, tiny_server):
    """tritonclient's HTTP client may only be used from the thread that made it ('Cannot switch to
    a different thread' once the server keeps connections alive, as the stand-in now does):
    both clients keep one per thread, so sharing them across threads and streaming work."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (60, 70 + 5 * i, 3), dtype=np.uint8) for i in range(4)]
    local = Detector(tiny_repo / "yolox_onnx" / "1" / "model.onnx", conf=0.05, max_det=20)
    want = [local(image) for image in images]
    with Detector("yolox", backend="triton", url=tiny_server, conf=0.05, max_det=20) as remote, \
            TritonDetectionClient(tiny_server, "yolox") as ensemble:
        def calls(worker: int) -> list[tuple[int, object, object]]:
            return [(k % 4, remote(images[k % 4]), ensemble([images[k % 4]])[0]) for k in range(worker, worker + 25)]

        with ThreadPoolExecutor(8) as pool:
            results = [r for batch in pool.map(calls, range(8)) for r in batch]
        assert len(results) == 200
        for index, from_raw, from_ensemble in results:
            for got in (from_raw, from_ensemble):
                np.testing.assert_array_equal(got.xyxy, want[index].xyxy)
                np.testing.assert_array_equal(got.class_ids, want[index].class_ids)
        streamed = list(remote.stream(images, workers=2, infer_workers=2))
        assert [r.index for r in streamed] == [0, 1, 2, 3]
        for result, w in zip(streamed, want):
            np.testing.assert_array_equal(result.detections.xyxy, w.xyxy)
    with pytest.raises(BackendUnavailableError, match="is closed"):
        remote(images[0])
