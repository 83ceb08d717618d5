"""benchmarks/mosaic.py: images scaled into N x N mosaics with their annotations moved along."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from yolox_deploy.benchmarks.mosaic import build_mosaics, main


@pytest.fixture
def four_images(coco_dir, tmp_path):
    """The first four annotated 640x480 images, in a COCO file of their own."""
    dataset = json.loads((coco_dir / "instances_val2017.json").read_text())
    images = sorted((i for i in dataset["images"] if (i["width"], i["height"]) == (640, 480)),
                    key=lambda i: i["file_name"])[:4]
    ids = {i["id"] for i in images}
    subset = {"images": images, "categories": dataset["categories"],
              "annotations": [a for a in dataset["annotations"] if a["image_id"] in ids]}
    path = tmp_path / "four.json"
    path.write_text(json.dumps(subset))
    return path, subset


def test_one_by_one_at_full_size_is_the_image_itself(coco_dir, four_images, tmp_path):
    ann, subset = four_images
    out = build_mosaics(coco_dir / "images", ann, tmp_path / "m", n=1, png=True, progress=False)
    mosaic = json.loads(out.read_text())
    assert len(mosaic["images"]) == 4 and mosaic["categories"] == subset["categories"]
    first = mosaic["images"][0]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "m" / "images" / first["file_name"])),
                                  cv2.imread(str(coco_dir / "images" / first["sources"][0])))
    ids = {i["file_name"]: i["id"] for i in subset["images"]}
    source = [a for name in (m["sources"][0] for m in mosaic["images"]) for a in subset["annotations"]
              if a["image_id"] == ids[name]]  # mosaic order: images by file name, then their annotations
    assert [(a["bbox"], a["area"], a["category_id"]) for a in mosaic["annotations"]] == \
        [(a["bbox"], a["area"], a["category_id"]) for a in source]  # scale 1, no offset: unchanged


def test_a_two_by_two_mosaic_scales_and_moves_boxes(coco_dir, four_images, tmp_path):
    ann, subset = four_images
    out = build_mosaics(coco_dir / "images", ann, tmp_path / "m", n=2, cell=(240, 320), png=True, progress=False)
    mosaic = json.loads(out.read_text())
    assert [(i["height"], i["width"]) for i in mosaic["images"]] == [(480, 640)]
    names = mosaic["images"][0]["sources"]
    by_name = {i["file_name"]: i["id"] for i in subset["images"]}
    expected = []
    for slot, name in enumerate(names):  # each 640x480 image at half size, row by row
        x0, y0 = (slot % 2) * 320, (slot // 2) * 240
        expected += [([x / 2 + x0, y / 2 + y0, w / 2, h / 2], a["area"] / 4, a["category_id"])
                     for a in subset["annotations"] if a["image_id"] == by_name[name] for x, y, w, h in [a["bbox"]]]
    got = [(a["bbox"], a["area"], a["category_id"]) for a in mosaic["annotations"]]
    assert len(got) == len(expected)
    for (box, area, cat), (want_box, want_area, want_cat) in zip(got, expected):
        np.testing.assert_allclose(box, want_box, atol=1e-9)
        assert area == pytest.approx(want_area) and cat == want_cat
    image = cv2.imread(str(tmp_path / "m" / "images" / mosaic["images"][0]["file_name"]))
    first = cv2.resize(cv2.imread(str(coco_dir / "images" / names[0])), (320, 240), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(image[:240, :320], first)


def test_the_command_line(coco_dir, four_images, tmp_path, capsys):
    ann, _ = four_images
    assert main(["--images", str(coco_dir / "images"), "--ann", str(ann), "--n", "2", "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "images" / "mosaic_000.jpg").is_file() and "instances.json" in capsys.readouterr().out
