"""One measured candidate, and the choice: the fastest within the accuracy bound."""
from __future__ import annotations

import dataclasses

from ..measure.load import BUSY_SHARE


@dataclasses.dataclass
class TuneRow:
    """A measured candidate. Latencies are end-to-end ms per call at batch 1 (decode of the
    image excluded, letterbox + inference + postprocess included), rotating through the
    evaluation images; ``speedup``: the FP32 ONNX Runtime reference's p50 over this p50,
    timed in the same interleaved window; ``images_per_s`` at ``batch`` and
    ``throughput_speedup`` (its images/s over the reference's, same window);
    ``cpu_ms_per_image``: process CPU time (all threads) per image at batch 1;
    ``delta_mAP50_95`` against the FP32 reference with its 95% bootstrap interval
    (``delta_low``, ``delta_high``); ``uncertain``: that interval crosses the bound, or rests on
    too few images (``too_few_images``) to be sure of anything."""

    backend: str
    precision: str
    threads: int
    spinning: bool | None = None
    arithmetic: str = "fp32"
    model_file: str = ""
    role: str = "candidate"  # "reference", "reference only" (left out by --backends/--precisions), "candidate"
    p50_ms: float | None = None
    p99_ms: float | None = None
    speedup: float | None = None
    batch: int = 1
    images_per_s: float | None = None
    images_per_s_by_batch: dict[int, float] = dataclasses.field(default_factory=dict)
    throughput_speedup: float | None = None
    cpu_ms_per_image: float | None = None
    mAP50_95: float | None = None
    delta_mAP50_95: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    uncertain: bool = False
    too_few_images: bool = False  # its interval rests on fewer evaluation images than make any call sure
    others_cpu_share: float | None = None  # the machine's CPU other processes took while it was timed

    @property
    def busy(self) -> bool:
        """Timed while other processes took more than a quarter of the machine: its speed does not rank."""
        return self.others_cpu_share is not None and self.others_cpu_share > BUSY_SHARE
    float_convs: list[str] = dataclasses.field(default_factory=list)  # int8-mixed: the convs kept float
    export_s: float = 0.0  # exporting its model file in this run (0: found in the cache)
    accuracy_s: float = 0.0
    chosen: bool = False

    @property
    def label(self) -> str:
        mixed = f" ({len(self.float_convs)} float)" if self.float_convs else ""
        return f"{self.backend} {self.precision}{mixed} x{self.threads}{' spin' if self.spinning else ''}"

    @property
    def choosable(self) -> bool:
        return self.role != "reference only" and self.delta_mAP50_95 is not None and self.p50_ms is not None

    def within(self, max_ap_drop: float) -> bool:
        """Within the bound and sure of it (its interval does not cross the bound)."""
        return (self.delta_mAP50_95 is not None and self.delta_mAP50_95 >= -max_ap_drop - 1e-12
                and not self.uncertain)


def objective(row: TuneRow, by_throughput: bool) -> float:
    """Larger is better: images/s over the reference's (same window), or the batch-1
    speedup over FP32."""
    return (row.throughput_speedup or 0.0) if by_throughput else (row.speedup or 0.0)


TIE = 0.03  # speeds within 3% of the fastest are a tie on a shared machine: the most accurate of them wins


def choose(rows: list[TuneRow], max_ap_drop: float, by_throughput: bool) -> tuple[TuneRow | None, TuneRow | None]:
    """(the fastest choosable row within ``max_ap_drop`` (and sure of it), None) or, when none
    is, (None, the choosable row that lost the least accuracy). Rows within :data:`TIE` of
    the fastest count as equally fast; of those, the most accurate, then the least CPU time
    per image, then the fewest threads."""
    choosable = [r for r in rows if r.choosable]
    within = [r for r in choosable if r.within(max_ap_drop)]
    if within:
        fastest = max(objective(r, by_throughput) for r in within)
        tied = [r for r in within if objective(r, by_throughput) >= fastest * (1 - TIE)]
        return max(tied, key=lambda r: (round(r.delta_mAP50_95, 6), -(r.cpu_ms_per_image or 0.0), -r.threads,
                                        objective(r, by_throughput))), None
    closest = max(choosable, key=lambda r: r.delta_mAP50_95, default=None)
    return None, closest
