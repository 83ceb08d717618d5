"""What an ONNX graph stores, read without running it: its precision and its Q/DQ kind."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelFileError

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                 "MatMulInteger", "DynamicQuantizeLinear"}


def stored_precision(model: Any) -> str:
    """'int8' for a graph with quantization ops, 'fp16' for one with FP16 weights, else 'fp32'."""
    if any(node.op_type in QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    if any(init.data_type == 10 for init in model.graph.initializer):  # TensorProto.FLOAT16
        return "fp16"
    return "fp32"


def asymmetric_qdq_nodes(model: Any) -> list[str]:
    """Names of the Q/DQ nodes TensorRT cannot build: a zero point that is not int8 or not all
    zeros (the uint8 activations of the CPU-flavoured Q/DQ ONNX), or a dequantized int32
    constant (its quantized biases)."""
    from onnx import TensorProto, numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    constants = {out: node for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    bad = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        source = initializers.get(node.input[0])
        if node.op_type == "DequantizeLinear" and source is not None and source.data_type != TensorProto.INT8:
            bad.append(node.name or node.output[0])
            continue
        if len(node.input) < 3 or not node.input[2]:
            continue  # no zero point: int8 with zero 0 by definition
        zero = initializers.get(node.input[2])
        if zero is None and node.input[2] in constants:
            zero = constants[node.input[2]].attribute[0].t
        if zero is None or zero.data_type != TensorProto.INT8 or numpy_helper.to_array(zero).any():
            bad.append(node.name or node.output[0])
    return bad


def load_onnx(source: str | Path | bytes, name: str | None = None) -> Any:
    """The ModelProto of an ONNX file (or its bytes), or a one-line error for a missing file or
    one that is not ONNX."""
    import onnx

    label = name or (Path(source).name if not isinstance(source, bytes) else "the model")
    try:
        return onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {source}") from None
    except Exception:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{label} is not an ONNX model (it does not parse as one)") from None
