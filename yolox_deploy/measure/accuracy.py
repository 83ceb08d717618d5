"""COCO mAP of the rows' models, and its change against the PyTorch FP32 reference."""
from __future__ import annotations

from pathlib import Path

from ..detector import Detector
from ..errors import YoloxDeployError, first_line
from ..evaluation import evaluate_coco
from ..runtimes import load_backend
from ..slicing import SliceSettings
from .config import BASELINE, BenchConfig, Row
from .models import ModelCache


def add_map(cfg: BenchConfig, row: Row) -> None:
    """mAP of the row's model on --data/--ann (once per model file: at the smallest batch)."""
    if cfg.ann is None or not row.ok or row.batch != min(cfg.batches) or row.backend == BASELINE:
        return
    try:
        row.mAP50_95, row.mAP50 = coco_map(cfg, Path(row.model_file), row.backend_name, row.input_size,
                                           row.arithmetic, cfg.slices if row.sliced else None)
    except (YoloxDeployError, ImportError, OSError, RuntimeError) as exc:
        row.status = f"timed; mAP failed: {first_line(exc)}"


def coco_map(cfg: BenchConfig, path: Path, backend: str, input_size: tuple[int, int],
             arithmetic: str = "fp32", slices: SliceSettings | None = None) -> tuple[float, float]:
    opened = load_backend(path, backend, precision=arithmetic, threads=cfg.threads,
                          **({"model_name": cfg.model_name} if backend == "torch" and cfg.model_name else {}))
    # the official evaluator's settings; an end-to-end model is measured at its baked ones
    settings = {} if opened.end_to_end else {"conf": 0.01, "iou": 0.65, "max_det": None}
    det = Detector(opened, clip_boxes=False, input_size=input_size if backend == "torch" else None, slices=slices,
                   **settings)
    result = evaluate_coco(det, cfg.data, cfg.ann, progress=cfg.progress)
    return result["mAP50_95"], result["mAP50"]


def reference_map(cfg: BenchConfig, rows: list[Row], cache: ModelCache | None) -> float | None:
    """mAP50-95 of the PyTorch FP32 checkpoint: from its row, or measured for the deltas."""
    for row in rows:
        if row.backend.startswith("torch") and row.precision in ("fp32", "as exported") and row.mAP50_95 is not None \
                and not row.sliced:
            return row.mAP50_95
    if cache is None:
        return None
    try:
        return coco_map(cfg, cache.checkpoint(), "torch", cache.input_size)[0]
    except (YoloxDeployError, ImportError) as exc:
        print(f"yolox-bench: no PyTorch reference mAP ({exc})")
        return None
