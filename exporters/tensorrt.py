"""ONNX -> TensorRT engine (TensorRT 10.x and 11.x), with a sidecar JSON.

The precision is the ONNX's: ``--half`` builds from the FP16 ONNX, ``--int8`` from a
symmetric Q/DQ INT8 ONNX (both made here first, and both measured on the CPU with ONNX
Runtime), and the network is strongly typed, so TensorRT runs what that ONNX says. There is
no implicit INT8 calibration: TensorRT deprecated it in 10.1 and removed it in 11, and the
Q/DQ path builds on every 10.x, so no 10.x user needs it.

Everything before the build (arguments, the ONNX, its Q/DQ and batch checks) is plain
Python; the build needs an NVIDIA GPU and the ``tensorrt`` package.
"""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..artifacts.sidecar import sidecar_path
from ..artifacts.tensorrt_engines import (
    DEFAULT_WORKSPACE_GIB,
    OnnxSource,
    Profile,
    build_engine_file,
    cuda_gpu,
    import_tensorrt,
)
from ..errors import YoloxDeployError
from .onnx import export_onnx
from .registry import register


@dataclasses.dataclass(frozen=True)
class TensorRTExportReport:
    path: Path
    precision: str
    profile: Profile
    tensorrt_version: str
    device: str

    def summary(self) -> str:
        return (f"built TensorRT {self.tensorrt_version} engine ({self.precision}, batch {self.profile.min}/"
                f"{self.profile.opt}/{self.profile.max}) on {self.device}: {self.path} (+ {sidecar_path(self.path).name})")


def resolve_onnx(tmp: Path, weights: str | Path | None, half: bool, int8: bool, profile: Profile,
                 onnx_options: dict[str, Any]) -> OnnxSource:
    """The ONNX to build from: ``weights`` itself, or made from it at the asked precision with
    the batch the profile needs (static N, or dynamic for a range)."""
    wanted = "int8" if int8 else "fp16" if half else None
    options = dict(onnx_options)
    dynamic = bool(options.pop("dynamic", False)) or not profile.static
    if wanted:
        options.update(half=half, int8=int8, int8_symmetric=True)
    made = tmp / "model.onnx"
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        given = OnnxSource.read(Path(weights))
        if wanted is None or given.precision == wanted:
            return given
        if given.precision != "fp32":
            raise YoloxDeployError(f"{given.name} is already {given.precision.upper()}; --{'int8' if int8 else 'half'} "
                                   "converts an FP32 ONNX (or give it without the flag)")
        export_onnx(made, weights=weights, **options)
        return OnnxSource.read(made, Path(weights).name)
    export_onnx(made, weights=weights, batch=1 if dynamic else profile.max, dynamic=dynamic, **options)
    return OnnxSource.read(made, Path(weights).name if weights else None)


@register("trt", "engine", "tensorrt", source="onnx")
def export_tensorrt(output: str | Path, weights: str | Path | None = None, half: bool = False, int8: bool = False,
                    calib: str | Path | None = None, calib_size: int = 300, batch: int | Sequence[int] = 1,
                    dynamic: bool = False, workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                    timing_cache: str | Path | None = None, device: str = "cuda",
                    **onnx_options: Any) -> TensorRTExportReport:
    """Build ``output`` (``.engine``) from an ``.onnx`` (FP32, FP16 or symmetric Q/DQ INT8) or
    a ``.pth`` (through our ONNX). ``batch``: N or (MIN, OPT, MAX) of the optimisation profile
    (a range needs a dynamic-batch ONNX, which a ``.pth`` export then makes); ``half``/``int8``
    first make the FP16 / Q/DQ INT8 ONNX (``int8`` calibrated on ``calib``); ``timing_cache``
    is read and updated; ``device`` is the GPU to build for ("cuda", "cuda:1")."""
    if int8 and calib is None:
        raise YoloxDeployError("--int8 needs --calib DIR (a folder of typical images)")
    if half and int8:
        raise YoloxDeployError("choose --half or --int8, not both")
    if not workspace_gib > 0:
        raise YoloxDeployError(f"workspace must be > 0 GiB, got {workspace_gib}")
    profile = Profile.parse(batch)
    trt = import_tensorrt("the TensorRT export")
    gpu = cuda_gpu(device)
    output = Path(output).with_suffix(".engine")
    if dynamic:
        onnx_options["dynamic"] = True
    if int8:
        onnx_options.update(calib=calib, calib_size=calib_size)
    with tempfile.TemporaryDirectory() as tmp:
        source = resolve_onnx(Path(tmp), weights, half, int8, profile, onnx_options)
    source.check_buildable()
    profile = Profile.parse(batch, source.batch)
    build_engine_file(trt, source, profile, gpu, output, workspace_gib, Path(timing_cache) if timing_cache else None)
    return TensorRTExportReport(output, source.precision.upper(), profile, trt.__version__,
                                f"{gpu.name} (sm {gpu.capability})")
