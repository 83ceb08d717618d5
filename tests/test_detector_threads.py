"""One Detector shared by many threads gives exactly the single-threaded results, on every backend."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from yolox_deploy import Detector

THREADS, CALLS = 8, 200


@pytest.fixture(scope="module")
def tiny_models(tiny_onnx, tiny_checkpoint, tmp_path_factory):
    """The same tiny model as every backend's file: {backend: path}."""
    models = {"onnxruntime": tiny_onnx, "torch": tiny_checkpoint}
    out = tmp_path_factory.mktemp("threads")
    try:
        from yolox_deploy.exporters.openvino import export_openvino

        models["openvino"] = export_openvino(out / "tiny_openvino.xml", weights=tiny_onnx, dynamic=True).path
    except ImportError:
        pass
    try:
        from yolox_deploy.exporters.ncnn import export_ncnn

        models["ncnn"] = export_ncnn(out / "tiny_ncnn.param", weights=tiny_checkpoint, input_size=(64, 96)).path
    except ImportError:
        pass
    return models


@pytest.mark.parametrize("backend", ["onnxruntime", "torch", "openvino", "ncnn"])
def test_eight_threads_times_200_calls_equal_single_threaded(tiny_models, backend):
    if backend not in tiny_models:
        pytest.skip(f"{backend} is not installed")
    det = Detector(tiny_models[backend], conf=0.05, input_size=(64, 96) if backend == "torch" else None)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + 7 * i, 90 - 5 * i, 3), dtype=np.uint8) for i in range(6)]
    want = [det(image) for image in images]
    assert sum(len(d) for d in want) > 0
    mismatches: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(tid: int) -> None:
        try:
            start.wait()
            for call in range(CALLS):
                k = (tid + call) % len(images)
                got = det(images[k])
                if not (np.array_equal(got.xyxy, want[k].xyxy) and np.array_equal(got.scores, want[k].scores)
                        and np.array_equal(got.class_ids, want[k].class_ids)):
                    mismatches.append(f"thread {tid} call {call} image {k}")
        except BaseException as exc:  # surfaced below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert not mismatches, f"{len(mismatches)} of {THREADS * CALLS} calls differ, first: {mismatches[0]}"
