"""Detections <-> supervision, and Detector.track() with Roboflow's ByteTrack on videos made of
real COCO pixels (tests/synthetic_videos.py), through the official nano weights."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from conftest import needs_trackers

from yolox_deploy import Detector
from yolox_deploy.benchmarks.synthetic_videos import FPS, crossing_video, ids_per_person, pan_video
from yolox_deploy.detections import Detections
from yolox_deploy.errors import BackendNotInstalledError, InvalidInputError
from yolox_deploy.video.streaming import video_fps

sv = pytest.importorskip("supervision")


@pytest.fixture(scope="module")
def videos(coco_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {"pan": pan_video(coco_dir, folder / "pan.mp4"), "crossing": crossing_video(coco_dir, folder / "cross.mp4")}


@pytest.fixture(scope="module")
def nano(nano_onnx):
    return Detector(nano_onnx)


def sample_detections(tracked: bool = True) -> Detections:
    dets = Detections.from_arrays(np.array([[1.5, 2.25, 30.0, 40.125], [5, 6, 7, 8]], np.float32),
                                  np.array([0.9, 0.3], np.float32), np.array([0, 16]), ["person"] * 16 + ["dog"],
                                  (48, 64))
    return dets.with_tracker_ids(np.array([3, -1])) if tracked else dets


@pytest.mark.parametrize("tracked", [True, False])
def test_supervision_round_trip_is_lossless(tracked):
    dets = sample_detections(tracked)
    converted = dets.to_supervision()
    assert isinstance(converted, sv.Detections)
    assert converted.data["class_name"].tolist() == ["person", "dog"]
    assert (converted.tracker_id is None) == (not tracked)
    back = Detections.from_supervision(converted, dets.image_size)
    for field in ("xyxy", "scores", "class_ids"):
        got, want = getattr(back, field), getattr(dets, field)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert back.class_names == dets.class_names and back.image_size == dets.image_size
    assert (back.tracker_ids is None and dets.tracker_ids is None) or np.array_equal(back.tracker_ids, dets.tracker_ids)


def test_empty_and_foreign_supervision_detections():
    empty = Detections.from_arrays(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), ["a"], (10, 10))
    assert len(empty.to_supervision()) == 0 and len(Detections.from_supervision(sv.Detections.empty(), (10, 10))) == 0
    foreign = sv.Detections(xyxy=np.array([[0, 0, 5, 5]], float), class_id=np.array([1]))  # no confidence, no names
    got = Detections.from_supervision(foreign, (10, 10), class_names=["a", "b"])
    assert got.class_names == ("b",) and got.scores.tolist() == [1.0] and got.xyxy.dtype == np.float32
    class Odd(list):  # duck-typed detections with 5 box columns (supervision itself validates its own)
        xyxy, confidence, class_id, tracker_id, data = np.zeros((2, 5)), None, None, None, {}

    with pytest.raises(InvalidInputError, match=r"xyxy of shape \[N, 4\]"):
        Detections.from_supervision(Odd([0, 1]), (10, 10))


def test_missing_supervision_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[supervision\]'"):
        sample_detections().to_supervision()


def test_missing_trackers_says_how_to_install(monkeypatch, videos, nano):
    monkeypatch.setitem(sys.modules, "trackers", None)
    with pytest.raises(BackendNotInstalledError, match=r'pip install "yolox-deploy\[tracking\]" && pip install '
                                                      r'--no-deps "trackers==2.6.1"'):
        nano.track(videos["pan"][0])


@pytest.mark.parametrize("video", ["pan", "crossing"])
def test_one_id_per_person_through_the_video(videos, nano, video):
    needs_trackers()
    path, truth = videos[video]
    results = list(nano.track(path))
    assert [r.index for r in results] == list(range(len(truth)))
    seen = ids_per_person(results, truth)
    assert all(len(ids) >= 0.85 * len(truth) for ids in seen), [len(ids) for ids in seen]  # tracked nearly always
    assert [len(set(ids)) for ids in seen] == [1, 1], seen  # one id each, through the crossing too
    assert seen[0][0] != seen[1][0]
    plain = list(nano.stream(path))  # the same detections as stream(), plus ids
    for tracked, untracked in zip(results, plain):
        np.testing.assert_array_equal(tracked.detections.xyxy, untracked.detections.xyxy)


def test_ids_are_never_reused(videos, nano):
    needs_trackers()
    path, _ = videos["crossing"]
    highest, confirmed = -1, 0
    for result in nano.track(path):
        ids = {int(t) for t in result.detections.tracker_ids if t >= 0}
        new = {t for t in ids if t > highest}
        assert all(t > highest for t in new)
        highest = max(ids | {highest})
        confirmed += len(new)
    assert highest == confirmed - 1  # ids 0, 1, 2 ... each handed out once: a new track never gets an old id


def test_a_frame_that_fails_to_decode_does_not_reset_the_tracker(videos, nano, tmp_path):
    needs_trackers()
    import cv2

    path, truth = videos["pan"]
    frames = [frame for _, frame in __import__("yolox_deploy.video.streaming", fromlist=["iter_source"]).iter_source(path)]
    files = []
    for i, frame in enumerate(frames):
        files.append(tmp_path / f"{i:03d}.jpg")
        cv2.imwrite(str(files[-1]), frame)
    files[20].write_bytes(files[20].read_bytes()[:200])  # truncated JPEG
    results = list(nano.track(files, errors="yield", fps=FPS))
    assert results[20].error is not None and "000020.jpg" not in (results[20].error or "x") or results[20].error
    assert results[20].detections is None
    seen = ids_per_person([r for i, r in enumerate(results) if i != 20], [t for i, t in enumerate(truth) if i != 20])
    assert [len(set(ids)) for ids in seen] == [1, 1], seen  # the same two ids before and after the bad frame


def test_two_concurrent_streams_keep_separate_ids(videos, nano):
    needs_trackers()
    alone = {name: [r.detections.tracker_ids.tolist() for r in nano.track(path)] for name, (path, _) in videos.items()}
    together: dict[str, list] = {}

    def run(name):
        together[name] = [r.detections.tracker_ids.tolist() for r in nano.track(videos[name][0])]

    threads = [threading.Thread(target=run, args=(name,)) for name in videos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_frame_rate_comes_from_the_video(videos):
    assert video_fps(videos["pan"][0]) == FPS and video_fps("frames/") is None


@pytest.mark.parametrize("source, message", [
    ("image", "is a single image"),
    ("folder", "is a folder of images"),
    ("array", "not one image array"),
    ("empty_video", "has no frames|cannot open video"),
    ("missing", "source not found"),
])
def test_what_cannot_be_tracked_is_refused_in_one_line(nano, coco_images, coco_dir, tmp_path, source, message):
    needs_trackers()
    import cv2

    empty = tmp_path / "empty.mp4"  # a container with no frame written
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48)).release()
    sources = {"image": coco_images[0], "folder": coco_dir / "images", "array": np.zeros((32, 32, 3), np.uint8),
               "empty_video": empty, "missing": tmp_path / "missing.jpg"}
    with pytest.raises(InvalidInputError, match=message):
        list(nano.track(sources[source]))


def test_unknown_tracker_and_option(nano, videos):
    needs_trackers()
    with pytest.raises(InvalidInputError, match="unknown tracker 'deepsort'; available: bytetrack, ocsort, sort, botsort"):
        nano.track(videos["pan"][0], tracker="deepsort")
    with pytest.raises(InvalidInputError, match="bytetrack has no option lost_buffer; its options:"):
        nano.track(videos["pan"][0], lost_buffer=10)


def test_yolox_detect_track_writes_the_annotated_video_and_json_lines(videos, nano_onnx, tmp_path, capsys):
    needs_trackers()
    import json

    import cv2

    from yolox_deploy.cli import detect

    path, truth = videos["pan"]
    assert detect.main([str(path), "--model", str(nano_onnx), "--track", "--save-dir", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in (tmp_path / "pan.tracks.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"frame", "track_id", "box_xyxy", "score", "class_id", "class_name"}
    people = {line["track_id"] for line in lines if line["class_name"] == "person"}
    assert len(people) >= 2 and {line["frame"] for line in lines} <= set(range(len(truth)))
    annotated = cv2.VideoCapture(str(tmp_path / "pan.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == len(truth)
    annotated.release()


@pytest.mark.parametrize("case, message", [
    ("image", "--track needs videos .* is an image"),
    ("folder", "--track needs videos .* is a folder"),
    ("tracker", "unknown tracker 'kcf'"),
])
def test_yolox_detect_track_refusals(case, message, nano_onnx, coco_images, coco_dir, videos, capsys):
    from yolox_deploy.cli import detect

    source = {"image": coco_images[0], "folder": coco_dir / "images", "tracker": videos["pan"][0]}[case]
    extra = ["--track", "kcf"] if case == "tracker" else ["--track"]
    assert detect.main([str(source), "--model", str(nano_onnx), "--no-save", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(message, err)


def test_stopping_a_track_early_stops_its_threads(videos, nano):
    needs_trackers()
    before = {t.name for t in threading.enumerate()}
    tracked = nano.track(videos["pan"][0])
    next(tracked)
    tracked.close()
    assert not {t.name for t in threading.enumerate() if t.name.startswith("yolox-")} - before
