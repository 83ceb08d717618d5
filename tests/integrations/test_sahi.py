"""Our sliced inference against the sahi package's own loop (get_sliced_prediction) over the same
Detector: on the 80 shared images and on 4x4 mosaics of them, for NMS and greedy NMM, IoU and
IOS, the merged detections are equal (count, classes, scores; boxes within 1e-3 px)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_sahi

from yolox_deploy import Detector, SliceSettings
from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.merge import slice_windows

SAHI_NAMES = {"nms": "NMS", "greedy_nmm": "GREEDYNMM", "iou": "IOU", "ios": "IOS"}


def sahi_detections(detector: Detector, image: np.ndarray, settings: SliceSettings, native_batch: bool = False,
                    **options):
    from sahi.predict import get_sliced_prediction

    from yolox_deploy.integrations.sahi import sahi_model

    result = get_sliced_prediction(np.ascontiguousarray(image[..., ::-1]), sahi_model(detector, native_batch),
                                   settings.height, settings.width, settings.overlap, settings.overlap,
                                   perform_standard_pred=settings.full_image,
                                   postprocess_type=SAHI_NAMES[settings.merge],
                                   postprocess_match_metric=SAHI_NAMES[settings.match],
                                   postprocess_match_threshold=settings.match_threshold,
                                   postprocess_class_agnostic=settings.class_agnostic, verbose=0, **options)
    found = result.object_prediction_list
    return (np.array([p.bbox.to_xyxy() for p in found]).reshape(-1, 4), np.array([p.score.value for p in found]),
            np.array([p.category.id for p in found], dtype=np.int64))


def assert_equal_detections(ours, theirs, where: str) -> None:
    boxes, scores, classes = theirs
    assert len(ours) == len(scores), f"{where}: {len(ours)} detections, sahi {len(scores)}"
    mine = np.lexsort((ours.xyxy[:, 1], ours.xyxy[:, 0], -ours.scores))
    their = np.lexsort((boxes[:, 1], boxes[:, 0], -scores.astype(np.float32)))
    np.testing.assert_array_equal(ours.scores[mine], scores[their].astype(np.float32), err_msg=where)
    np.testing.assert_array_equal(ours.class_ids[mine], classes[their], err_msg=where)
    np.testing.assert_allclose(ours.xyxy[mine], boxes[their], rtol=0, atol=1e-3, err_msg=where)


MERGES = [("greedy_nmm", "ios"), ("greedy_nmm", "iou"), ("nms", "ios"), ("nms", "iou")]


@pytest.mark.parametrize("merge,match", MERGES)
def test_equal_to_sahi_on_the_shared_images(nano_onnx, coco_images, merge, match):
    needs_sahi()
    settings = SliceSettings(416, overlap=0.2, merge=merge, match=match)
    plain = Detector(nano_onnx, threads=2)
    sliced = Detector(nano_onnx, threads=2, slices=settings)
    for path in coco_images:
        image = read_image(path)
        assert_equal_detections(sliced(image), sahi_detections(plain, image, settings), path.name)


@pytest.mark.parametrize("merge,match", MERGES)
@pytest.mark.parametrize("full_image", [True, False])
def test_equal_to_sahi_on_mosaics(nano_onnx, coco_mosaics, merge, match, full_image):
    needs_sahi()
    settings = SliceSettings(416, overlap=0.2, merge=merge, match=match, full_image=full_image)
    plain = Detector(nano_onnx, threads=2)
    sliced = Detector(nano_onnx, threads=2, slices=settings)
    paths = sorted(coco_mosaics[0].glob("*.jpg"))
    assert len(paths) == 5
    for path in paths:
        image = read_image(path)
        assert_equal_detections(sliced(image), sahi_detections(plain, image, settings), path.name)


@pytest.mark.parametrize("conf,iou", [(0.25, 0.45), (0.01, 0.65)])  # the defaults; yolox-eval's settings
def test_equal_to_sahi_without_box_clipping(nano_onnx, coco_mosaics, conf, iou):
    """clip_boxes=False (what yolox-eval uses): a slice's box starts no earlier than the slice's edge, as
    in SAHI (it was clamped only after the shift, to the image's edge). sahi's models clamp to the image's
    size in slice coordinates, so its boxes can end past the image; those are compared clamped to it."""
    needs_sahi()
    settings = SliceSettings(416)
    plain = Detector(nano_onnx, threads=2, conf=conf, iou=iou, clip_boxes=False)
    sliced = Detector(nano_onnx, threads=2, conf=conf, iou=iou, clip_boxes=False, slices=settings)
    for path in sorted(coco_mosaics[0].glob("*.jpg"))[:3]:
        image = read_image(path)
        boxes, scores, classes = sahi_detections(plain, image, settings)
        h, w = image.shape[:2]
        assert_equal_detections(sliced(image), (np.clip(boxes, 0, [w, h, w, h]), scores, classes), path.name)


def test_equal_to_sahi_when_it_switches_to_nms_below_conf_0_1(nano_onnx, coco_mosaics):
    needs_sahi()
    settings = SliceSettings(416)  # greedy NMM / IOS asked; conf 0.05: both switch to NMS / IoU
    image = read_image(coco_mosaics[0] / "mosaic_000.jpg")
    ours = Detector(nano_onnx, threads=2, conf=0.05, slices=settings)(image)
    assert_equal_detections(ours, sahi_detections(Detector(nano_onnx, threads=2, conf=0.05), image, settings),
                            "conf 0.05")
    forced = Detector(nano_onnx, threads=2, conf=0.05, slices=SliceSettings(416, force_merge=True))(image)
    assert_equal_detections(forced, sahi_detections(Detector(nano_onnx, threads=2, conf=0.05), image, settings,
                                                    force_postprocess_type=True), "forced")
    assert len(forced) < len(ours)  # greedy NMM merged what NMS kept apart


def test_sahi_batches_go_to_the_detector_as_one_call(nano_dynamic_onnx, coco_images):
    needs_sahi()
    detector = Detector(nano_dynamic_onnx, threads=2, batch_size=4)
    image = read_image(coco_images[0])
    settings = SliceSettings(256, overlap=0.2)
    one_by_one = sahi_detections(detector, image, settings)
    calls = []
    infer = detector.backend.infer
    detector.backend.infer = lambda batch: calls.append(len(batch)) or infer(batch)
    batched = sahi_detections(detector, image, settings, native_batch=True, batch_size=4)
    windows = len(slice_windows(*image.shape[:2], settings.size, settings.overlap))
    # every batch of slices is one call of 4 (the last holds the rest), then the whole image alone
    assert calls == [4] * (windows // 4) + ([windows % 4] if windows % 4 else []) + [1], calls
    assert len(batched[1]) == len(one_by_one[1])
    mine, theirs = np.lexsort((batched[0][:, 0], -batched[1])), np.lexsort((one_by_one[0][:, 0], -one_by_one[1]))
    np.testing.assert_allclose(batched[1][mine], one_by_one[1][theirs], atol=1e-5)
    np.testing.assert_allclose(batched[0][mine], one_by_one[0][theirs], atol=1e-2)
    np.testing.assert_array_equal(batched[2][mine], one_by_one[2][theirs])


def test_a_slicing_detector_is_refused(nano_onnx):
    needs_sahi()
    from yolox_deploy.integrations.sahi import sahi_model

    with pytest.raises(InvalidInputError, match="SAHI does the slicing"):
        sahi_model(Detector(nano_onnx, slices=SliceSettings(416)))
