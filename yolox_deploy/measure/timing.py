"""Timing the rows: interleaved blocks with settling, and their percentiles."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from .config import STAGES, BenchConfig, Call, Row


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99))}


class TimingCut(Exception):
    """The deadline came before every row had a timed call."""


def time_interleaved(calls: Sequence[tuple[Row, Call]], cfg: BenchConfig,
                     cpu_ms: dict[int, list[float]] | None = None,
                     deadline: float | None = None) -> dict[int, list[tuple[float, ...]]]:
    """Warm every row up, then time them round-robin for ``iters`` calls or ``seconds`` per
    row, so load changes on a shared machine hit every row alike. Returns samples per
    position in ``calls``; ``cpu_ms`` (if given) receives each timed call's process CPU ms
    (all threads: a runtime's spinning workers count).

    Each round gives every row untimed settling calls for at least ``settle_ms`` (at least
    one call) and then ``block`` timed calls in a row. Runtimes keep their worker threads
    spinning after a call (ncnn's and torch's OpenMP ~20 ms, ONNX Runtime with default session
    options ~40 ms on a 2-core machine); without settling, that spin lands on the next row's
    timing and made ONNX Runtime's inference look 20-50% slower.

    ``deadline`` (``time.monotonic()``): no call starts after it (warm-up calls and rounds are
    cut short); :class:`TimingCut` when a row then has no timed call.
    """
    def past_deadline() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    for row, call in tqdm(calls, desc="warm-up", leave=False, disable=not cfg.progress):
        for _ in range(cfg.warmup):
            if past_deadline():
                break
            call()
    samples: dict[int, list[tuple[float, ...]]] = {i: [] for i in range(len(calls))}
    block = cfg.block
    start = time.perf_counter()
    budget = cfg.seconds * len(calls) if cfg.seconds else None
    with tqdm(total=None if budget else cfg.iters, desc="timing (interleaved blocks)", leave=False,
              disable=not cfg.progress) as bar:
        done = 0
        while ((time.perf_counter() - start < budget) if budget else done < cfg.iters) and not past_deadline():
            n = block if budget else min(block, cfg.iters - done)
            for i, (_, call) in enumerate(calls):
                if past_deadline():
                    break
                settle(call, cfg.settle_ms)
                for _ in range(n):
                    cpu_start = time.process_time()
                    samples[i].append(call())
                    if cpu_ms is not None:
                        cpu_ms.setdefault(i, []).append((time.process_time() - cpu_start) * 1e3)
            done += n
            bar.update(n)
    if any(not timed for timed in samples.values()):
        raise TimingCut(f"timing cut at the deadline after {time.perf_counter() - start:.1f} s")
    return samples


def settle(call: Call, settle_ms: float) -> None:
    """Untimed calls for at least ``settle_ms`` (at least one): the previous row's threads go
    quiet meanwhile, while this row's caches and threads warm up."""
    end = time.perf_counter() + settle_ms / 1e3
    call()
    while time.perf_counter() < end:
        call()


def fill_timings(row: Row, samples: list[tuple[float, float, float]], cpu_ms: Sequence[float] = ()) -> None:
    """The row's per-stage percentiles, images/s, and (given ``cpu_ms`` per call) CPU ms per image."""
    if len(cpu_ms):
        row.cpu_ms_per_image = float(np.median(cpu_ms)) / row.batch
    columns = list(zip(*samples))
    totals = [sum(s) for s in samples]
    row.ms = {stage: summarize(v) for stage, v in zip(STAGES, [*columns, totals])}
    row.images_per_s = row.batch * 1000.0 / row.ms["end_to_end"]["mean"]
    if row.slices_per_image is not None:
        row.slices_per_s = row.images_per_s * row.slices_per_image
