"""ONNX -> OpenVINO IR (FP32, FP16 weights, INT8 through NNCF post-training quantization)."""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.calibration import calibration_set
from ..artifacts.staging import staged_into
from ..errors import YoloxDeployError
from ..runtimes.openvino import write_metadata
from .onnx import export_onnx
from .registry import register

FP32_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class OpenVinoExportReport:
    path: Path
    precision: str
    input_shape: str
    max_abs_diff: float  # vs ONNX Runtime on the source ONNX (same precision), random 0-255 input, FP32 arithmetic

    def summary(self) -> str:
        return (f"exported OpenVINO IR ({self.precision}) to {self.path} (+ {self.path.with_suffix('.bin').name}), "
                f"input {self.input_shape}; max abs diff vs ONNX Runtime {self.max_abs_diff:.2e}")


def quantize_int8(model: Any, calib_dir: str | Path, input_hw: tuple[int, int], calib_size: int) -> tuple[Any, dict]:
    """The model quantized by NNCF, and what its metadata records of the quantization. NNCF
    collects its statistics with FP32 arithmetic (its OVNativeEngine states f32 on compile)."""
    nncf = require("nncf", extra="openvino-int8", purpose="INT8 quantization")
    calib = calibration_set(calib_dir, input_hw, limit=calib_size, seed=None)
    quantized = nncf.quantize(model, nncf.Dataset(calib.batches), subset_size=len(calib.batches),
                              preset=nncf.QuantizationPreset.MIXED)
    return quantized, {"quantizer": f"nncf {getattr(nncf, '__version__', 'unknown')}", "preset": "mixed",
                       "calibration": {"folder": Path(calib_dir).name, **calib.describe()}}


def _source_onnx(workdir: Path, weights: str | Path | None, dynamic: bool, **onnx_options: Any) -> Path:
    if weights is not None and Path(weights).suffix.lower() == ".onnx" and not onnx_options.get("nms"):
        return Path(weights)
    path = workdir / "model.onnx"
    export_onnx(path, weights=weights, dynamic=dynamic, **onnx_options)
    return path


@register("openvino", source="onnx")
def export_openvino(output: str | Path, weights: str | Path | None = None, half: bool = False,
                    int8: bool = False, calib: str | Path | None = None, calib_size: int = 300,
                    dynamic: bool = False, seed: int = 0, **onnx_options: Any) -> OpenVinoExportReport:
    """Export ``weights`` (a ``.pth`` through our ONNX export, or an ``.onnx``) to IR.

    ``half`` stores FP16 weights; ``int8`` quantizes with NNCF on up to ``calib_size``
    images of ``calib`` letterboxed like at inference. Model name, input size, strides
    and class names go into the IR's ``rt_info`` so ``Detector("model.xml")`` needs nothing
    else.
    """
    ov = require("openvino", extra="openvino", purpose="OpenVINO export")
    from ..runtimes import load_backend

    if half and int8:
        raise YoloxDeployError("choose --half or --int8, not both")
    if int8 and calib is None:
        raise YoloxDeployError("--int8 needs --calib DIR (a folder of typical images)")
    output = Path(output).with_suffix(".xml")
    with staged_into(output.parent) as stage, tempfile.TemporaryDirectory() as tmp:
        onnx_path = _source_onnx(Path(tmp), weights, dynamic, seed=seed, **onnx_options)
        reference = load_backend(onnx_path, backend="onnxruntime", pixel_input=False)
        if dynamic and reference.input_shape[0] is not None:
            raise YoloxDeployError(f"{onnx_path.name} has a static batch; dynamic batch needs an ONNX exported "
                                   "with --dynamic (its graph hard-codes the batch)")
        _, _, h, w = reference.input_shape
        metadata = reference.metadata
        input_hw = (h, w) if h and w else metadata.input_size
        if input_hw is None:
            raise YoloxDeployError("the ONNX input size is dynamic and not in its metadata; export with --input-size")
        if metadata.input_size is None:
            metadata = dataclasses.replace(metadata, input_size=input_hw)
        source_precision = metadata.precision
        if source_precision != "fp32" and (int8 or half):
            raise YoloxDeployError(f"{onnx_path.name} is already {source_precision.upper()}: drop --int8/--half "
                                   "(the IR keeps the ONNX's precision)")
        model = ov.convert_model(str(onnx_path))  # a Q/DQ ONNX becomes an INT8 IR (FakeQuantize), no NNCF
        if not dynamic and reference.input_shape[0] is None:
            # batch 1 unless --dynamic: a dynamic-batch INT8 IR from the nano Q/DQ ONNX ran 1 AP worse
            # (0.2939 vs 0.3039 mAP50-95) on OpenVINO's CPU plugin; a dynamic graph is valid at batch 1
            model.reshape({model.inputs[0]: [1, 3, *input_hw]})
        if int8:
            model, record = quantize_int8(model, calib, input_hw, calib_size)
            metadata = dataclasses.replace(metadata, precision="int8", quantization=record)
        elif half:
            metadata = dataclasses.replace(metadata, precision="fp16")
        write_metadata(model, metadata)
        staged = stage / output.name
        ov.save_model(model, str(staged), compress_to_fp16=half)
        diff = _max_abs_diff_fp32(staged, reference, input_hw, seed)
        precision = ("INT8 (NNCF)" if int8 else "FP16" if half else
                     {"int8": "INT8 (Q/DQ ONNX)", "fp16": "FP16 (ONNX)"}.get(source_precision, "FP32"))
        if precision == "FP32" and not diff <= FP32_TOLERANCE:
            raise YoloxDeployError(f"OpenVINO IR differs from ONNX Runtime by {diff:.3e} with FP32 arithmetic on "
                                   "both; please report it")
    return OpenVinoExportReport(output, precision, str(model.inputs[0].partial_shape), diff)


def _max_abs_diff_fp32(xml: Path, reference: Any, input_hw: tuple[int, int], seed: int) -> float:
    """The IR (run with FP32 arithmetic, whatever this CPU's default) against ONNX Runtime on a
    random 0-255 input."""
    from ..runtimes import load_backend

    x = np.random.default_rng(seed).uniform(0, 255, (1, 3, *input_hw)).astype(np.float32)
    ir = load_backend(xml, backend="openvino", precision="fp32", pixel_input=False)
    if reference.end_to_end:  # the detections: same count and classes, boxes and scores within the difference
        got, want = ir.infer_end_to_end(x), reference.infer_end_to_end(x)
        if not (np.array_equal(got.num_dets, want.num_dets) and np.array_equal(got.class_ids, want.class_ids)):
            return float("inf")
        return float(max(np.abs(got.boxes - want.boxes).max(), np.abs(got.scores - want.scores).max()))
    return float(np.abs(ir.infer(x) - reference.infer(x)).max())
