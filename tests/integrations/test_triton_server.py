"""Against a real Triton Inference Server (tests/integrations/triton_server.py): the exported
repository serves the official nano weights, and both clients give the local Detector's
detections, across threads, with dynamic batching, and fail in one line when the server does."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("tritonclient.http")
pytest.importorskip("torch")

from triton_server import TritonServer, missing_reason, server_env  # noqa: E402

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import BackendUnavailableError, InvalidInputError, YoloxDeployError  # noqa: E402
from yolox_deploy.exporters.triton import export_triton  # noqa: E402
from yolox_deploy.integrations.triton import TritonDetectionClient  # noqa: E402
from yolox_deploy.processing.images import read_image  # noqa: E402

pytestmark = pytest.mark.triton_server
MAX_DET = 100  # the ensemble's (export_triton's default)


@pytest.fixture(scope="session")
def nano_repo(tmp_path_factory, nano_pth):
    repo = tmp_path_factory.mktemp("triton_real") / "repo"
    export_triton(repo, weights=nano_pth, max_batch=8, max_det=MAX_DET)
    report = export_triton(repo, weights=nano_pth, max_batch=8, max_det=MAX_DET, nms="onnx", name="yolox_e2e")
    assert report.models == ("yolox_e2e",) and report.end_to_end["max_det"] == MAX_DET
    return repo


def start_server(repo, workdir) -> TritonServer:
    from conftest import IN_CI

    reason = missing_reason(server_env())
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return TritonServer(repo, workdir).start()


@pytest.fixture(scope="session")
def triton(nano_repo, tmp_path_factory):
    server = start_server(nano_repo, tmp_path_factory.mktemp("tritonserver"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local(nano_repo):
    return Detector(nano_repo / "yolox_onnx" / "1" / "model.onnx", max_det=MAX_DET)


@pytest.fixture(scope="session")
def images(coco_images):
    return [read_image(p) for p in coco_images]


def assert_same(got, want) -> None:
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.class_ids, want.class_ids)


def endpoint(server: TritonServer, protocol: str) -> str:
    return server.url if protocol == "http" else f"127.0.0.1:{server.grpc_port}"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_both_clients_give_the_local_detections_on_the_80_images(triton, local, images, protocol):
    want = local(images)
    url = endpoint(triton, protocol)
    with Detector("yolox", backend="triton", url=url, protocol=protocol, batch_size=8, max_det=MAX_DET) as remote, \
            TritonDetectionClient(url, "yolox", protocol=protocol) as ensemble:
        raw = remote(images)
        served = [d for start in range(0, len(images), 8) for d in ensemble(images[start:start + 8])]
    assert sum(len(w) for w in want) > 300
    for w, r, s in zip(want, raw, served):
        assert_same(r, w)
        assert_same(s, w)


def test_an_end_to_end_onnx_served_alone_gives_the_local_end_to_end_detections(triton, nano_repo, images):
    """The repository model with decode + NMS inside (no Python model, no ensemble), through
    the real server, equals the same ONNX run locally; the ensemble client refuses it."""
    assert not (nano_repo / "yolox_e2e_postprocess").exists()
    local_e2e = Detector(nano_repo / "yolox_e2e" / "1" / "model.onnx")
    with Detector("yolox_e2e", backend="triton", url=triton.url, batch_size=8) as remote:
        assert remote.backend.end_to_end
        for got, want in zip(remote(images), local_e2e(images)):
            assert_same(got, want)
    for model, kind in (("yolox_e2e", "an end-to-end model"), ("yolox_onnx", "a raw model")):
        with pytest.raises(YoloxDeployError, match=f"Triton model '{model}' is {kind}.*use Detector"):
            TritonDetectionClient(triton.url, model)


def test_dynamic_batching_merges_concurrent_requests(triton, images):
    import tritonclient.http as http

    def counts() -> tuple[int, int]:
        stats = http.InferenceServerClient(triton.url).get_inference_statistics("yolox_onnx")["model_stats"][0]
        return int(stats["inference_count"]), int(stats["execution_count"])

    before = counts()
    with Detector("yolox", backend="triton", url=triton.url) as remote, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: remote(images[k % 8]), range(64)))
    # Triton updates its statistics after the responses have gone out, so the last few
    # requests can be missing from an immediate read: wait (bounded) for them to be counted.
    deadline = time.monotonic() + 10.0
    while True:
        inferences, executions = (after - start for after, start in zip(counts(), before))
        if inferences >= 64 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert inferences == 64 and executions < inferences, (inferences, executions)


def test_one_detector_serves_8_threads_and_a_folder_stream(triton, local, images, coco_dir):
    want = [local(image) for image in images[:8]]
    with Detector("yolox", backend="triton", url=triton.url, max_det=MAX_DET) as remote:
        def calls(worker: int):
            return [(k % 8, remote(images[k % 8])) for k in range(worker, worker + 50)]

        with ThreadPoolExecutor(8) as pool:
            results = [r for batch in pool.map(calls, range(8)) for r in batch]
        assert len(results) == 400
        for index, got in results:
            assert_same(got, want[index])
        streamed = list(remote.stream(coco_dir / "images", workers=2, infer_workers=2))
    assert len(streamed) == 80 and [r.index for r in streamed] == list(range(80))
    for result in streamed:
        assert_same(result.detections, local(coco_dir / "images" / result.name))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unknown_model_and_no_server_are_one_line_and_bounded(triton, protocol):
    from triton_server import free_port

    with pytest.raises(BackendUnavailableError, match="cannot get model 'nope' from Triton at"):
        Detector("nope", backend="triton", url=endpoint(triton, protocol), protocol=protocol)
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="cannot get model 'yolox' from Triton at 127.0.0.1:"):
        Detector("yolox", backend="triton", url=f"127.0.0.1:{free_port()}", protocol=protocol, timeout_s=3)
    assert time.monotonic() - start < 15
    with pytest.raises(YoloxDeployError, match="Triton protocol must be one of http, grpc, got 'udp'"):
        Detector("yolox", backend="triton", url=triton.url, protocol="udp")


def test_wrong_input_and_a_server_gone_mid_stream_are_one_line(triton, nano_repo, tmp_path, images):
    with Detector("yolox", backend="triton", url=triton.url) as remote:
        with pytest.raises(InvalidInputError, match=r"takes input \[None, 3, 416, 416\]"):
            remote.backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    # a server that goes away mid-stream: one error, no hang
    own = start_server(nano_repo, tmp_path)
    try:
        detector = Detector("yolox", backend="triton", url=own.url, timeout_s=5)
        stream = detector.stream((images[k % 8] for k in range(10_000)), workers=1)
        next(stream)
        own.stop()
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=f"Triton inference on 'yolox_onnx' at {own.url} failed"):
            for _ in stream:
                pass
        assert time.monotonic() - start < 30
    finally:
        own.stop()
