"""The candidates ``yolox-tune`` measures: every installed backend x precision this machine
can run x thread setting (x, for ONNX Runtime, intra-op spinning off/on), the FP32 ONNX
Runtime reference first, then in the order most likely to win on a CPU (so a short budget
measures those), thread variants next, spinning variants last. What cannot run here is
listed with the reason instead."""
from __future__ import annotations

import dataclasses

from ..measure.models import ModelCache
from ..runtimes import backend_names, get_backend_class
from .config import TuneConfig

REFERENCE = ("onnxruntime", "fp32")
# (backend, precision) most likely to be fastest on a CPU first; the rest follow in name order
PRIORITY = (("openvino", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8-nncf"), ("openvino", "bf16"),
            ("openvino", "int8-nncf-bf16"),
            ("openvino", "int8"), ("openvino", "int8-all"), ("onnxruntime", "int8-all"), ("ncnn", "fp32"),
            ("tensorrt", "fp16"), ("tensorrt", "int8"), ("tensorrt", "fp32"), ("ncnn", "fp16"),
            ("openvino", "fp16"), ("onnxruntime", "fp16"), ("torch", "fp32"))


@dataclasses.dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str  # a yolox-bench precision: fp32, fp16, int8, int8-all, int8-nncf, bf16, int8-nncf-bf16
    threads: int
    spinning: bool | None = None  # ONNX Runtime's intra-op threads keep spin-waiting between runs (None: n/a)

    @property
    def artifact(self) -> tuple[str, str]:
        """What its model file and accuracy depend on (not the thread count)."""
        return self.backend, self.precision

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} x{self.threads}{' spin' if self.spinning else ''}"

    @property
    def backend_options(self) -> dict[str, bool]:
        return {} if self.spinning is None else {"stop_spinning": not self.spinning}


@dataclasses.dataclass(frozen=True)
class Skipped:
    candidate: str
    reason: str


def plan_candidates(cfg: TuneConfig, cache: ModelCache) -> tuple[list[Candidate], list[Skipped], bool]:
    """(candidates in measuring order, what is skipped and why, whether the reference is
    itself a candidate). The first candidate is always the reference, ONNX Runtime FP32 on
    all the threads given first; with ``--backends``/``--precisions`` leaving it out, it
    is measured for accuracy and speed only and never chosen."""
    skipped: list[Skipped] = []
    pairs = []
    wanted = list(cfg.backends) if cfg.backends else None
    for name in wanted or backend_names():
        cls = get_backend_class(name)
        if not cls.loads_files:
            if wanted:
                skipped.append(Skipped(name, "serves models from a server; yolox-tune measures local backends"))
            continue
        if not cls.installed():
            skipped.append(Skipped(name, f"not installed: pip install 'yolox-deploy[{cls.extra}]'"))
            continue
        for precision in cfg.precisions:
            reason = cache.unsupported(name, precision)
            if reason:
                skipped.append(Skipped(f"{name} {precision}", reason))
            else:
                pairs.append((name, precision))
    reference_chosen = REFERENCE in pairs
    order = {pair: rank for rank, pair in enumerate((REFERENCE, *PRIORITY))}
    pairs = sorted(set(pairs) - {REFERENCE}, key=lambda p: (order.get(p, len(order)), p))
    first, *others = cfg.thread_options
    spin = {name: False if get_backend_class(name).spin_option else None for name, _ in [REFERENCE, *pairs]}
    candidates = [Candidate(*REFERENCE, first, spin[REFERENCE[0]])]
    candidates += [Candidate(b, p, first, spin[b]) for b, p in pairs]
    everything = ([REFERENCE] if reference_chosen else []) + pairs
    candidates += [Candidate(b, p, t, spin[b]) for t in others for b, p in everything]
    candidates += [Candidate(b, p, t, True) for t in cfg.thread_options for b, p in everything if spin[b] is not None]
    return candidates, skipped, reference_chosen
