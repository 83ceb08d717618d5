"""What ``yolox-tune`` shows: the candidate table with the chosen row marked, what was
skipped and why, and the Pareto front of latency (or images/s) against accuracy."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._optional import require
from .candidates import Skipped
from .choice import TuneRow, objective

CHOSEN_MARK = "->"


def _fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    return "" if value is None else f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[TuneRow], skipped: Sequence[Skipped], accuracy_label: str,
                   max_ap_drop: float | None = None, images: int | None = None) -> str:
    """The table (chosen row marked ``->``), then one line per skipped candidate. ΔmAP has its
    95% bootstrap interval over ``images`` evaluation images; "uncertain": the interval crosses
    ``-max_ap_drop`` or rests on too few images (never chosen)."""
    head = ("", "backend", "precision", "threads", "p50 ms", "p99 ms", "CPU ms/img", "x FP32", "batch", "img/s",
            f"mAP50-95 ({accuracy_label})", "ΔmAP [95% interval]", "role")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        delta = _fmt(r.delta_mAP50_95, 4, signed=True)
        if r.delta_low is not None and r.delta_high is not None and r.delta_mAP50_95 is not None:
            delta += f" [{r.delta_low:+.4f}, {r.delta_high:+.4f}]"
        role = r.role + (", uncertain" if r.uncertain else "") + (
            f" (interval on {images} images: too few)" if r.too_few_images else "") + (
            f", busy machine ({r.others_cpu_share:.0%} CPU to others): speed does not rank" if r.busy else "")
        if max_ap_drop is not None and r.delta_mAP50_95 is not None and r.delta_mAP50_95 < -max_ap_drop - 1e-12:
            role += ", outside the bound"
        threads = f"{r.threads}{' spin' if r.spinning else ''}"
        precision = f"{r.precision} ({len(r.float_convs)} float)" if r.float_convs else r.precision
        cells = (CHOSEN_MARK if r.chosen else "", r.backend, precision, threads, _fmt(r.p50_ms),
                 _fmt(r.p99_ms), _fmt(r.cpu_ms_per_image), _fmt(r.speedup), str(r.batch), _fmt(r.images_per_s, 1),
                 _fmt(r.mAP50_95, 4), delta, role)
        lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for s in skipped:
            by_reason.setdefault(s.reason, []).append(s.candidate)
        lines += ["", f"Skipped ({len(skipped)}):"]
        lines += [f"- {', '.join(names)}: {reason}" for reason, names in by_reason.items()]
    return "\n".join(lines)


def pareto_front(rows: Sequence[TuneRow], by_throughput: bool) -> list[TuneRow]:
    """Rows no other row beats on both speed (the choice's objective) and accuracy, fastest first."""
    measured = [r for r in rows if r.speedup is not None and r.mAP50_95 is not None]
    front, best = [], float("-inf")
    for r in sorted(measured, key=lambda r: (-objective(r, by_throughput), -r.mAP50_95)):
        if r.mAP50_95 > best:
            front.append(r)
            best = r.mAP50_95
    return front


def write_pareto_plot(rows: Sequence[TuneRow], path: Path, *, by_throughput: bool, max_ap_drop: float,
                      reference_map: float, title: str) -> Path:
    """A PNG: every measured candidate (speed as the choice saw it against mAP50-95), one
    colour per backend, the Pareto front labelled, the accuracy bound and the chosen one."""
    require("matplotlib", extra="tune", purpose="the Pareto plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.speedup is not None and r.mAP50_95 is not None]
    front = pareto_front(measured, by_throughput)
    colours = dict(zip(sorted({r.backend for r in measured}), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for backend, colour in colours.items():
        mine = [r for r in measured if r.backend == backend]
        ax.scatter([objective(r, by_throughput) for r in mine], [r.mAP50_95 for r in mine], s=30, color=colour,
                   label=backend, zorder=3)
    ax.plot([objective(r, by_throughput) for r in front], [r.mAP50_95 for r in front], color="gray", lw=1,
            label="Pareto front")
    for r in measured:
        if r in front or r.chosen:
            ax.annotate(r.label + (" (chosen)" if r.chosen else ""), (objective(r, by_throughput), r.mAP50_95),
                        fontsize=7, textcoords="offset points", xytext=(-10, -12) if r.chosen else (4, 3),
                        ha="right" if r.chosen else "left", weight="bold" if r.chosen else None)
        if r.chosen:
            ax.scatter(objective(r, by_throughput), r.mAP50_95, s=160, marker="*", color="tab:red", zorder=4)
    ax.axhline(reference_map - max_ap_drop, color="gray", ls="--", lw=1,
               label=f"FP32 reference - max-ap-drop ({max_ap_drop})")
    ax.set_xlabel("images/s at its best batch (higher is better)" if by_throughput
                  else "batch-1 speed: FP32 ONNX Runtime p50 / this p50, timed interleaved (higher is better)")
    ax.set_ylabel("mAP50-95")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
