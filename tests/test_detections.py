"""Detections dataclass conversions."""
from __future__ import annotations

import json

import numpy as np

from yolox_deploy.detections import Detections


def make() -> Detections:
    return Detections.from_arrays(np.array([[10, 20, 50, 80], [0, 0, 5, 5]]), np.array([0.9, 0.3]),
                                  np.array([1, 0]), ["cat", "dog"], (100, 200))


def test_types_shapes_and_names():
    d = make()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (2, 4) and d.class_ids.dtype == np.int64
    assert d.class_names == ("dog", "cat") and len(d) == 2
    np.testing.assert_array_equal(d.xywh[0], [10, 20, 40, 60])


def test_dict_is_json_serialisable():
    out = json.loads(json.dumps(make().to_dict()))
    assert out["image_size"] == [100, 200]
    assert out["detections"][0] == {"box_xyxy": [10.0, 20.0, 50.0, 80.0], "score": np.float32(0.9).item(),
                                    "class_id": 1, "class_name": "dog"}


def test_coco_entries_use_xywh_and_the_category_map():
    entries = make().to_coco(image_id=42, category_ids=[5, 7])
    assert entries[0]["bbox"] == [10.0, 20.0, 40.0, 60.0] and entries[0]["category_id"] == 7
    assert entries[1]["image_id"] == 42 and entries[1]["category_id"] == 5
    assert make().to_coco(1)[0]["category_id"] == 1
