"""The yolox-bench engine: latency and accuracy of backends x precisions x batch sizes.

Models are exported on demand into a cache (one dynamic-batch ONNX per model and size,
then each backend's format from it), every combination is timed per stage through the
same :class:`~yolox_deploy.Detector` users call, and a baseline row times the official
ONNX Runtime demo pipeline on the same FP32 ONNX in the same run. Rows that cannot run
(backend not installed, precision not offered, export failing) are kept, with the reason.

This module runs the whole measurement; its parts: ``config`` (what is measured, one
row), ``models`` (exporting, caching and opening the rows' models), ``timing``
(interleaved timing), ``accuracy`` (mAP) and ``report`` (table, JSON, CSV, plot).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .accuracy import add_map, reference_map
from .config import BASELINE, PRECISIONS, BenchConfig, Row
from .models import ModelCache, open_baseline, open_file_row, open_row, open_sliced_row
from .report import machine_info, markdown_table, write_csv, write_json, write_plot
from .timing import fill_timings, time_interleaved

__all__ = ["BASELINE", "PRECISIONS", "BenchConfig", "Row", "markdown_table", "overhead_summary", "run_bench",
           "write_csv", "write_json", "write_plot"]


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure every combination; return {"machine", "config", "rows", "summary"}."""
    if cfg.models:
        cache = None
        name, input_size = ", ".join(Path(m).name for m in cfg.models), cfg.input_size
        # each file on each named backend, or on its suffix's backend when none is named
        combos = [(m, n, b) for m in cfg.models for b in (cfg.backends or [None]) for n in cfg.batches]
        opened = [open_file_row(cfg, *combo) for combo in tqdm(combos, desc="loading", disable=not cfg.progress)]
        onnx_source = next((Path(m) for m in cfg.models if Path(m).suffix.lower() == ".onnx"), None)
    else:
        cache = ModelCache(cfg)
        name, input_size = cache.name, cache.input_size
        combos = [(b, p, n) for b in cfg.backends for p in cfg.precisions for n in cfg.batches]
        opened = [open_row(cfg, cache, *combo)
                  for combo in tqdm(combos, desc="exporting/loading", disable=not cfg.progress)]
        onnx_source = cache.onnx
    if cfg.slices is not None:
        opened += [open_sliced_row(cfg, row) for row, call in opened if call is not None]
    if cfg.baseline:
        opened.append(open_baseline(cfg, onnx_source, input_size))
    rows = [row for row, _ in opened]
    runnable = [(row, call) for row, call in opened if call is not None]
    cpu_ms: dict[int, list[float]] = {}
    for i, ((row, _), samples) in enumerate(zip(runnable, time_interleaved(runnable, cfg, cpu_ms).values())):
        fill_timings(row, samples, cpu_ms.get(i, ()))
    for row in tqdm(rows, desc="mAP", disable=not cfg.progress or cfg.ann is None):
        add_map(cfg, row)
    if cfg.ann is not None:
        ref = reference_map(cfg, rows, cache)
        for row in rows:
            if ref is not None and row.mAP50_95 is not None:
                row.delta_mAP50_95 = row.mAP50_95 - ref
    return {"machine": machine_info(),
            "config": {"model_name": name, "weights": str(cfg.weights) if cfg.weights else None,
                       "source": str(cfg.weights) if cfg.weights else "model files as given" if cfg.models
                       else "seeded random weights",
                       "input_size": list(input_size) if input_size else None, "conf": cfg.conf, "iou": cfg.iou,
                       "iters": cfg.iters, "seconds": cfg.seconds, "warmup": cfg.warmup, "threads": cfg.threads,
                       "slices": None if cfg.slices is None else dataclasses.asdict(cfg.slices)},
            "rows": rows, "summary": overhead_summary(rows)}


def overhead_summary(rows: list[Row]) -> dict[str, float]:
    """Our ONNX Runtime FP32 batch-1 row against the baseline row of the same run."""
    ours = next((r for r in rows if r.ok and r.backend.startswith("onnxruntime") and r.batch == 1
                 and r.precision in ("fp32", "as exported")), None)
    base = next((r for r in rows if r.ok and r.backend == BASELINE), None)
    if ours is None:
        return {}
    sliced = next((r for r in rows if r.ok and r.sliced and r.backend == ours.backend and r.batch == ours.batch
                   and r.precision == ours.precision), None)
    summary = {"pre_post_overhead_pct": 100 * (ours.ms["preprocess"]["p50"] + ours.ms["postprocess"]["p50"])
               / ours.ms["inference"]["p50"]}
    if sliced is not None and ours.images_per_s and sliced.slices_per_s:
        # each slice is one model input, as each whole image is: the cost of slicing and merging
        summary["slicing_overhead_pct"] = 100 * (ours.images_per_s / sliced.slices_per_s - 1)
    if base is not None:
        summary["e2e_ratio_vs_baseline"] = ours.ms["end_to_end"]["p50"] / base.ms["end_to_end"]["p50"]
    return summary
