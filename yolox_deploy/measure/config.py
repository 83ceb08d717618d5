"""What yolox-bench measures and what one row of its table holds."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import YoloxDeployError
from ..precision import DEPLOYED_PRECISIONS

if TYPE_CHECKING:
    from ..slicing import SliceSettings

PRECISIONS = tuple(p for p in DEPLOYED_PRECISIONS if p != "int8-mixed")  # int8-mixed: made by yolox-tune only
# bench precision -> (the artifact exported for it, the arithmetic the runtime is asked for). fp16 and
# int8 are stored in the model file (int8: the Q/DQ ONNX, run by ONNX Runtime and converted by
# OpenVINO; int8-all: the same with every conv quantized; int8-nncf: OpenVINO's NNCF IR) and run
# with FP32 arithmetic elsewhere; bf16 is
# arithmetic on the FP32 model (OpenVINO on CPUs with bf16 units); int8-nncf-bf16 the NNCF IR with its
# float remainder in bf16.
ARTIFACT_AND_ARITHMETIC = {"fp32": ("fp32", "fp32"), "fp16": ("fp16", "fp32"), "int8": ("int8", "fp32"),
                           "int8-all": ("int8-all", "fp32"), "int8-nncf": ("int8-nncf", "fp32"),
                           "bf16": ("fp32", "bf16"), "int8-nncf-bf16": ("int8-nncf", "bf16"),
                           "int8-mixed": ("int8-mixed", "fp32")}
STAGES = ("preprocess", "inference", "postprocess", "end_to_end")
BASELINE = "official demo (onnxruntime)"
Call = Callable[[], tuple[float, float, float]]  # one timed call -> (pre, infer, post) ms


@dataclasses.dataclass
class BenchConfig:
    """What to measure. ``input_size`` is (height, width); ``iters`` timed calls per row
    (or as many as fit in ``seconds``); ``data``/``ann`` add COCO mAP columns."""

    backends: Sequence[str]
    models: Sequence[Path] = ()  # existing model files: benchmarked as they are, no export, no torch needed
    weights: Path | None = None
    onnx: Path | None = None  # an FP32 ONNX to make the other formats from, instead of exporting ``weights``
    model_name: str | None = None
    precisions: Sequence[str] = ("fp32",)
    batches: Sequence[int] = (1,)
    input_size: tuple[int, int] | None = None
    warmup: int = 10
    iters: int = 50
    seconds: float | None = None
    block: int = 5  # consecutive timed calls per row and round, after the untimed settling calls
    settle_ms: float = 100.0  # untimed calls of a row before its block last at least this long (at least one)
    threads: int | None = None
    data: Path | None = None
    ann: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "yolox_deploy" / "bench"
    conf: float = 0.25
    iou: float = 0.45
    baseline: bool = True
    progress: bool = True
    slices: SliceSettings | None = None  # also time every row sliced (a twin row beside it)
    # the backends were named by the user: a row that cannot run on one of them failed. Otherwise they are
    # every local backend, and one that is not installed or not usable here is a skipped row.
    backends_requested: bool = True


@dataclasses.dataclass
class Row:
    backend: str
    precision: str
    batch: int
    status: str = "ok"
    model_file: str = ""
    backend_name: str = ""  # the runtime that loads model_file
    input_size: tuple[int, int] | None = None
    model_input: str = ""  # "u8 NHWC": the runtime casts pixels inside the model (in "inference"); "f32 NCHW"
    arithmetic: str = "fp32"  # what the runtime was asked to compute in (fp16/int8 rows: stored in the model)
    ms: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # stage -> mean/p50/p90/p99 per batch
    images_per_s: float | None = None
    cpu_ms_per_image: float | None = None  # process CPU time (all threads) per image, median of the timed calls
    mAP50_95: float | None = None
    mAP50: float | None = None
    delta_mAP50_95: float | None = None  # vs the PyTorch FP32 reference
    sliced: str = ""  # sliced inference, e.g. "416x416 ov 0.2 +whole"; "" for whole images
    slices_per_image: float | None = None  # model inputs per image (slices plus the whole-image pass)
    slices_per_s: float | None = None
    skipped: bool = False  # not offered here (a precision the backend lacks, a static batch ...): not a failure

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped

    def per_image_ms(self, stage: str, stat: str = "p50") -> float:
        return self.ms[stage][stat] / self.batch


class Skip(YoloxDeployError):
    """A combination that cannot be measured here (the reason becomes the row's status)."""
