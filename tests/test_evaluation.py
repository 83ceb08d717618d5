"""COCO mAP through each backend equals the official evaluator's number on the shared images."""
from __future__ import annotations

import pytest

from yolox_deploy import Detector
from yolox_deploy.errors import InvalidInputError
from yolox_deploy.evaluation import evaluate_coco

# Official YOLOX evaluator semantics (conf 0.01, class-aware NMS 0.65, 416x416, no clipping,
# no cap) on the 80 shared COCO val2017 images; reproduced by an independent torch
# re-implementation of the official decode/postprocess/convert_to_coco_format flow.
OFFICIAL_MAP50_95 = 0.30524748130969065
OFFICIAL_MAP50 = 0.4777183233404764


def official_settings_detector(model, **kw):
    return Detector(model, conf=0.01, iou=0.65, max_det=None, clip_boxes=False, **kw)


@pytest.mark.parametrize("model_fixture", ["nano_pth", "nano_onnx"])
def test_map_equals_the_official_evaluator(request, model_fixture, coco_dir):
    detector = official_settings_detector(request.getfixturevalue(model_fixture))
    result = evaluate_coco(detector, coco_dir / "images", coco_dir / "instances_val2017.json", progress=False)
    assert result["num_images"] == 80
    assert result["mAP50_95"] == pytest.approx(OFFICIAL_MAP50_95, abs=2e-4)
    assert result["mAP50"] == pytest.approx(OFFICIAL_MAP50, abs=2e-4)


def test_missing_images_and_annotations_are_reported(nano_onnx, coco_dir, tmp_path):
    det = official_settings_detector(nano_onnx)
    with pytest.raises(InvalidInputError, match="80 annotated images are not in"):
        evaluate_coco(det, tmp_path, coco_dir / "instances_val2017.json", progress=False)
    with pytest.raises(InvalidInputError, match="annotation file not found"):
        evaluate_coco(det, coco_dir / "images", tmp_path / "none.json", progress=False)
