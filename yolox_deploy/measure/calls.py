"""Timing :class:`~yolox_deploy.Detector` calls against a reference in the same window.

A call rotates through a list of images (letterbox and NMS cost depend on the image size
and on how many objects it holds), and every comparison times the compared detectors
interleaved in one window, so a load change on a shared machine hits them alike. Each
result carries medians, the p99 and the process CPU time per image (all threads).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from ..detector import Detector
from .config import BenchConfig, Call, Row
from .timing import fill_timings, time_interleaved

WARMUP_CALLS = 3
SETTLE_MS = 50.0
BLOCK = 5  # timed calls of a row in a row, each round
ROTATION = 16  # images a timed call rotates through at most (letterbox and NMS cost vary with the image)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Milliseconds per call (``batch`` images), its images/s, and CPU ms per image."""

    batch: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_ms_per_image: float

    @property
    def images_per_s(self) -> float:
        return self.batch * 1000.0 / self.p50_ms


def timing_cost_s(seconds: float, call_s: float, rows: int = 2) -> float:
    """Wall seconds :func:`time_together` takes for ``rows`` calls of ``call_s`` seconds each timed
    for ``seconds``: their warm-up calls, the timed time, and one round past it (settling and a
    block each), which the loop finishes once started."""
    return rows * (seconds + WARMUP_CALLS * call_s + max(SETTLE_MS / 1e3, call_s) + BLOCK * call_s)


def rotation(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The images timed calls rotate through: the first :data:`ROTATION` of ``images``."""
    return list(images[:ROTATION])


def rotating_call(detector: Detector, images: Sequence[np.ndarray], batch: int = 1) -> Call:
    """A call of ``detector`` on the next ``batch`` images of ``images`` (cycling), returning
    its (preprocess, inference, postprocess) ms."""
    cycle = itertools.cycle(range(len(images)))

    def call() -> tuple[float, float, float]:
        detector([images[next(cycle)] for _ in range(batch)])
        t = detector.timings
        return t.preprocess_ms, t.inference_ms, t.postprocess_ms

    return call


def time_together(calls: Sequence[tuple[Call, int]], seconds: float, deadline: float | None = None) -> list[Timing]:
    """Each (call, batch) timed interleaved with the others for about ``seconds`` each, no call
    starting after ``deadline`` (``time.monotonic()``; :class:`~.timing.TimingCut` if one had none)."""
    rows = [Row("", "", batch) for _, batch in calls]
    cfg = BenchConfig(backends=(), warmup=WARMUP_CALLS, seconds=seconds, block=BLOCK, settle_ms=SETTLE_MS,
                      progress=False)
    cpu_ms: dict[int, list[float]] = {}
    samples = time_interleaved([(row, call) for row, (call, _) in zip(rows, calls)], cfg, cpu_ms, deadline)
    timings = []
    for i, (row, row_samples) in enumerate(zip(rows, samples.values())):
        fill_timings(row, row_samples, cpu_ms.get(i, ()))
        e2e = row.ms["end_to_end"]
        timings.append(Timing(row.batch, e2e["p50"], e2e["p99"], e2e["mean"], row.cpu_ms_per_image))
    return timings


def latency_of(detector: Detector, images: Sequence[np.ndarray], seconds: float,
               deadline: float | None = None) -> Timing:
    """Batch-1 latency of ``detector`` alone, rotating through ``images``."""
    (timing,) = time_together([(rotating_call(detector, list(images)), 1)], seconds, deadline)
    return timing


def latency_against(reference: Detector, candidate: Detector, images: Sequence[np.ndarray],
                    seconds: float, deadline: float | None = None) -> tuple[Timing, Timing]:
    """Batch-1 latency of both, same window, each rotating through the same images."""
    rotation = list(images)
    ref, cand = time_together([(rotating_call(reference, rotation), 1), (rotating_call(candidate, rotation), 1)],
                              seconds, deadline)
    return ref, cand


def batch_detector(detector: Detector, batch: int) -> Detector:
    """The same backend and thresholds at another batch size."""
    return Detector(detector.backend, input_size=detector.input_size, batch_size=batch, conf=detector.conf,
                    iou=detector.iou, max_det=detector.max_det)


def batches_taken(detector: Detector, batches: Sequence[int]) -> list[int]:
    """The batch sizes ``detector``'s model takes (a static-batch model: its own only)."""
    static = detector.backend.input_shape[0]
    return [b for b in batches if static is None or b == static] or [static]


def throughput_against(reference: Detector, candidate: Detector, images: Sequence[np.ndarray],
                       batches: Sequence[int], seconds: float,
                       deadline: float | None = None) -> tuple[dict[int, Timing], dict[int, Timing]]:
    """Per batch size, the reference and the candidate timed in the same window (medians),
    rotating through ``images``; the reference at each size the candidate takes (or at its own)."""
    rotation = list(images)
    ref_sizes = batches_taken(reference, batches)
    ref_out, cand_out = {}, {}
    for b in batches_taken(candidate, batches):
        rb = b if b in ref_sizes else ref_sizes[0]
        ref, cand = time_together([(rotating_call(batch_detector(reference, rb), rotation, rb), rb),
                                   (rotating_call(batch_detector(candidate, b), rotation, b), b)], seconds,
                                  deadline)
        ref_out[b], cand_out[b] = ref, cand
    return ref_out, cand_out
