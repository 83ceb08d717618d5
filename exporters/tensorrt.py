"""ONNX -> TensorRT engine (TensorRT 10 Python API), FP32 / FP16 / INT8, with a sidecar JSON.

Building needs an NVIDIA GPU and the ``tensorrt`` package; everything before the build
(arguments, optimisation-profile shapes, calibration batches, the sidecar) is plain
Python and checked without either. Device memory for INT8 calibration comes from
PyTorch CUDA tensors (torch is already an extra; no cuda-python needed).
"""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..calibration import calibration_images
from ..errors import BackendUnavailableError, YoloxDeployError
from ..metadata import ModelMetadata
from ..sidecar import read_sidecar, sidecar_path, write_sidecar
from . import register
from .onnx import export_onnx
from .staging import staged_into

SIDECAR_FORMAT = "yolox_deploy.tensorrt/1"
DEFAULT_WORKSPACE_GIB = 4.0


@dataclasses.dataclass(frozen=True)
class Profile:
    """Batch sizes of the optimisation profile: TensorRT tunes for ``opt`` and accepts
    ``min``..``max``."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, batch: int | Sequence[int], onnx_batch: int | None) -> "Profile":
        """``--batch N`` (static) or ``--batch MIN OPT MAX`` (dynamic); ``onnx_batch`` is the
        ONNX input's batch dimension (None: dynamic)."""
        values = [int(batch)] if isinstance(batch, int) else [int(v) for v in batch]
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise YoloxDeployError(f"--batch takes N or MIN OPT MAX, got {values}")
        lo, opt, hi = values
        if not 1 <= lo <= opt <= hi:
            raise YoloxDeployError(f"batch profile needs 1 <= MIN <= OPT <= MAX, got {lo} {opt} {hi}")
        if onnx_batch is not None and (lo, opt, hi) != (onnx_batch,) * 3:
            raise YoloxDeployError(f"the ONNX has a static batch of {onnx_batch}; a profile of {lo} {opt} {hi} "
                                   "needs an ONNX exported with --dynamic")
        return cls(lo, opt, hi)

    def shapes(self, input_hw: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
        return tuple((b, 3, *input_hw) for b in (self.min, self.opt, self.max))


def calibration_batches(images: Sequence[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    """float32 [batch, 3, H, W] batches of letterboxed images ([1, 3, H, W] each); the last
    partial batch is padded by repeating its last image (the calibrator's batch is fixed)."""
    if batch < 1:
        raise YoloxDeployError(f"calibration batch must be >= 1, got {batch}")
    for start in range(0, len(images), batch):
        chunk = list(images[start:start + batch])
        chunk += [chunk[-1]] * (batch - len(chunk))
        yield np.ascontiguousarray(np.concatenate(chunk, axis=0), dtype=np.float32)


SUPPORTED_TENSORRT_MAJOR = 10


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT other than 10: TensorRT 11 removed the weakly-typed builder flags
    (``BuilderFlag.FP16``/``INT8``) and implicit INT8 calibration this exporter builds with."""
    major = version.split(".", 1)[0]
    if major != str(SUPPORTED_TENSORRT_MAJOR):
        raise BackendUnavailableError(
            f"the TensorRT export builds with the TensorRT {SUPPORTED_TENSORRT_MAJOR} API, and TensorRT {version} is "
            f"installed (11 removed the FP16/INT8 builder flags and INT8 calibration): "
            f"pip install 'tensorrt>={SUPPORTED_TENSORRT_MAJOR},<{SUPPORTED_TENSORRT_MAJOR + 1}'")


def cuda_device_name() -> str:
    """The CUDA device TensorRT would build for, or a clear error when there is none."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    raise BackendUnavailableError("building or running a TensorRT engine needs an NVIDIA GPU with CUDA, and none "
                                  "is visible here (with a CUDA build of torch: pip install "
                                  "'yolox-deploy[tensorrt]')")


def make_calibrator(trt: Any, batches: list[np.ndarray], cache: Path) -> Any:
    """An entropy calibrator (IInt8EntropyCalibrator2) feeding ``batches`` from GPU memory,
    reading/writing ``cache`` so a rebuild skips calibration."""
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(batches)
            self.device = torch.empty(batches[0].shape, dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.device.copy_(torch.from_numpy(batch))
            torch.cuda.synchronize()
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()


def write_engine_sidecar(engine: Path, metadata: ModelMetadata, trt_version: str, precision: str,
                         profile: Profile, input_name: str, output_name: str, device: str) -> Path:
    return write_sidecar(engine, SIDECAR_FORMAT, {
        "tensorrt_version": trt_version, "precision": precision, "profile": dataclasses.asdict(profile),
        "input_name": input_name, "output_name": output_name, "built_on": device, "metadata": metadata.to_props()})


def read_engine_sidecar(engine: Path) -> dict[str, Any]:
    return read_sidecar(engine, SIDECAR_FORMAT, "TensorRT version, profile, class names",
                        "build the engine with `yolox-export --to trt`")


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


def _parse_onnx(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise YoloxDeployError(f"TensorRT could not parse {onnx_path.name}: {errors[:300]}")


@register("trt", "engine", "tensorrt", source="onnx")
def export_tensorrt(output: str | Path, weights: str | Path | None = None, half: bool = False, int8: bool = False,
                    calib: str | Path | None = None, calib_size: int = 300, batch: int | Sequence[int] = 1,
                    dynamic: bool = False, workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                    timing_cache: str | Path | None = None, **onnx_options: Any) -> TensorRTExportReport:
    """Build ``output`` (``.engine``) from an ``.onnx`` or a ``.pth`` (through our ONNX).
    ``batch``: N or (MIN, OPT, MAX) for the optimisation profile (a range needs a dynamic
    batch, which ``dynamic`` or a range asks our ONNX export for); ``int8`` calibrates on
    ``calib`` (a cache ``OUTPUT.calib`` beside the engine makes rebuilds skip it)."""
    from ..runtimes import load_backend

    if int8 and calib is None:
        raise YoloxDeployError("--int8 needs --calib DIR (a folder of typical images)")
    if not workspace_gib > 0:
        raise YoloxDeployError(f"workspace must be > 0 GiB, got {workspace_gib}")
    values = [batch] if isinstance(batch, int) else list(batch)
    output = Path(output).with_suffix(".engine")
    with tempfile.TemporaryDirectory() as tmp:
        if weights is not None and Path(weights).suffix.lower() == ".onnx":
            onnx_path = Path(weights)
        else:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(onnx_path, weights=weights, dynamic=dynamic or len(set(values)) > 1, **onnx_options)
        reference = load_backend(onnx_path, backend="onnxruntime", pixel_input=False)
        onnx_batch, _, h, w = reference.input_shape
        profile = Profile.parse(batch, onnx_batch)
        if h is None or w is None:
            raise YoloxDeployError("the ONNX input size is dynamic; export it with a fixed --input-size")
        trt = require("tensorrt", extra="tensorrt", purpose="the TensorRT export")
        check_tensorrt_version(trt.__version__)
        device = cuda_device_name()
        precision = "INT8" if int8 else "FP16" if half else "FP32"
        engine = build_engine(trt, onnx_path, profile, (h, w), half, int8, calib, calib_size, workspace_gib,
                              Path(timing_cache) if timing_cache else None, output.with_suffix(".calib"))
    with staged_into(output.parent) as stage:  # the engine and its sidecar land together or not at all
        staged = stage / output.name
        staged.write_bytes(engine)
        write_engine_sidecar(staged, reference.metadata if reference.metadata.input_size else
                             dataclasses.replace(reference.metadata, input_size=(h, w)), trt.__version__, precision,
                             profile, "images", "output", device)
    return TensorRTExportReport(output, precision, profile, trt.__version__, device)


def build_engine(trt: Any, onnx_path: Path, profile: Profile, input_hw: tuple[int, int], half: bool, int8: bool,
                 calib: str | Path | None, calib_size: int, workspace_gib: float, timing_cache: Path | None,
                 calib_cache: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    _parse_onnx(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(network.get_input(0).name, *profile.shapes(input_hw))
    config.add_optimization_profile(opt_profile)
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
        images = calibration_images(calib, input_hw, limit=calib_size)
        config.int8_calibrator = make_calibrator(trt, list(calibration_batches(images, profile.opt)), calib_cache)
        config.set_calibration_profile(opt_profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise YoloxDeployError("TensorRT failed to build the engine (see its log above)")
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)
