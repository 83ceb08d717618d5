"""The ΔmAP estimate and its interval: the reweighted accumulation equals pycocotools, a
resample equals physically repeated images, and the label-free estimate tells a 1-pixel
box move (no loss against labels) from lost detections (a real loss)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from yolox_deploy.detections import Detections
from yolox_deploy.evaluation import coco_box_stats, coco_from_dict
from yolox_deploy.tune.data import TuneImages, split_images
from yolox_deploy.tune.estimate import Delta, DeltaScorer, coco_matches, coco_results, sampled_truths, weighted_map

pytest.importorskip("pycocotools")


def random_detections(rng, count, classes=3, size=200.0):
    xy = rng.uniform(0, size * 0.7, (count, 2))
    wh = rng.uniform(8, size * 0.3, (count, 2))
    return Detections(np.concatenate([xy, xy + wh], axis=1).astype(np.float32),
                      rng.uniform(0.02, 1.0, count).astype(np.float32), rng.integers(0, classes, count),
                      [f"c{i}" for i in range(classes)], (int(size), int(size)))


def dataset(detections_per_image, image_ids):
    boxes = []
    for image_id, found in zip(image_ids, detections_per_image):
        for box, cls in zip(found.xywh, found.class_ids):
            boxes.append({"id": len(boxes) + 1, "image_id": image_id, "category_id": int(cls),
                          "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0})
    return {"images": [{"id": i, "height": 200, "width": 200} for i in image_ids], "annotations": boxes,
            "categories": [{"id": c} for c in range(3)]}


@pytest.mark.parametrize("seed", range(4))
def test_unit_weights_give_pycocotools_map_and_weights_equal_repeated_images(seed):
    rng = np.random.default_rng(seed)
    ids = list(range(1, 9))
    truth = dataset([random_detections(rng, rng.integers(0, 6)) for _ in ids], ids)
    predictions = [random_detections(rng, rng.integers(0, 12)) for _ in ids]
    results = coco_results(predictions, ids, [0, 1, 2])
    matches = coco_matches(truth, results, ids)
    assert weighted_map(matches) == pytest.approx(coco_box_stats(coco_from_dict(truth), results)["mAP50_95"],
                                                  abs=1e-12)
    # weights 2/0/1... equal a dataset where image i appears w_i times (new ids for the copies)
    weights = rng.integers(0, 3, len(ids)).astype(float)
    weights[0] = max(weights[0], 1)
    copies, copy_predictions, copy_truths = [], [], []
    for i, w in zip(ids, weights):
        for k in range(int(w)):
            copies.append(i * 100 + k)
            copy_predictions.append(predictions[i - 1])
    copy_truth = {**truth, "images": [{"id": c, "height": 200, "width": 200} for c in copies],
                  "annotations": [{**a, "id": n + 1, "image_id": c}
                                  for n, (c, a) in enumerate((c, a) for c in copies for a in truth["annotations"]
                                                             if a["image_id"] == c // 100)]}
    repeated = coco_box_stats(coco_from_dict(copy_truth), coco_results(copy_predictions, copies, [0, 1, 2]))
    assert weighted_map(matches, weights) == pytest.approx(repeated["mAP50_95"], abs=2e-3)  # ties may order apart
    del copy_truths


def test_the_label_free_estimate_forgives_a_pixel_and_counts_lost_detections():
    rng = np.random.default_rng(0)
    ids = list(range(1, 31))
    reference = [random_detections(rng, 8, size=400.0) for _ in ids]
    moved = [Detections(d.xyxy + rng.uniform(-1, 1, d.xyxy.shape).astype(np.float32), d.scores, d.class_ids,
                        d.class_names, d.image_size) for d in reference]
    dropped = [Detections(d.xyxy[::2], d.scores[::2], d.class_ids[::2], d.class_names, d.image_size)
               for d in reference]
    truths = sampled_truths(reference, ids, [(400, 400)] * len(ids), 3)
    scorer = DeltaScorer(truths, ids, [0, 1, 2], reference)
    _, same = scorer.score(reference)
    _, pixel = scorer.score(moved)
    _, lost = scorer.score(dropped)
    assert same == Delta(0.0, 0.0, 0.0, images=30)
    assert abs(pixel.value) < 0.01 and pixel.low <= pixel.value <= pixel.high
    assert lost.value < -0.05 and lost.high < -0.03
    # against the reference's own boxes as exact labels, the same 1-pixel move looks like a loss
    exact = DeltaScorer([dataset([Detections(d.xyxy[d.scores >= 0.25], d.scores[d.scores >= 0.25],
                                              d.class_ids[d.scores >= 0.25], d.class_names, d.image_size)
                                   for d in reference], ids)],
                        ids, [0, 1, 2], reference)
    assert exact.score(moved)[1].value < 3 * pixel.value - 0.02


def test_an_interval_crossing_the_bound_is_uncertain():
    assert Delta(-0.004, -0.02, 0.01).crosses(0.01)
    assert not Delta(-0.004, -0.009, 0.01).crosses(0.01)
    assert not Delta(-0.03, -0.04, -0.02).crosses(0.01)


def test_the_split_is_seeded_disjoint_and_recorded(tmp_path):
    files = [tmp_path / f"{i:03d}.jpg" for i in range(50)]
    images = TuneImages(tmp_path, files, [np.zeros((4, 4, 3), np.uint8)] * 50, list(range(1, 51)),
                        {"images": [{"id": i} for i in range(1, 51)],
                         "annotations": [{"id": i, "image_id": i} for i in range(1, 51)], "categories": []})
    split = split_images(images, seed=3)
    record = split.record()
    assert len(record["calibration"]) == 25 and len(record["evaluation"]) == 25
    assert not set(record["calibration"]) & set(record["evaluation"])
    assert split_images(images, seed=3).record() == record != split_images(images, seed=4).record()
    assert {a["image_id"] for a in split.evaluation.annotations["annotations"]} == set(split.evaluation.image_ids)
    assert not split.too_small and split_images(TuneImages(tmp_path, files[:30], images.images[:30],
                                                           list(range(1, 31))), 0).too_small
    json.dumps(record)


def test_mixed_int8_harm_counts_what_the_detections_use():
    """A run that moves the box regression of background anchors a lot harms less than one that
    moves the scores at the anchors that detect (plain relative L2 ranked them the other way)."""
    from yolox_deploy.tune.mixed_int8 import output_harm

    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 0.05, (1, 3549, 85)).astype(np.float32)
    reference[..., :4] = rng.normal(0, 20, (1, 3549, 4))  # raw box values: large
    foreground = rng.choice(3549, 30, replace=False)
    reference[0, foreground, 4] = 0.9
    reference[0, foreground, 5] = 0.9
    background_boxes = reference.copy()
    background = np.setdiff1d(np.arange(3549), foreground)
    background_boxes[0, background, :4] += rng.normal(0, 5, (len(background), 4))
    foreground_scores = reference.copy()
    foreground_scores[0, foreground, 4] -= 0.2
    plain = [float(np.linalg.norm(x - reference) / np.linalg.norm(reference))
             for x in (background_boxes, foreground_scores)]
    assert plain[0] > plain[1]  # the old ranking: the background boxes look worse
    assert output_harm([foreground_scores], [reference]) > output_harm([background_boxes], [reference])
    assert output_harm([reference], [reference]) == 0.0
