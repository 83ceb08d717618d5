"""What ``yolox-tune`` is asked: the model, the user's images, the accuracy bound, the time
budget, the batch policy and where the deployment goes."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ..measure.config import PRECISIONS
from ..errors import InvalidInputError

DEFAULT_CACHE = Path.home() / ".cache" / "yolox_deploy" / "bench"  # shared with yolox-bench
AUTO_BATCHES = (1, 2, 4, 8)


@dataclasses.dataclass
class TuneConfig:
    """``weights`` (official .pth) or ``model`` (raw FP32 .onnx, or a .pth); ``data``: the
    user's images; ``ann``: their COCO JSON (None: the FP32 model's own detections are the
    labels); ``max_ap_drop``: the largest mAP50-95 loss against FP32 a candidate may have;
    ``budget_s``: wall time for the whole run; ``batch``: 1 (latency), N, or "auto" (the
    batch with the most images/s); ``conf``/``iou``/``max_det``: the thresholds deployed."""

    data: Path
    output: Path
    weights: Path | None = None
    model: Path | None = None
    model_name: str | None = None
    input_size: tuple[int, int] | None = None
    ann: Path | None = None
    max_ap_drop: float = 0.01
    budget_s: float = 600.0
    batch: int | str = 1
    force: bool = False
    backends: Sequence[str] | None = None  # None: every installed backend that runs local model files
    precisions: Sequence[str] = PRECISIONS
    threads: Sequence[int] | None = None  # None: all logical cores and half of them
    conf: float = 0.25
    iou: float = 0.45
    max_det: int | None = 300
    max_images: int = 500  # evaluation images at most (the calibration half comes on top, up to 300)
    split_seed: int = 0  # the seeded shuffle that splits --data into calibration and evaluation images
    timing_s: float | None = None  # timed seconds per candidate; None: from the budget
    cache_dir: Path = DEFAULT_CACHE
    progress: bool = True
    command: str = ""

    def check(self) -> None:
        if (self.weights is None) == (self.model is None):
            raise InvalidInputError("give --weights (an official .pth) or --model (a raw FP32 .onnx or a .pth), "
                                    "one of them")
        if not 0 <= self.max_ap_drop <= 1:
            raise InvalidInputError(f"--max-ap-drop is an mAP50-95 difference in [0, 1], got {self.max_ap_drop}")
        if not self.budget_s > 0:
            raise InvalidInputError(f"--budget-s must be > 0 seconds, got {self.budget_s}")
        if self.batch != "auto" and (not isinstance(self.batch, int) or self.batch < 1):
            raise InvalidInputError(f"--batch is 'auto' or an integer >= 1, got {self.batch!r}")
        from ..runtimes import backend_names

        named = [b for b in self.backends or () if b not in backend_names()]
        if named:
            raise InvalidInputError(f"unknown backend {named[0]!r} in --backends; use one of "
                                    f"{', '.join(backend_names())}")
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown:
            raise InvalidInputError(f"unknown precision {unknown[0]!r}; use {', '.join(PRECISIONS)}")
        if any(t < 1 for t in self.thread_options):
            raise InvalidInputError(f"--threads are counts >= 1, got {list(self.thread_options)}")
        if self.max_images < 1 or (self.max_det is not None and self.max_det < 1):
            raise InvalidInputError(f"--max-images and --max-det must be >= 1, got {self.max_images}, {self.max_det}")
        if self.timing_s is not None and not self.timing_s > 0:
            raise InvalidInputError(f"--timing-s must be > 0 seconds, got {self.timing_s}")
        if not (0 <= self.conf <= 1 and 0 <= self.iou <= 1):
            raise InvalidInputError(f"--conf and --iou must be in [0, 1], got {self.conf}, {self.iou}")
        source = self.model or self.weights
        if source is not None and not Path(source).is_file():
            raise InvalidInputError(f"model file not found: {source}")
        if source is not None and Path(source).suffix.lower() not in (".onnx", ".pth", ".pt"):
            raise InvalidInputError(f"{Path(source).name}: yolox-tune makes every format from a raw FP32 .onnx or "
                                    "a .pth checkpoint; give one of those")
        if self.force:
            check_force_target(self.output, self.data, Path(source).parent if source is not None else None)

    @property
    def thread_options(self) -> tuple[int, ...]:
        if self.threads:
            return tuple(dict.fromkeys(int(t) for t in self.threads))
        cores = os.cpu_count() or 1
        return tuple(dict.fromkeys((cores, max(1, cores // 2))))

    @property
    def batches(self) -> tuple[int, ...]:
        """Batch sizes timed for throughput (beyond batch 1's latency)."""
        if self.batch == "auto":
            return AUTO_BATCHES
        return (int(self.batch),)

    @property
    def checkpoint(self) -> Path | None:
        source = self.weights or self.model
        return Path(source) if source is not None and Path(source).suffix.lower() != ".onnx" else None

    @property
    def onnx(self) -> Path | None:
        source = self.weights or self.model
        return Path(source) if source is not None and Path(source).suffix.lower() == ".onnx" else None

    @property
    def timing_seconds(self) -> float:
        """Timed seconds per candidate: 1/200 of the budget, between 0.3 and 3 s."""
        return self.timing_s if self.timing_s is not None else min(3.0, max(0.3, self.budget_s / 200))


def check_force_target(output: Path, data: Path, weights_folder: Path | None) -> None:
    """``--force`` replaces ``output`` whole: refuse (one line) an ``output`` that is, holds or
    lies inside the user's images or the weights' folder, or that is or holds the current
    directory, the home directory or a filesystem root (symlinks resolved)."""
    target = output.expanduser().resolve()
    inside_too = {"--data": data, "the weights' folder": weights_folder}
    is_or_holds = {"the current directory": Path.cwd(), "the home directory": Path.home(),
                   "a filesystem root": Path(target.anchor)}
    found = []
    for label, protected in {**inside_too, **is_or_holds}.items():
        if protected is None:
            continue
        protected = protected.expanduser().resolve()
        if target == protected:
            found.append((0, "is", label, protected))
        elif protected.is_relative_to(target):
            found.append((1, "holds", label, protected))
        elif label in inside_too and target.is_relative_to(protected):
            found.append((2, "lies inside", label, protected))
    if found:
        _, relation, label, protected = min(found, key=lambda f: f[0])
        raise InvalidInputError(f"-o {output} {relation} {label} ({protected}): --force would replace it whole; "
                                "choose a new or dedicated folder for the deployment")
