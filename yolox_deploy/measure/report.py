"""What yolox-bench writes: the machine it ran on, the markdown table, JSON, CSV and the plot."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.machine import machine_fingerprint
from ..processing.postprocess import kernel_available
from .config import STAGES, Row


def machine_info() -> dict[str, Any]:
    """:func:`~yolox_deploy.artifacts.machine.machine_fingerprint` plus the GPU, whether the
    C++ kernel is built, and OpenVINO's CPU capabilities."""
    gpu = "none"
    if shutil.which("nvidia-smi"):
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() or "none"
        except (OSError, subprocess.SubprocessError):
            pass
    return {**machine_fingerprint(),
            "postprocess_kernel": "C++ kernel built" if kernel_available() else
            "C++ kernel NOT built: NumPy reference (no compiler at install time)",
            "openvino_cpu_capabilities": openvino_cpu_capabilities(), "gpu": gpu}


def openvino_cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for the CPU (which precisions it runs natively)."""
    try:
        import openvino as ov
    except ImportError:
        return []
    try:
        return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except RuntimeError:
        return []


TABLE_COLUMNS = ("backend", "precision", "batch", "input", "sliced", "pre ms/img", "infer ms/img", "post ms/img",
                 "e2e mean ms", "e2e p50", "e2e p90", "e2e p99", "img/s", "slices/s", "CPU ms/img", "mAP50-95", "mAP50",
                 "ΔmAP vs torch fp32",
                 "status")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        timed = r.ok and bool(r.ms)
        e2e = r.ms.get("end_to_end", {})
        out.append([r.backend, r.precision, str(r.batch), r.model_input, r.sliced,
                    _fmt(r.per_image_ms("preprocess")) if timed else "",
                    _fmt(r.per_image_ms("inference")) if timed else "",
                    _fmt(r.per_image_ms("postprocess")) if timed else "",
                    _fmt(e2e.get("mean")), _fmt(e2e.get("p50")), _fmt(e2e.get("p90")), _fmt(e2e.get("p99")),
                    _fmt(r.images_per_s, 1), _fmt(r.slices_per_s, 1), _fmt(r.cpu_ms_per_image), _fmt(r.mAP50_95, 4), _fmt(r.mAP50, 4),
                    "" if r.delta_mAP50_95 is None else f"{r.delta_mAP50_95:+.4f}", r.status if r.ok else f"{'skipped' if r.skipped else 'FAILED'}: {r.status}"])
    return out


def markdown_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v != "not installed")
    c = result["config"]
    size = "x".join(map(str, c["input_size"])) if c["input_size"] else "as stored in the model"
    features = " ".join(m.get("cpu_features", [])) or "unknown"
    capabilities = ", ".join(m.get("openvino_cpu_capabilities", [])) or "openvino not installed"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}; {m['os']}; Python {m['python']}; {versions}",
             f"CPU features: {features}; OpenVINO CPU capabilities: {capabilities}; postprocess: "
             f"{m.get('postprocess_kernel', 'unknown')}; every row computes in "
             "FP32 unless its precision is bf16 (fp16/int8 rows: FP16/INT8 model files, FP32 arithmetic elsewhere)",
             f"Model: {c['model_name']} ({c['source']}), "
             f"input {size}, conf {c['conf']}, iou {c['iou']}; e2e columns are per batch (ms), stage "
             "columns per image (p50); input u8 NHWC: the runtime casts the letterboxed pixels to float "
             "inside the model, so that cast counts as inference", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + " --- |" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result["rows"])]
    s = result["summary"]
    if s:
        lines.append("")
        lines.append(f"pre+post overhead of onnxruntime b1: {s['pre_post_overhead_pct']:.1f}% of inference (p50)"
                     + (f"; end-to-end p50 vs the official demo baseline: {s['e2e_ratio_vs_baseline']:.2f}x"
                        if "e2e_ratio_vs_baseline" in s else "")
                     + (f"; slicing and merging cost {s['slicing_overhead_pct']:.1f}% over whole images per model "
                        "input (img/s of the whole-image row against slices/s of its sliced twin)"
                        if "slicing_overhead_pct" in s else ""))
    return "\n".join(lines)


def to_jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "rows": [dataclasses.asdict(r) for r in result["rows"]]}


def write_json(result: dict[str, Any], path: Path) -> None:
    Path(path).write_text(json.dumps(to_jsonable(result), indent=1))


def write_csv(result: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        writer.writerows(table_rows(result["rows"]))


def _label_offsets(points: Sequence[tuple[float, float]], step: float = 10.0) -> list[float]:
    """Vertical label offsets (points) so labels of nearby scatter points do not overprint:
    each point's label moves down one ``step`` per earlier neighbour within ~15% of the x
    range and ~5% of the y range."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xr, yr = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    offsets: list[float] = []
    for i, (x, y) in enumerate(points):
        near = sum(1 for (x0, y0) in points[:i] if abs(x - x0) < 0.15 * xr and abs(y - y0) < 0.05 * yr)
        offsets.append(-step * near)
    return offsets


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Per-image stage latency bars (p50) and a latency/accuracy scatter."""
    from .._optional import require

    require("matplotlib", extra="bench", purpose="--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r.ok and r.ms]
    labels = [f"{r.backend} {r.precision} b{r.batch}{' sliced' if r.sliced else ''}" for r in rows]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(14, max(3.5, 0.45 * len(rows) + 1.5)))
    left = np.zeros(len(rows))
    for stage, color in zip(STAGES[:3], ("#4c72b0", "#dd8452", "#55a868")):
        values = np.array([r.per_image_ms(stage) for r in rows])
        bars.barh(labels, values, left=left, color=color, label=stage)
        left += values
    bars.invert_yaxis()
    bars.set_xlabel("ms per image (p50)")
    bars.set_title("latency by stage")
    bars.legend(loc="lower right")
    with_map = [r for r in rows if r.mAP50_95 is not None]
    if with_map:
        points = [(r.per_image_ms("end_to_end"), r.mAP50_95) for r in with_map]
        for r, point, dy in zip(with_map, points, _label_offsets(points)):
            scatter.scatter(*point, s=40)
            scatter.annotate(f"{r.backend} {r.precision}{' sliced' if r.sliced else ''}", point, fontsize=8, xytext=(4, 4 + dy),
                             textcoords="offset points")
        scatter.set_xlabel("end-to-end ms per image (p50)")
        scatter.set_ylabel("COCO mAP50-95")
        scatter.set_title("speed vs accuracy")
    else:
        scatter.text(0.5, 0.5, "no accuracy data\n(pass --data DIR --ann JSON)", ha="center", va="center")
        scatter.set_axis_off()
    m = result["machine"]
    fig.suptitle(f"{result['config']['model_name']} on {m['cpu']} ({m['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
