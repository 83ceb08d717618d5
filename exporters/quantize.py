"""FP32 ONNX -> INT8 Q/DQ ONNX (ONNX Runtime's static quantizer) and FP16 ONNX.

The precision then lives in one verifiable artifact: ONNX Runtime runs it on the CPU, OpenVINO
converts it to an INT8 IR, TensorRT builds it as a strongly typed network.

Quantizer: ``onnxruntime.quantization`` (ships inside the ``onnxruntime`` the core install
already has). NVIDIA ModelOpt's ONNX PTQ was not used: its ``[onnx]`` extra pins
``onnxruntime-gpu`` and ``cupy-cuda12x`` on Linux x86-64 (and an older ``onnx``), which would
replace the CPU ``onnxruntime`` this SDK installs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.calibration import CalibrationSet
from ..artifacts.metadata import ModelMetadata
from ..artifacts.onnx_inspect import stored_precision
from ..errors import YoloxDeployError, first_line

QDQ_MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis attribute)
FLOAT_STRIDE_UP_TO = 4  # convs whose output is at stride <= 4 stay float (see sensitive_convs)


def check_float_source(model: Any, name: str) -> None:
    found = stored_precision(model)
    if found != "fp32":
        raise YoloxDeployError(f"{name} is already {found.upper()}; quantize or convert the FP32 ONNX (or the .pth) "
                               "instead")


def with_qdq_opset(model: Any, name: str, needed_for: str = "per-channel INT8") -> Any:
    """``model`` at opset >= 13 (upgraded with ONNX's version converter if older), which
    ``needed_for`` needs."""
    import onnx
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= QDQ_MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, QDQ_MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # the converter raises bare RuntimeErrors with multi-line text
        raise YoloxDeployError(f"{name} is opset {opset} and could not be upgraded to opset {QDQ_MIN_OPSET}, which "
                               f"{needed_for} needs ({first_line(exc, 200)}); re-export it with `yolox-export --to onnx "
                               "--opset 17`") from None
    return upgraded


def conv_output_strides(model: Any, input_hw: tuple[int, int]) -> dict[str, int]:
    """Conv node name -> the stride of its output relative to the input image."""
    import onnx

    model = onnx.shape_inference.infer_shapes(_with_static_input(model, input_hw))
    heights = {v.name: v.type.tensor_type.shape.dim[2].dim_value for v in model.graph.value_info
               if len(v.type.tensor_type.shape.dim) == 4}
    return {node.name: input_hw[0] // heights[node.output[0]] for node in model.graph.node
            if node.op_type == "Conv" and heights.get(node.output[0])}


def _with_static_input(model: Any, input_hw: tuple[int, int]) -> Any:
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, *input_hw)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    return model


def prediction_convs(model: Any) -> list[str]:
    """The head's last convs (box, objectness and class predictions): convs with no conv after them."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def feeds_a_conv(node: Any) -> bool:
        stack, seen = list(node.output), set()
        while stack:
            for consumer in consumers.get(stack.pop(), []):
                if consumer.op_type == "Conv":
                    return True
                if id(consumer) not in seen:
                    seen.add(id(consumer))
                    stack.extend(consumer.output)
        return False

    return [node.name for node in model.graph.node if node.op_type == "Conv" and not feeds_a_conv(node)]


def sensitive_convs(model: Any, input_hw: tuple[int, int]) -> list[str]:
    """Convs kept in float: those at stride <= 4 (the stem and the first CSP stage, whose
    activations span hundreds with rare outliers) and the prediction convs (whose outputs are
    the raw box offsets and score logits). Found by measuring on YOLOX-Nano (official
    weights, 80 COCO images, `benchmarks/int8_sensitivity.py`): quantizing every conv gives
    0.2065 mAP50-95 against 0.3052 FP32; keeping these 18 of 113 float gives 0.3017."""
    strides = conv_output_strides(model, input_hw)
    early = [name for name, stride in strides.items() if stride <= FLOAT_STRIDE_UP_TO]
    return early + [name for name in prediction_convs(model) if name not in early]


def _reader(ort_quant: Any, input_name: str, batches: Sequence[np.ndarray]) -> Any:
    """A CalibrationDataReader over letterboxed batches."""

    class Batches(ort_quant.CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{input_name: batch} for batch in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    return Batches()


@contextlib.contextmanager
def _quantizer_quiet() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger at WARNING and prints its
    percentiles to stdout; hide both meanwhile (errors still raise)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


@dataclasses.dataclass(frozen=True)
class QuantizationSettings:
    """How INT8 Q/DQ models are made (recorded in their metadata)."""

    calibrate_method: str = "MinMax"  # of onnxruntime.quantization.CalibrationMethod
    # each activation's range: the mean over the calibration images of its per-image min and max
    # (ONNX Runtime's "moving average" within one pass). The plain min/max over all images lets
    # rare outliers stretch the range (0.293 mAP on nano); Percentile holds every activation of
    # every image in memory (past 17 GB for yolox-s@640) and varied with how it was chunked.
    mean_of_image_ranges: bool = True
    per_channel: bool = True
    activations: str = "QUInt8"  # asymmetric uint8 activations (what x86 VNNI kernels take)
    weights: str = "QInt8"  # symmetric int8 weights, per output channel
    keep_float: str = "sensitive"  # "sensitive" (see sensitive_convs) or "none"
    symmetric_activations: bool = False  # int8 activations with zero point 0: what TensorRT builds

    @classmethod
    def for_tensorrt(cls, keep_float: str = "sensitive") -> "QuantizationSettings":
        """Signed INT8 with every zero point 0: TensorRT's ONNX parser refuses any other Q/DQ
        ("TRT only supports symmetric quantization"). Ranges are the plain min/max over the
        calibration images: with symmetric activations that measured 0.2878 mAP50-95 on nano
        against 0.2794 for the mean of per-image ranges (80 shared images, ONNX Runtime)."""
        return cls(activations="QInt8", symmetric_activations=True, keep_float=keep_float, mean_of_image_ranges=False)


def quantize_onnx_int8(model: Any, output: Path, calib: CalibrationSet, input_hw: tuple[int, int], name: str,
                       settings: QuantizationSettings = QuantizationSettings(),
                       keep_float: Sequence[str] | None = None) -> list[str]:
    """Write ``model`` (FP32 ONNX) as a Q/DQ INT8 ONNX at ``output``, calibrated on ``calib``;
    ``keep_float`` (conv names) overrides ``settings.keep_float``. Returns the convs kept float."""
    import onnx

    ort_quant = require("onnxruntime.quantization", extra="export", purpose="INT8 quantization")
    check_float_source(model, name)
    model = with_qdq_opset(model, name)
    if keep_float is None:
        keep_float = sensitive_convs(model, input_hw) if settings.keep_float == "sensitive" else []
    keep_float = list(keep_float)
    try:
        with _quantizer_quiet(), tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "fp32.onnx"  # a file: given a ModelProto, the quantizer rewrites its tensors
            onnx.save(model, str(source))     # to point at external data in a folder it then deletes
            ort_quant.quantize_static(
                str(source), str(output), _reader(ort_quant, model.graph.input[0].name, calib.batches),
                quant_format=ort_quant.QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                per_channel=settings.per_channel, activation_type=getattr(ort_quant.QuantType, settings.activations),
                weight_type=getattr(ort_quant.QuantType, settings.weights), nodes_to_exclude=keep_float,
                calibrate_method=getattr(ort_quant.CalibrationMethod, settings.calibrate_method),
                extra_options={"CalibMovingAverage": settings.mean_of_image_ranges,
                               "ActivationSymmetric": settings.symmetric_activations, "WeightSymmetric": True,
                               # TensorRT dequantizes int8 only: its Q/DQ keeps biases float
                               "QuantizeBias": not settings.symmetric_activations})
    except (ValueError, RuntimeError) as exc:
        raise YoloxDeployError(f"ONNX Runtime could not quantize {name} ({first_line(exc, 200)})") from None
    onnx.checker.check_model(str(output))
    return keep_float


def convert_onnx_fp16(model: Any, name: str) -> Any:
    """``model`` with FP16 weights and arithmetic, float32 input and output."""
    require("onnxruntime", extra="export", purpose="FP16 conversion")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    check_float_source(model, name)
    return topologically_sorted(convert_float_to_float16(model, keep_io_types=True))


def topologically_sorted(model: Any) -> Any:
    """``model`` with its nodes in dependency order (the FP16 converter appends the input casts
    last, which ONNX's checker refuses)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise YoloxDeployError("the converted graph has a cycle or a dangling input; please report it")
        for node in runnable:
            ordered.append(node)
            ready.update(node.output)
        done = {id(n) for n in runnable}
        pending = [n for n in pending if id(n) not in done]
    nodes = [type(n)() for n in ordered]
    for copy, node in zip(nodes, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def set_metadata(model: Any, metadata: ModelMetadata) -> None:
    import onnx

    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata.to_props())


def quantization_record(settings: QuantizationSettings, calib: CalibrationSet, keep_float: Sequence[str],
                        calib_folder: str) -> dict[str, Any]:
    import onnxruntime

    return {"format": "QDQ", "quantizer": f"onnxruntime {onnxruntime.__version__} quantize_static",
            **dataclasses.asdict(settings), "float_convs": len(keep_float),
            "calibration": {"folder": Path(calib_folder).name, **calib.describe()}}
