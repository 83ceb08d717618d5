"""Speed of a candidate: batch-1 latency timed in interleaved blocks with the FP32
reference (so a load change on the machine hits both alike), and images/s per batch size."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..measure.config import BenchConfig, Call, Row
from ..measure.timing import fill_timings, time_interleaved
from ..detector import Detector

WARMUP_CALLS = 3
SETTLE_MS = 50.0


def timing_config(seconds: float) -> BenchConfig:
    return BenchConfig(backends=(), warmup=WARMUP_CALLS, seconds=seconds, block=5, settle_ms=SETTLE_MS,
                       progress=False)


def timed_call(detector: Detector, images: Sequence[np.ndarray]) -> Call:
    """One call of ``detector`` on ``images`` -> its (preprocess, inference, postprocess) ms."""
    batch = list(images)

    def call() -> tuple[float, float, float]:
        detector(batch)
        t = detector.timings
        return t.preprocess_ms, t.inference_ms, t.postprocess_ms

    return call


def latency_ms(calls: Sequence[Call], seconds: float) -> list[dict[str, float]]:
    """End-to-end ms per call (mean, p50, p90, p99) of each of ``calls``, timed interleaved
    for about ``seconds`` each."""
    rows = [Row("", "", 1) for _ in calls]
    samples = time_interleaved(list(zip(rows, calls)), timing_config(seconds))
    for row, row_samples in zip(rows, samples.values()):
        fill_timings(row, row_samples)
    return [row.ms["end_to_end"] for row in rows]


def images_per_second(detector: Detector, images: Sequence[np.ndarray], batches: Sequence[int],
                      seconds: float) -> dict[int, float]:
    """Images/s of ``detector``'s backend at each batch size it takes (a static-batch model:
    its own only), timed interleaved for about ``seconds`` each."""
    static = detector.backend.input_shape[0]
    sizes = [b for b in batches if static is None or b == static] or [static]
    detectors = [Detector(detector.backend, input_size=detector.input_size, batch_size=b, conf=detector.conf,
                          iou=detector.iou, max_det=detector.max_det) for b in sizes]
    calls = [timed_call(d, [images[i % len(images)] for i in range(b)]) for d, b in zip(detectors, sizes)]
    return {b: b * 1000.0 / ms["mean"] for b, ms in zip(sizes, latency_ms(calls, seconds))}
