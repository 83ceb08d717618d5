"""ΔmAP50-95 against the FP32 reference, with a bootstrap interval, with or without labels.

With labels it is the COCO mAP50-95 difference on the evaluation images. Without labels it
is an estimate of that difference. The FP32 reference's detections (evaluator settings)
are turned into sampled ground truths that look, to the reference, like real labels do:

- each detection is an object with a probability equal to its score (YOLOX scores are
  roughly calibrated), so the reference has misses and false positives against them;
- each kept box's edges move by a normal error of :data:`BOX_SIGMA` of its width/height,
  so the reference's own boxes are not exact.

A candidate whose boxes moved 1-2 pixels from the reference's then loses what it would
lose against real labels (about nothing) instead of failing the IoU 0.95 threshold, while
missed, added, re-ranked or badly moved detections still cost what they cost. Both models
are scored against the same :data:`SAMPLES` truths and the differences averaged.

The interval is a paired bootstrap over images (the same resampled images for both
models): 2.5 and 97.5 percentiles of :data:`BOOTSTRAP` resamples. For speed, the
per-image COCO matching (pycocotools' ``evaluate``) is done once per truth and model; a
resample only reweights the images in the precision/recall accumulation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..detections import Detections

BOX_SIGMA = 0.15  # box edge error of the sampled truths, relative to the box's width/height
SAMPLES = 6  # sampled truths per estimate
BOOTSTRAP = 200
# fewer evaluation images than this make no interval sure, whatever the precision (ncnn fp16 lost 0.014 mAP on
# 80 images); yolox-tune's split leaves half of --data for evaluation, so give at least 40 images
MIN_INTERVAL_IMAGES = 20
SEED = 0
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclasses.dataclass(frozen=True)
class Delta:
    """ΔmAP50-95 (candidate minus reference) and its 95% bootstrap interval over ``images``
    evaluation images (None: the reference itself, exact)."""

    value: float
    low: float
    high: float
    images: int | None = None

    @property
    def too_few_images(self) -> bool:
        """Whether the interval rests on fewer than :data:`MIN_INTERVAL_IMAGES` images: a bootstrap
        over one image resamples it alone every time (a zero-width interval), over a few it is no
        wider than those few images' spread, so it cannot make a call sure."""
        return self.images is not None and self.images < MIN_INTERVAL_IMAGES

    def crosses(self, bound: float) -> bool:
        """Whether the call is not sure: the interval holds both sides of ``-bound``, or it rests
        on too few images."""
        return self.too_few_images or self.low < -bound - 1e-12 <= self.high


@dataclasses.dataclass
class CategoryMatches:
    """One category's detections over all images in score order: image index, matched
    (T x D, per IoU threshold) and ignored flags; and non-ignored ground truths per image."""

    image: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    truths: np.ndarray


def coco_matches(truth: dict[str, Any], results: Sequence[dict[str, Any]], image_ids: Sequence[int]
                 ) -> list[CategoryMatches]:
    """pycocotools' per-image matching (area 'all', 100 detections per image) of ``results``
    against the COCO dataset dict ``truth``, regrouped per category for :func:`weighted_map`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        dt = gt.loadRes(list(results)) if results else COCO()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.imgIds = list(image_ids)
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        evaluator.params.maxDets = [100]
        evaluator.evaluate()
    n_images, thresholds = len(evaluator.params.imgIds), len(evaluator.params.iouThrs)
    position = {image_id: i for i, image_id in enumerate(evaluator.params.imgIds)}
    categories = []
    for c in range(len(evaluator.params.catIds)):
        entries = evaluator.evalImgs[c * n_images:(c + 1) * n_images]
        truths = np.zeros(n_images)
        images, scores, matched, ignored = [], [], [], []
        for entry in entries:
            if entry is None:
                continue
            i = position[entry["image_id"]]
            truths[i] = np.count_nonzero(np.asarray(entry["gtIgnore"]) == 0)
            count = len(entry["dtScores"])
            images.append(np.full(count, i))
            scores.append(np.asarray(entry["dtScores"], dtype=float))
            matched.append(np.asarray(entry["dtMatches"]).reshape(thresholds, count) > 0)
            ignored.append(np.asarray(entry["dtIgnore"]).reshape(thresholds, count).astype(bool))
        if not scores:
            categories.append(CategoryMatches(np.zeros(0, int), np.zeros((thresholds, 0), bool),
                                              np.zeros((thresholds, 0), bool), truths))
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        categories.append(CategoryMatches(np.concatenate(images)[order], np.concatenate(matched, axis=1)[:, order],
                                          np.concatenate(ignored, axis=1)[:, order], truths))
    return categories


def weighted_map(categories: Sequence[CategoryMatches], weights: np.ndarray | None = None) -> float:
    """COCO mAP50-95 with each image counted ``weights[i]`` times (None: once each); with
    unit weights it equals pycocotools' ``stats[0]``."""
    per_category = []
    for cat in categories:
        w_images = np.ones(len(cat.truths)) if weights is None else weights
        truths = float(np.dot(w_images, cat.truths))
        if truths == 0:
            continue  # no ground truth: the category does not count (-1 in pycocotools)
        w = w_images[cat.image]
        tp = np.cumsum(w * (cat.matched & ~cat.ignored), axis=1)
        fp = np.cumsum(w * (~cat.matched & ~cat.ignored), axis=1)
        ap = np.zeros(cat.matched.shape[0])
        if tp.shape[1]:
            recall = tp / truths
            precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
            envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            for t in range(len(ap)):
                at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
                q = np.where(at < envelope.shape[1], envelope[t, np.minimum(at, envelope.shape[1] - 1)], 0.0)
                ap[t] = q.mean()
        per_category.append(ap)
    return float(np.mean(per_category)) if per_category else 0.0


def coco_results(detections: Sequence[Detections], image_ids: Sequence[int], category_ids: Sequence[int]
                 ) -> list[dict[str, Any]]:
    return [r for image_id, found in zip(image_ids, detections) for r in found.to_coco(image_id, category_ids)]


def sampled_truths(reference: Sequence[Detections], image_ids: Sequence[int], image_sizes: Sequence[tuple[int, int]],
                   classes: int, samples: int = SAMPLES, seed: int = SEED) -> list[dict[str, Any]]:
    """``samples`` COCO dataset dicts drawn from the reference's detections (see the module)."""
    rng = np.random.default_rng(seed)
    entries = [{"id": int(i), "height": int(h), "width": int(w)} for i, (h, w) in zip(image_ids, image_sizes)]
    categories = [{"id": c} for c in range(classes)]
    truths = []
    for _ in range(samples):
        boxes: list[dict[str, Any]] = []
        for image_id, found in zip(image_ids, reference):
            kept = rng.random(len(found)) < found.scores
            xyxy = found.xyxy[kept].astype(float)
            wh = xyxy[:, 2:] - xyxy[:, :2]
            size = np.concatenate([wh, wh], axis=1)  # each edge moves with its box's width or height
            moved = xyxy + rng.normal(0.0, BOX_SIGMA, xyxy.shape) * size
            for (x1, y1, x2, y2), class_id in zip(moved, found.class_ids[kept]):
                w, h = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
                boxes.append({"id": len(boxes) + 1, "image_id": int(image_id), "category_id": int(class_id),
                              "bbox": [float(x1), float(y1), float(w), float(h)], "area": float(w * h),
                              "iscrowd": 0})
        truths.append({"images": entries, "annotations": boxes, "categories": categories})
    return truths


class ScoringCut(Exception):
    """The deadline came in the middle of scoring (the bootstrap resamples)."""


def _check(deadline: float | None, what: str, done: int, total: int) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ScoringCut(f"{what}: {done} of {total} bootstrap resamples")


class DeltaScorer:
    """Scores candidates against fixed truths (the labels, or the sampled ones) and the
    reference's matches, computed once. ``deadline`` (``time.monotonic()``) bounds the
    bootstrap: :class:`ScoringCut` past it."""

    def __init__(self, truths: Sequence[dict[str, Any]], image_ids: Sequence[int], category_ids: Sequence[int],
                 reference: Sequence[Detections], seed: int = SEED, deadline: float | None = None):
        self.truths, self.image_ids, self.category_ids = list(truths), list(image_ids), list(category_ids)
        self.reference = self.matches(reference, deadline)
        rng = np.random.default_rng(seed)
        n = len(self.image_ids)
        self.resamples = rng.multinomial(n, np.full(n, 1.0 / n), size=BOOTSTRAP).astype(float)
        self.reference_map = float(np.mean([weighted_map(m) for m in self.reference]))
        # the reference's mAP in each resample, computed once for every candidate
        self.reference_resampled = []
        for b, weights in enumerate(self.resamples):
            _check(deadline, "the reference", b, len(self.resamples))
            self.reference_resampled.append(weighted_map(self.reference[b % len(self.truths)], weights))

    def matches(self, detections: Sequence[Detections], deadline: float | None = None) -> list[list[CategoryMatches]]:
        results = coco_results(detections, self.image_ids, self.category_ids)
        found, longest = [], 0.0
        for k, truth in enumerate(self.truths):
            if deadline is not None and time.monotonic() + longest > deadline:  # the next would end past it
                raise ScoringCut(f"matching {k} of {len(self.truths)} truths")
            started = time.monotonic()
            found.append(coco_matches(truth, results, self.image_ids))
            longest = max(longest, time.monotonic() - started)
        return found

    def score(self, detections: Sequence[Detections], deadline: float | None = None) -> tuple[float, Delta]:
        """(the candidate's mAP50-95 against the truths, its Δ against the reference)."""
        candidate = self.matches(detections, deadline)
        maps = [weighted_map(m) for m in candidate]
        value = float(np.mean(maps)) - self.reference_map
        deltas = []
        for b, weights in enumerate(self.resamples):
            _check(deadline, "the candidate", b, len(self.resamples))
            deltas.append(weighted_map(candidate[b % len(self.truths)], weights) - self.reference_resampled[b])
        low, high = np.percentile(deltas, [2.5, 97.5])
        return float(np.mean(maps)), Delta(value, float(min(low, value)), float(max(high, value)),
                                           len(self.image_ids))
