"""Accuracy of a candidate on the user's images: COCO mAP against their annotations, or
against the FP32 reference's own detections (pseudo-labels), with the official evaluator's
settings for the predictions (conf 0.01, class-aware NMS 0.65, all detections, no clipping)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..detections import Detections
from ..detector import Detector
from ..evaluation import coco_box_stats, coco_from_dict
from ..pipeline import BatchPipeline
from .data import TuneImages

EVAL_SETTINGS = {"conf": 0.01, "iou": 0.65, "max_det": None, "clip_boxes": False}


class BudgetExhausted(Exception):
    """The time budget ran out in the middle of a candidate's pass over the images."""

    def __init__(self, done: int, total: int, elapsed_s: float):
        super().__init__(f"{done} of {total} images after {elapsed_s:.1f} s")
        self.done, self.total, self.elapsed_s = done, total, elapsed_s


def detect_all(pipeline: BatchPipeline, images: TuneImages, deadline: float,
               also: BatchPipeline | None = None) -> tuple[list[Detections], list[Detections]]:
    """``pipeline``'s detections on every image, one image per backend call; with ``also``,
    that pipeline's postprocess of the same backend outputs too (other thresholds, one
    inference). Raises :class:`BudgetExhausted` past ``deadline`` (time.monotonic)."""
    start = time.monotonic()
    found: list[Detections] = []
    found_also: list[Detections] = []
    for done, image in enumerate(images.images):
        if time.monotonic() > deadline:
            raise BudgetExhausted(done, len(images.images), time.monotonic() - start)
        batch, ratios = pipeline.prepare_batch([image])
        outputs = pipeline.infer(batch)
        found.extend(pipeline.postprocess(outputs, ratios, [image.shape[:2]]))
        if also is not None:
            found_also.extend(also.postprocess(outputs, ratios, [image.shape[:2]]))
    return found, found_also


def evaluation_detector(detector: Detector) -> Detector:
    """The official evaluator's settings on the same backend (end-to-end models keep theirs)."""
    if detector.backend.end_to_end:
        return detector
    return Detector(detector.backend, input_size=detector.input_size, batch_size=1, **EVAL_SETTINGS)


def coco_map(truth: dict[str, Any], images: TuneImages, detections: Sequence[Detections],
             category_ids: Sequence[int]) -> tuple[float, float]:
    """(mAP50-95, mAP50) of ``detections`` against the COCO dataset dict ``truth``."""
    results = [r for image_id, found in zip(images.image_ids, detections)
               for r in found.to_coco(image_id, category_ids)]
    stats = coco_box_stats(coco_from_dict(truth), results)
    return stats["mAP50_95"], stats["mAP50"]
