"""One measured candidate, and the choice: the fastest within the accuracy bound."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TuneRow:
    """A measured candidate. Latencies are end-to-end ms per call at batch 1 (decode of the
    image excluded, letterbox + inference + postprocess included); ``speedup``: the FP32
    ONNX Runtime reference's p50 over this p50, timed in the same interleaved window;
    ``images_per_s`` at ``batch``; ``delta_mAP50_95`` against the FP32 reference."""

    backend: str
    precision: str
    threads: int
    arithmetic: str = "fp32"
    model_file: str = ""
    role: str = "candidate"  # "reference", "reference only" (left out by --backends/--precisions), "candidate"
    p50_ms: float | None = None
    p99_ms: float | None = None
    speedup: float | None = None
    batch: int = 1
    images_per_s: float | None = None
    images_per_s_by_batch: dict[int, float] = dataclasses.field(default_factory=dict)
    mAP50_95: float | None = None
    mAP50: float | None = None
    delta_mAP50_95: float | None = None
    export_s: float = 0.0  # exporting its model file in this run (0: found in the cache)
    accuracy_s: float = 0.0
    chosen: bool = False

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} x{self.threads}"

    @property
    def choosable(self) -> bool:
        return self.role != "reference only" and self.delta_mAP50_95 is not None and self.p50_ms is not None

    def within(self, max_ap_drop: float) -> bool:
        return self.delta_mAP50_95 is not None and self.delta_mAP50_95 >= -max_ap_drop - 1e-12


def objective(row: TuneRow, by_throughput: bool) -> float:
    """Larger is better: images/s at its batch, or the batch-1 speedup over FP32."""
    return (row.images_per_s or 0.0) if by_throughput else (row.speedup or 0.0)


TIE = 0.03  # speeds within 3% of the fastest are a tie on a shared machine: the most accurate of them wins


def choose(rows: list[TuneRow], max_ap_drop: float, by_throughput: bool) -> tuple[TuneRow | None, TuneRow | None]:
    """(the fastest choosable row within ``max_ap_drop``, None) or, when none is within it,
    (None, the choosable row that lost the least accuracy). Rows within :data:`TIE` of the
    fastest count as equally fast; of those, the most accurate, then the fewest threads."""
    choosable = [r for r in rows if r.choosable]
    within = [r for r in choosable if r.within(max_ap_drop)]
    if within:
        fastest = max(objective(r, by_throughput) for r in within)
        tied = [r for r in within if objective(r, by_throughput) >= fastest * (1 - TIE)]
        return max(tied, key=lambda r: (round(r.delta_mAP50_95, 6), -r.threads, objective(r, by_throughput))), None
    closest = max(choosable, key=lambda r: r.delta_mAP50_95, default=None)
    return None, closest
