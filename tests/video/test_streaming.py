"""Detector.stream: same results as the plain loop, in order, bounded, errors, videos, early stop."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from yolox_deploy import Detector
from yolox_deploy.errors import InvalidInputError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    for i in range(13):
        cv2.imwrite(str(path / f"img{i:02d}.png"), rng.integers(0, 256, (40 + 3 * i, 100 - 2 * i, 3), dtype=np.uint8))
    return path


def same(a, b) -> bool:
    return np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.scores, b.scores) and \
        np.array_equal(a.class_ids, b.class_ids)


@pytest.mark.parametrize("options", [{}, {"batch_size": 3}, {"batch_size": 4, "infer_workers": 2, "workers": 3},
                                     {"prefetch": 1, "workers": 1}, {"pixel_input": False}])
def test_stream_equals_the_sequential_loop_in_order(tiny_onnx, folder, options):
    options = dict(options)
    det = Detector(tiny_onnx, conf=0.05, pixel_input=options.pop("pixel_input", True))
    files = sorted(folder.iterdir())
    want = [det(f) for f in files]
    got = list(det.stream(folder, **options))
    assert [r.index for r in got] == list(range(len(files)))
    assert [r.name for r in got] == [f.name for f in files]
    assert sum(len(w) for w in want) > 0
    assert all(same(w, r.detections) for w, r in zip(want, got))
    assert got[0].image.shape == cv2.imread(str(files[0])).shape


def test_iterables_of_arrays_and_a_single_file(tiny_onnx, folder):
    det = Detector(tiny_onnx, conf=0.05)
    arrays = [cv2.imread(str(f)) for f in sorted(folder.iterdir())[:5]]
    got = list(det.stream(iter(arrays), batch_size=2))
    assert [r.name for r in got] == [f"#{i}" for i in range(5)]
    assert all(same(det(a), r.detections) for a, r in zip(arrays, got))
    one = list(det.stream(sorted(folder.iterdir())[0]))
    assert len(one) == 1 and one[0].name == "img00.png"


def test_bad_files_raise_or_are_yielded(tiny_onnx, folder, tmp_path):
    for f in sorted(folder.iterdir())[:4]:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "img01.png").write_bytes(b"")  # zero bytes
    (tmp_path / "img02b.jpg").write_text("not an image")
    det = Detector(tiny_onnx, conf=0.05)
    with pytest.raises(InvalidInputError, match="empty"):
        list(det.stream(tmp_path))
    got = list(det.stream(tmp_path, errors="yield", batch_size=2))
    assert [r.name for r in got] == ["img00.png", "img01.png", "img02.png", "img02b.jpg", "img03.png"]
    assert [r.error is not None for r in got] == [False, True, False, True, False]
    assert "empty (0 bytes)" in got[1].error and got[1].detections is None
    assert same(got[4].detections, det(tmp_path / "img03.png"))


def test_video_frames(tiny_onnx, tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(7):
        writer.write(np.full((64, 96, 3), 30 * i, np.uint8))
    writer.release()
    got = list(Detector(tiny_onnx, conf=0.05).stream(path, batch_size=3))
    assert [r.name for r in got] == [f"clip.avi#{i}" for i in range(7)]
    with pytest.raises(InvalidInputError, match="cannot open video"):
        list(Detector(tiny_onnx).stream(tmp_path / "missing.mp4"))


def test_memory_is_bounded_and_early_stop_ends_the_threads(tiny_onnx):
    pulled = 0

    def endless():
        nonlocal pulled
        frame = np.zeros((64, 96, 3), np.uint8)
        while True:
            pulled += 1
            yield frame

    det = Detector(tiny_onnx)
    before = threading.active_count()
    stream = det.stream(endless(), batch_size=2, prefetch=2)
    for i, _ in enumerate(stream):
        if i == 20:
            break
    time.sleep(0.3)  # let the stages fill every queue they are allowed to
    # consumed 21; in flight at most: prepared queue (2 x 2) + batches (2 + 1 worker) x 2 + the one being read
    assert pulled <= 21 + 4 + 6 + 2 + 2, pulled
    stream.close()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_stream_argument_errors(tiny_onnx, folder, tmp_path):
    with pytest.raises(InvalidInputError, match="errors must be 'raise' or 'yield'"):
        list(Detector(tiny_onnx).stream(folder, errors="ignore"))
    with pytest.raises(InvalidInputError, match="must be >= 1"):
        list(Detector(tiny_onnx).stream(folder, infer_workers=0))
    with pytest.raises(InvalidInputError, match="no images in folder"):
        list(Detector(tiny_onnx).stream(tmp_path))


def test_a_static_batch_model_refuses_another_batch_size(nano_onnx, folder):
    with pytest.raises(InvalidInputError, match="static batch of 1; batch_size=4 cannot be used"):
        list(Detector(nano_onnx).stream(folder, batch_size=4))
