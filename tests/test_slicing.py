"""Sliced inference (yolox_deploy/slicing.py): settings and their one-line refusals, batched
backend calls, the same answers through __call__, stream, stream_many and track, and the
accuracy it buys on mosaics (equality with the sahi package: tests/integrations/test_sahi.py)."""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from conftest import needs_trackers

from yolox_deploy import Detector, SliceSettings
from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing.images import read_image


def count_calls(detector: Detector) -> list[int]:
    calls: list[int] = []
    infer = detector.backend.infer
    detector.backend.infer = lambda batch: calls.append(len(batch)) or infer(batch)
    return calls


@pytest.mark.parametrize("options,message", [
    (dict(size=400), "slice size 400 is not a positive multiple of 32"),
    (dict(size=(416, 0)), "not a positive multiple of 32"),
    (dict(size=416, overlap=1.0), r"slice overlap 1.0 is outside \[0, 1\)"),
    (dict(size=416, overlap=-0.1), "outside"),
    (dict(size=416, merge="wbf"), "unknown merge 'wbf': use one of nms, greedy_nmm"),
    (dict(size=416, match="giou"), "unknown match 'giou': use one of iou, ios"),
    (dict(size=416, recheck="always"), "unknown recheck"),
    (dict(size=416, match_threshold=1.5), "match_threshold 1.5"),
])
def test_bad_settings_are_refused_in_one_line(options, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        SliceSettings(**options)
    assert "\n" not in str(info.value)


def test_too_many_windows_are_refused_in_one_line(nano_onnx):
    detector = Detector(nano_onnx, slices=SliceSettings(32, overlap=0.99))  # ~4.8 million windows on 1920x2560
    with pytest.raises(InvalidInputError, match=r"^32x32 slices with overlap 0.99 cut a 1920x2560 image into 4777281 "
                                                r"windows \(at most 4096\): use larger slices or a smaller overlap$"):
        detector(np.zeros((1920, 2560, 3), np.uint8))


def test_settings_must_be_slice_settings(nano_onnx):
    with pytest.raises(InvalidInputError, match="slices must be a SliceSettings or None, got int"):
        Detector(nano_onnx, slices=416)


def test_slices_of_several_images_go_in_batches(nano_dynamic_onnx, coco_images):
    images = [read_image(p) for p in coco_images[:8]]  # 5 to 10 inputs each: chunks run across images
    one = Detector(nano_dynamic_onnx, threads=2, batch_size=1, slices=SliceSettings(256))
    eight = Detector(nano_dynamic_onnx, threads=2, batch_size=8, slices=SliceSettings(256))
    calls = count_calls(eight)
    batched = eight(images)
    inputs = eight.timings.slices
    assert inputs > 8 * 4 and eight.timings.images == 8
    assert calls == [8] * (inputs // 8) + ([inputs % 8] if inputs % 8 else [])  # not one call per slice
    for a, b in zip(batched, one(images)):
        assert len(a) == len(b)
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-5)


def test_a_dynamic_batch_model_gets_slices_in_batches_by_default(nano_dynamic_onnx, coco_images):
    """No batch_size given: slices go 8 at a time (was one call per slice); a given one is kept."""
    image = read_image(coco_images[0])
    default = Detector(nano_dynamic_onnx, threads=2, slices=SliceSettings(256))
    calls = count_calls(default)
    default(image)
    inputs = default.timings.slices
    assert inputs > 8 and calls == [8] * (inputs // 8) + ([inputs % 8] if inputs % 8 else [])
    one = Detector(nano_dynamic_onnx, threads=2, batch_size=1, slices=SliceSettings(256))
    calls = count_calls(one)
    one(image)
    assert calls == [1] * inputs
    one.batch_size = 4
    calls.clear()
    one(image)
    assert calls[0] == 4


def test_a_static_batch_model_makes_one_call_per_slice_and_says_why(nano_onnx, coco_images, caplog):
    with caplog.at_level(logging.WARNING, logger="yolox_deploy.slicing"):
        detector = Detector(nano_onnx, slices=SliceSettings(256))
    notes = [r.getMessage() for r in caplog.records]
    assert any("static batch of 1, so each slice is its own backend call" in n for n in notes), notes
    calls = count_calls(detector)
    detector(coco_images[0])
    assert calls == [1] * detector.timings.slices


def test_an_image_within_one_slice_is_detected_whole(nano_onnx, coco_images, caplog):
    """As the note says: the answer without slicing, with no merge (greedy NMM over the one window
    used to fuse nested boxes: 16 people became 13 on 000000005001.jpg)."""
    plain = Detector(nano_onnx)
    sliced = Detector(nano_onnx, slices=SliceSettings(640))  # default greedy NMM / IOS
    for path in coco_images[:20]:
        image = read_image(path)
        assert max(image.shape[:2]) <= 640
        with caplog.at_level(logging.WARNING, logger="yolox_deploy.slicing"):
            got = sliced(image)
        want = plain(image)
        np.testing.assert_array_equal(got.scores, want.scores, err_msg=path.name)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-4, err_msg=path.name)
    assert any("fits in one 640x640 slice: it is detected as a whole, as without slicing (no merge)" in r.getMessage()
               for r in caplog.records)


def test_slices_can_be_set_and_removed(nano_onnx, coco_images):
    detector = Detector(nano_onnx, conf=0.3)
    plain = detector(coco_images[0])
    detector.slices = SliceSettings(256)
    assert detector.slices.size == (256, 256) and detector.conf == 0.3
    assert detector(coco_images[0]).image_size == plain.image_size and detector.timings.slices > 1
    detector.slices = None
    np.testing.assert_array_equal(detector(coco_images[0]).xyxy, plain.xyxy)


def test_whole_image_calls_are_refused_while_slicing(nano_onnx):
    detector = Detector(nano_onnx, slices=SliceSettings(416))
    with pytest.raises(InvalidInputError, match="take letterboxed whole images, and this Detector slices"):
        detector.infer_batch(np.zeros((1, 416, 416, 3), np.uint8))
    assert "slices=SliceSettings(size=(416, 416)" in repr(detector)
    detector.slices = None
    assert detector.infer_batch(np.zeros((1, 416, 416, 3), np.uint8)).shape[0] == 1


def test_stream_and_stream_many_give_the_same_answers(nano_dynamic_onnx, coco_images):
    detector = Detector(nano_dynamic_onnx, threads=2, batch_size=4, slices=SliceSettings(256, overlap=0.25))
    paths = coco_images[:4]
    direct = detector(paths)
    streamed = [r.detections for r in detector.stream(paths, batch_size=2)]
    many = sorted((r for r in detector.stream_many([paths[:2], paths[2:]]) if not r.finished),
                  key=lambda r: (r.source, r.index))
    assert len(streamed) == len(many) == len(direct) == 4
    for expected, a, b in zip(direct, streamed, [r.detections for r in many]):
        for got in (a, b):
            assert_same_detections(got, expected)


def assert_same_detections(got, expected) -> None:
    """Equal detections, up to the float noise of another batch composition: boxes, scores, classes."""
    assert len(got) == len(expected) and got.image_size == expected.image_size
    mine = np.lexsort((got.xyxy[:, 1], got.xyxy[:, 0], -np.round(got.scores, 4)))
    theirs = np.lexsort((expected.xyxy[:, 1], expected.xyxy[:, 0], -np.round(expected.scores, 4)))
    np.testing.assert_array_equal(got.class_ids[mine], expected.class_ids[theirs])
    np.testing.assert_allclose(got.scores[mine], expected.scores[theirs], atol=1e-5)
    np.testing.assert_allclose(got.xyxy[mine], expected.xyxy[theirs], atol=1e-2)


@pytest.mark.parametrize("max_det", [None, 3])
def test_tracked_boxes_are_the_detectors_own(nano_dynamic_onnx, coco_images, max_det):
    """track() and stream_many(tracker=) decode lower for the tracker; the results must still be
    det(frame)'s detections, max_det per input included (low boxes were merged into real ones and grew
    them, and max_det was lifted)."""
    needs_trackers()
    frames = [read_image(p) for p in coco_images[:6]]
    detector = Detector(nano_dynamic_onnx, threads=2, batch_size=4, conf=0.3, max_det=max_det,
                        slices=SliceSettings(256, overlap=0.25))
    expected = [detector(frame) for frame in frames]
    tracked = [r.detections for r in detector.track(frames)]
    many = [r.detections for r in sorted((r for r in detector.stream_many([frames[:3], frames[3:]], tracker="bytetrack")
                                           if not r.finished), key=lambda r: (r.source, r.index))]
    assert len(tracked) == len(many) == 6
    for want, a, b in zip(expected, tracked, many):
        for got in (a, b):
            assert got.tracker_ids is not None
            assert_same_detections(got, want)


def test_tracking_a_high_resolution_pan_keeps_one_id_per_object(nano_dynamic_onnx, coco_mosaics, tmp_path):
    from yolox_deploy.benchmarks.synthetic_videos import ids_per_person, mosaic_pan_video

    needs_trackers()
    images, ann = coco_mosaics
    for name in ("mosaic_000.jpg", "mosaic_002.jpg"):
        video, truth = mosaic_pan_video(images / name, ann, tmp_path / f"{name}.mp4")
        tracked = {}
        for label, slices in (("whole", None), ("sliced", SliceSettings(416))):
            results = list(Detector(nano_dynamic_onnx, threads=2, batch_size=8, slices=slices).track(video))
            seen = ids_per_person(results, truth)
            tracked[label] = [ids for ids in seen if len(ids) >= 0.85 * len(truth)]
        assert len(tracked["sliced"]) > len(tracked["whole"]), {k: len(v) for k, v in tracked.items()}
        # one id each, but for one crowded person of mosaic_000 whose first tracked frame has its neighbour's
        # id (34 of 35 frames keep one id, since the tracker sees det(frame)'s own boxes)
        assert sum(len(set(ids)) > 1 for ids in tracked["sliced"]) <= 1, tracked["sliced"]
        assert all(Counter(ids).most_common(1)[0][1] >= 0.95 * len(ids) for ids in tracked["sliced"])
        assert all(len(set(ids)) == 1 for ids in tracked["whole"])


def test_sliced_inference_finds_the_small_objects_of_mosaics(nano_onnx, coco_mosaics, coco_dir):
    from yolox_deploy.evaluation import evaluate_coco

    images, ann = coco_mosaics

    def evaluate(slices, folder=images, annotations=ann):
        detector = Detector(nano_onnx, conf=0.01, iou=0.65, max_det=None, clip_boxes=False, slices=slices)
        return evaluate_coco(detector, folder, annotations, progress=False)

    whole, sliced, both = evaluate(None), evaluate(SliceSettings(416, full_image=False)), evaluate(SliceSettings(416))
    # measured: mAP50-95 0.050 whole, 0.236 sliced, 0.236 sliced + whole; APsmall 0.000, 0.148, 0.148
    assert sliced["mAP50_95"] > whole["mAP50_95"] + 0.15 and both["mAP50_95"] > whole["mAP50_95"] + 0.15
    assert sliced["mAP_small"] > whole["mAP_small"] + 0.1 and both["mAP_small"] > whole["mAP_small"] + 0.1
    plain_ann = coco_dir / "instances_val2017.json"
    plain_whole = evaluate(None, coco_dir / "images", plain_ann)
    plain_both = evaluate(SliceSettings(416), coco_dir / "images", plain_ann)
    # measured: 0.3052 whole, 0.3166 sliced + whole
    assert plain_both["mAP50_95"] >= plain_whole["mAP50_95"] - 0.01


def test_a_large_frame_is_letterboxed_and_decoded_a_few_chunks_at_a_time(nano_dynamic_onnx, monkeypatch):
    """Neither letterboxed inputs nor raw outputs of more than OVERLAP_CHUNKS chunks are held: each group
    of chunks is letterboxed, run and decoded before the next is letterboxed (a 4K frame at 416 is 85
    inputs; all of them were letterboxed ahead, and every raw output kept until the last call; peak RSS in
    benchmarks/results/sliced_memory.json)."""
    from yolox_deploy.slicing import SlicedPipeline

    detector = Detector(nano_dynamic_onnx, threads=2, slices=SliceSettings(416))
    events: list[str] = []
    for name, label in (("prepare_batch", "letterbox"), ("infer_many", "infer"), ("postprocess_raw", "decode")):
        original = getattr(SlicedPipeline, name)
        monkeypatch.setattr(SlicedPipeline, name, lambda self, *a, _o=original, _l=label, **k:
                            events.append(_l) or _o(self, *a, **k))
    frame = np.zeros((2160, 3840, 3), np.uint8)
    list(detector.stream([frame]))
    assert events.count("letterbox") == events.count("decode") == 11  # 84 windows + the whole frame, 8 a call
    held = most = 0
    for event in events:
        held += {"letterbox": 1, "decode": -1}.get(event, 0)
        most = max(most, held)
    assert most <= SlicedPipeline.OVERLAP_CHUNKS
