"""A candidate's detections on the evaluation images, with the official evaluator's settings
(conf 0.01, class-aware NMS 0.65, all detections, no clipping), under the run's deadline;
they are scored by :mod:`.estimate`."""
from __future__ import annotations

import time

from ..detections import Detections
from ..detector import Detector
from ..pipeline import BatchPipeline
from .data import TuneImages

EVAL_SETTINGS = {"conf": 0.01, "iou": 0.65, "max_det": None, "clip_boxes": False}


class BudgetExhausted(Exception):
    """The time budget ran out in the middle of a candidate's pass over the images."""

    def __init__(self, done: int, total: int, elapsed_s: float):
        super().__init__(f"{done} of {total} images after {elapsed_s:.1f} s")
        self.done, self.total, self.elapsed_s = done, total, elapsed_s


def detect_all(pipeline: BatchPipeline, images: TuneImages, deadline: float) -> list[Detections]:
    """``pipeline``'s detections on every image, one image per backend call. Raises
    :class:`BudgetExhausted` past ``deadline`` (time.monotonic)."""
    start = time.monotonic()
    found: list[Detections] = []
    for done, image in enumerate(images.images):
        if time.monotonic() > deadline:
            raise BudgetExhausted(done, len(images.images), time.monotonic() - start)
        batch, ratios = pipeline.prepare_batch([image])
        found.extend(pipeline.postprocess(pipeline.infer(batch), ratios, [image.shape[:2]]))
    return found


def evaluation_detector(detector: Detector) -> Detector:
    """The official evaluator's settings on the same backend (end-to-end models keep theirs)."""
    if detector.backend.end_to_end:
        return detector
    return Detector(detector.backend, input_size=detector.input_size, batch_size=1, **EVAL_SETTINGS)

