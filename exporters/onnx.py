"""PyTorch -> ONNX export with checks, simplification, metadata and a parity report."""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..artifacts.onnx_inspect import load_onnx
from ..artifacts.staging import staged_into
from ..coco import default_class_names
from ..errors import YoloxDeployError, first_line
from ..processing.preprocess import check_input_size
from ..runtimes.onnxruntime import fp32_session_options
from .registry import register

DEFAULT_OPSET = 17
MIN_OPSET = 11
PARITY_TOLERANCE = 1e-3  # float32 conv reordering between PyTorch and ONNX Runtime stays far below this


@dataclasses.dataclass(frozen=True)
class OnnxExportReport:
    path: Path
    model_name: str
    input_size: tuple[int, int]
    opset: int
    simplified: bool
    max_abs_diff: float  # FP32: ONNX Runtime vs PyTorch raw output on a random 0-255 input
    precision: str = "FP32"
    # FP16/INT8: vs the FP32 ONNX on calibration (INT8) or random (FP16) inputs, scores / box offsets
    score_diff: float | None = None
    calibration: str = ""
    end_to_end: str = ""  # what --nms baked in, and how it was checked

    def summary(self) -> str:
        if self.end_to_end:
            return (f"exported {self.model_name} ({self.precision}, input {self.input_size[0]}x{self.input_size[1]}, "
                    f"opset {self.opset}) to {self.path}; {self.end_to_end}")
        if self.precision == "FP32":
            return (f"exported {self.model_name} to {self.path} (opset {self.opset}, input "
                    f"{self.input_size[0]}x{self.input_size[1]}, simplified={self.simplified}); "
                    f"ONNX Runtime vs PyTorch max abs diff {self.max_abs_diff:.2e}")
        return (f"exported {self.model_name} as {self.precision} ONNX to {self.path} (opset {self.opset}, input "
                f"{self.input_size[0]}x{self.input_size[1]}{'; ' + self.calibration if self.calibration else ''}); "
                f"vs FP32 in ONNX Runtime: scores max abs diff {self.score_diff:.3f}, box offsets "
                f"{self.max_abs_diff:.3f} (measure accuracy with yolox-eval)")


def resolve_model(weights: str | Path | None, model_name: str | None, depth: float | None = None,
                  width: float | None = None, depthwise: bool = False, num_classes: int | None = None,
                  seed: int = 0) -> tuple[Any, Any]:
    """(model, spec) from a checkpoint, or seeded random weights when ``weights`` is None."""
    from ..models import ModelSpec, get_spec, load_model, seeded_model
    from ..runtimes.torch import pin_ieee_fp32

    pin_ieee_fp32(require("torch", extra="export", purpose="the export"), on_cuda=False)  # the exports' reference
    spec = None
    if depth is not None or width is not None:
        if depth is None or width is None:
            raise YoloxDeployError("a custom model needs both --depth and --width")
        spec = ModelSpec(model_name or "yolox-custom", depth, width, depthwise=depthwise)
    if weights is not None:
        return load_model(weights, model_name=model_name, spec=spec)
    if spec is None:
        if model_name is None:
            raise YoloxDeployError("give --weights X.pth, or --model-name (seeded random weights)")
        spec = get_spec(model_name)
    return seeded_model(spec, num_classes or 80, seed=seed), spec


def _dynamic_axes(dynamic_batch: bool, dynamic_hw: bool) -> dict[str, dict[int, str]] | None:
    axes: dict[str, dict[int, str]] = {"images": {}, "output": {}}
    if dynamic_batch:
        axes["images"][0] = axes["output"][0] = "batch"
    if dynamic_hw:
        axes["images"].update({2: "height", 3: "width"})
        axes["output"][1] = "anchors"
    return axes if axes["images"] else None


def _simplify(model: Any) -> tuple[Any, bool]:
    try:
        import onnxslim
    except ImportError:
        warnings.warn("onnxslim is not installed; exporting without simplification "
                      "(pip install 'yolox-deploy[export]')", stacklevel=3)
        return model, False
    return onnxslim.slim(model), True


def verify_onnx(path: Path, torch_model: Any, input_shape: Sequence[int], seed: int = 0) -> float:
    """Max abs difference between ONNX Runtime and PyTorch raw outputs on a random input."""
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(seed).uniform(0, 255, size=tuple(input_shape)).astype(np.float32)
    session = ort.InferenceSession(str(path), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x})[0]
    with torch.inference_mode():
        want = torch_model(torch.from_numpy(x)).numpy()
    if got.shape != want.shape:
        raise YoloxDeployError(f"ONNX output shape {got.shape} differs from PyTorch {want.shape}")
    return float(np.abs(got - want).max())


@register("onnx")
def export_onnx(output: str | Path, weights: str | Path | None = None, *, nms: str | None = None,
                conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                agnostic: bool = False, **options: Any) -> OnnxExportReport:
    """Export a checkpoint (or a seeded random variant) to ONNX; see :func:`export_raw_onnx`
    for ``options``. ``nms`` ("onnx" or "trt") appends decode + NMS to the graph (an
    end-to-end model, :mod:`.end_to_end`) with ``conf``/``iou``/``max_det``/``agnostic`` baked
    in; without it, ``conf``/``iou``/``max_det`` are stored as the model's defaults, which a
    bare ``Detector(path)`` uses. A raw ``.onnx`` given as ``weights`` is converted as it is."""
    from .end_to_end import TRT_DEPRECATION, NmsSettings

    defaults = {k: v for k, v in (("conf", conf), ("iou", iou), ("max_det", max_det)) if v is not None}
    if agnostic and not nms:
        raise YoloxDeployError("--agnostic is baked into end-to-end models only: add --nms")
    settings = NmsSettings(**{"conf": 0.25, "iou": 0.45, "max_det": 100, **defaults}, agnostic=agnostic,
                           flavor=nms or "onnx")
    settings.check()  # the stored defaults of a raw export are checked the same way
    if nms == "trt":
        warnings.warn(TRT_DEPRECATION, FutureWarning, stacklevel=2)
    if not nms:
        settings = None
    if settings is None and not defaults:
        return export_raw_onnx(output, weights, **options)
    return _export_with_postprocess_settings(Path(output), weights, settings, defaults, options)


def _export_with_postprocess_settings(output: Path, weights: str | Path | None, settings: Any,
                                      defaults: dict[str, Any], options: dict[str, Any]) -> OnnxExportReport:
    """The raw ONNX (made here, or ``weights`` if it is a raw FP32 ``.onnx``), with the
    end-to-end tail and/or the default thresholds in its metadata."""
    import tempfile

    import onnx

    from .end_to_end import add_end_to_end, check_end_to_end

    with tempfile.TemporaryDirectory() as tmp:
        given_onnx = weights is not None and Path(weights).suffix.lower() == ".onnx"
        if given_onnx and not (options.get("half") or options.get("int8")):
            raw_path, report = Path(weights), None
        else:
            raw_path = Path(tmp) / "raw.onnx"
            report = export_raw_onnx(raw_path, weights, **options)
        model = load_onnx(raw_path, Path(weights).name if given_onnx else None)
        metadata, input_hw = _source_metadata(model, raw_path.name, options.get("input_size"))
        if metadata.end_to_end:
            raise YoloxDeployError(f"{Path(weights).name} is already end-to-end; give the raw ONNX or the .pth")
        num_classes = len(metadata.class_names) if metadata.class_names else 80
        note = f"defaults {defaults} stored"
        if settings is not None:
            model = add_end_to_end(model, input_hw, metadata.strides, num_classes, settings)
            defaults = {"conf": settings.conf, "iou": settings.iou, "max_det": settings.max_det}
            metadata = dataclasses.replace(metadata, end_to_end=settings.record())
        metadata = dataclasses.replace(metadata, defaults=defaults)
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, metadata.to_props())
        onnx.checker.check_model(model)
        with staged_into(output.parent) as stage:
            staged = stage / output.name
            onnx.save(model, str(staged))
            if settings is not None:
                note = check_end_to_end(raw_path, staged, settings, input_hw, metadata.strides)
    if report is None:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        report = OnnxExportReport(output, metadata.model_name, input_hw, opset, False, float("nan"),
                                  precision=metadata.precision.upper())
    return dataclasses.replace(report, path=output, end_to_end=note)


def export_raw_onnx(output: str | Path, weights: str | Path | None = None, model_name: str | None = None,
                input_size: Sequence[int] | None = None, batch: int = 1, dynamic: bool = False,
                dynamic_hw: bool = False, opset: int = DEFAULT_OPSET, simplify: bool = True,
                class_names: Sequence[str] | None = None, depth: float | None = None,
                width: float | None = None, depthwise: bool = False, num_classes: int | None = None,
                seed: int = 0, verify: bool = True, half: bool = False, int8: bool = False,
                calib: str | Path | None = None, calib_size: int = 300,
                int8_keep_float: str | Sequence[str] = "sensitive", int8_symmetric: bool = False,
                **_: Any) -> OnnxExportReport:
    """Export a checkpoint (or a seeded random variant) to a raw ONNX.

    Input ``images`` float32 [B, 3, H, W] BGR 0-255 letterboxed; output ``output`` raw
    [B, N, 5 + C]. ``dynamic`` makes the batch dynamic, ``dynamic_hw`` height and width.
    ``half`` writes an FP16 ONNX (float32 input and output), ``int8`` a Q/DQ INT8 ONNX
    calibrated on up to ``calib_size`` images of ``calib`` (a sample drawn with ``seed``), with
    the sensitive convs in float unless ``int8_keep_float="none"`` (faster, less accurate) or a
    list of conv node names (exactly those float: yolox-tune's mixed INT8);
    ``int8_symmetric`` quantizes activations to signed INT8 with zero point 0 (the Q/DQ that
    TensorRT builds; the default uint8 activations suit x86 CPUs). Both also convert an FP32
    ``.onnx`` given as ``weights``.
    """
    if half or int8:
        return export_low_precision_onnx(output, weights, half=half, int8=int8, calib=calib, calib_size=calib_size,
                                         seed=seed, keep_float=int8_keep_float, symmetric=int8_symmetric,
                                         model_name=model_name, input_size=input_size, batch=batch,
                                         dynamic=dynamic, dynamic_hw=dynamic_hw, opset=opset, simplify=simplify,
                                         class_names=class_names, depth=depth, width=width, depthwise=depthwise,
                                         num_classes=num_classes)
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        raise YoloxDeployError(f"{Path(weights).name} is already ONNX: pass a .pth, or --half/--int8 to convert it")
    require("torch", extra="export", purpose="ONNX export")
    require("onnx", extra="export", purpose="ONNX export")
    if not MIN_OPSET <= opset <= 20:
        raise YoloxDeployError(f"opset {opset} is not supported; use {MIN_OPSET}..20 (default {DEFAULT_OPSET})")
    if batch < 1:
        raise YoloxDeployError(f"batch must be >= 1, got {batch}")
    model, spec = resolve_model(weights, model_name, depth, width, depthwise, num_classes, seed)
    h, w = check_input_size(input_size or spec.input_size)
    names = tuple(class_names) if class_names else default_class_names(model.head.num_classes)
    if len(names) != model.head.num_classes:
        raise YoloxDeployError(f"{len(names)} class names for a head with {model.head.num_classes} classes")
    output = Path(output)
    with staged_into(output.parent) as stage:
        staged = stage / output.name
        simplified, diff = _write_checked_onnx(staged, model, spec.name, (batch, 3, h, w), names, opset,
                                               _dynamic_axes(dynamic, dynamic_hw), simplify, verify, seed)
    return OnnxExportReport(output, spec.name, (h, w), opset, simplified, diff)


def _write_checked_onnx(path: Path, model: Any, model_name: str, shape: tuple[int, int, int, int],
                        names: Sequence[str], opset: int, dynamic_axes: dict | None, simplify: bool,
                        verify: bool, seed: int) -> tuple[bool, float]:
    """Trace ``model`` to ``path``, check, simplify, add metadata. Returns (simplified, the ONNX
    Runtime vs PyTorch max abs difference: NaN when ``verify`` is off, refused above the
    parity tolerance)."""
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation chatter
        torch.onnx.export(model, (torch.zeros(*shape),), str(path), input_names=["images"], output_names=["output"],
                          opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)
    onnx_model = onnx.load(str(path))
    onnx.checker.check_model(onnx_model)
    simplified = False
    if simplify:
        onnx_model, simplified = _simplify(onnx_model)
    metadata = ModelMetadata(model_name=model_name, input_size=shape[2:], class_names=tuple(names))
    onnx.helper.set_model_props(onnx_model, metadata.to_props())
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    diff = verify_onnx(path, model, shape, seed) if verify else float("nan")
    if verify and not diff <= PARITY_TOLERANCE:
        raise YoloxDeployError(f"exported ONNX differs from PyTorch by {diff:.3e} (> {PARITY_TOLERANCE}); "
                               "the export is wrong, please report it")
    return simplified, diff


def export_low_precision_onnx(output: str | Path, weights: str | Path | None, half: bool, int8: bool,
                              calib: str | Path | None, calib_size: int, seed: int,
                              keep_float: str | Sequence[str] = "sensitive",
                              symmetric: bool = False, **fp32_options: Any) -> OnnxExportReport:
    """FP16 or Q/DQ INT8 ONNX from an FP32 ``.onnx`` or from a checkpoint (exported first)."""
    import tempfile

    import onnx

    from ..artifacts.calibration import calibration_set
    from .quantize import QuantizationSettings, convert_onnx_fp16, quantization_record, quantize_onnx_int8, set_metadata

    if half and int8:
        raise YoloxDeployError("choose --half or --int8, not both")
    if int8 and calib is None:
        raise YoloxDeployError("--int8 needs --calib DIR (a folder of typical images)")
    if calib_size < 1:
        raise YoloxDeployError(f"--calib-size must be >= 1, got {calib_size}")
    named = None if isinstance(keep_float, str) else [str(n) for n in keep_float]
    if named is not None:
        keep_float = "none"  # the named convs below override the rule
    if keep_float not in ("sensitive", "none"):
        raise YoloxDeployError(f"--int8-keep-float must be 'sensitive' or 'none', got {keep_float!r}")
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        if weights is not None and Path(weights).suffix.lower() == ".onnx":
            source = Path(weights)
        else:
            source = Path(tmp) / "fp32.onnx"
            export_onnx(source, weights=weights, seed=seed, **fp32_options)
        model = load_onnx(source)
        name = Path(weights).name if weights is not None else source.name
        metadata, input_hw = _source_metadata(model, name, fp32_options.get("input_size"))
        with staged_into(output.parent) as stage:
            staged = stage / output.name
            if int8:
                calibration = calibration_set(calib, input_hw, limit=calib_size, seed=seed)
                settings = (QuantizationSettings.for_tensorrt(keep_float) if symmetric
                            else QuantizationSettings(keep_float=keep_float))
                floats = quantize_onnx_int8(model, staged, calibration, input_hw, name, settings, keep_float=named)
                result = onnx.load(str(staged))
                metadata = dataclasses.replace(metadata, precision="int8", quantization=quantization_record(
                    settings, calibration, floats, str(calib)))
                probes = calibration.batches[:8]
                described = (f"calibrated on {len(calibration.files)} images of {Path(calib).name}"
                             f"{f' (seed {calibration.seed})' if calibration.seed is not None else ''}"
                             f"{f', {len(calibration.skipped)} unreadable skipped' if calibration.skipped else ''}; "
                             + (f"{len(floats)} {'named' if named is not None else 'sensitive'} convs kept float"
                                if floats else "every conv quantized"))
            else:
                result = convert_onnx_fp16(model, name)
                metadata = dataclasses.replace(metadata, precision="fp16")
                rng = np.random.default_rng(seed)
                probes = [rng.uniform(0, 255, (1, 3, *input_hw)).astype(np.float32) for _ in range(2)]
                described = ""
            set_metadata(result, metadata)
            onnx.checker.check_model(result)
            onnx.save(result, str(staged))
            score_diff, box_diff = _low_precision_diffs(source, staged, probes)
            opset = next((o.version for o in result.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxExportReport(output, metadata.model_name, input_hw, opset, False, box_diff,
                            precision="INT8" if int8 else "FP16", score_diff=score_diff, calibration=described)


def _source_metadata(model: Any, name: str, input_size: Sequence[int] | None) -> tuple[ModelMetadata, tuple[int, int]]:
    """The source ONNX's metadata (defaults for files from other tools) and its input size."""
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    dims = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
    static = tuple(dims[2:4]) if len(dims) == 4 and all(dims[2:4]) else None
    hw = static or (tuple(input_size) if input_size else None) or metadata.input_size
    if hw is None:
        raise YoloxDeployError(f"{name} has a dynamic input size and none in its metadata: pass --input-size H W")
    hw = check_input_size(hw)
    if metadata.input_size is None:
        metadata = dataclasses.replace(metadata, input_size=hw)
    if metadata.class_names is None:
        outputs = model.graph.output[0].type.tensor_type.shape.dim
        if len(outputs) == 3 and outputs[2].dim_value > 5:
            metadata = dataclasses.replace(metadata, class_names=default_class_names(outputs[2].dim_value - 5))
    return metadata, hw


def _low_precision_diffs(fp32: Path, reduced: Path, probes: Sequence[np.ndarray]) -> tuple[float, float]:
    """Max abs difference of scores (objectness, classes) and of box offsets, reduced vs FP32 ONNX."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), fp32_session_options(ort), providers=["CPUExecutionProvider"])
                for p in (fp32, reduced)]
    try:
        ref, got = ([s.run(None, {s.get_inputs()[0].name: x})[0] for x in probes] for s in sessions)
    except Exception as exc:  # onnxruntime's own error types
        raise YoloxDeployError(f"ONNX Runtime cannot run the converted model ({first_line(exc, 200)}); please report "
                               "it") from None
    diff = np.abs(np.concatenate(got) - np.concatenate(ref))
    return float(diff[..., 4:].max()), float(diff[..., :4].max())
