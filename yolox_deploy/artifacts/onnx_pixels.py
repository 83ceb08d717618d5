"""Give an ONNX detector a uint8 NHWC pixel input: ``Cast`` + ``Transpose`` in front of its
float32 NCHW input, so the runtime does the uint8 -> float32 conversion (multi-threaded, and
the first convolution then reads its input from a hot cache). The values the original
graph sees are the same floats, so its outputs are bit-identical.

This edits the serialized protobuf directly: the ONNX wire format is stable and the edit
touches three messages, so the core install (ONNX Runtime, no ``onnx`` package) gets it.
Anything it cannot parse raises :class:`ValueError` and the caller keeps the float input.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

PIXEL_INPUT = "yolox_deploy_pixels"  # uint8 [B, H, W, 3], BGR 0-255, letterboxed
_CAST_OUTPUT = "yolox_deploy_pixels_f32"

# Field numbers from onnx.proto.
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INPUT = 1, 11
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_ELEM_TYPE, _TENSOR_SHAPE, _SHAPE_DIM = 1, 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 2, 3, 4, 5
_ATTR_NAME, _ATTR_I, _ATTR_INTS, _ATTR_TYPE = 1, 3, 8, 20
_ATTR_INT, _ATTR_INTS_TYPE = 2, 7  # AttributeProto.AttributeType
_UINT8, _FLOAT = 2, 1  # TensorProto.DataType

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("malformed varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview, memoryview]]:
    """(field number, wire type, the whole encoded field, its payload) of one message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, end = _read_varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _read_varint(buf, pos)
            end = pos + length
        elif wire in (_FIXED64, _FIXED32):
            end = pos + (8 if wire == _FIXED64 else 4)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if end > len(buf):
            raise ValueError("truncated protobuf message")
        yield field, wire, buf[start:end], buf[pos:end]
        pos = end


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int_field(field: int, value: int) -> bytes:
    return _varint(field << 3 | _VARINT) + _varint(value)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _BYTES) + _varint(len(payload)) + payload


def _str_field(field: int, text: str) -> bytes:
    return _bytes_field(field, text.encode())


def _dimension(dim: int | str | None) -> bytes:
    if isinstance(dim, int) and dim > 0:
        return _bytes_field(_SHAPE_DIM, _int_field(_DIM_VALUE, dim))
    if isinstance(dim, str) and dim:
        return _bytes_field(_SHAPE_DIM, _str_field(_DIM_PARAM, dim))
    return _bytes_field(_SHAPE_DIM, b"")


def _pixel_value_info(nchw_shape: Sequence[int | str | None]) -> bytes:
    b, _, h, w = nchw_shape
    shape = b"".join(_dimension(d) for d in (b, h, w, 3))
    tensor = _int_field(_TENSOR_ELEM_TYPE, _UINT8) + _bytes_field(_TENSOR_SHAPE, shape)
    return _str_field(_VALUE_INFO_NAME, PIXEL_INPUT) + _bytes_field(_VALUE_INFO_TYPE, _bytes_field(_TYPE_TENSOR, tensor))


def _node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], attribute: bytes) -> bytes:
    body = b"".join(_str_field(_NODE_INPUT, i) for i in inputs) + b"".join(_str_field(_NODE_OUTPUT, o) for o in outputs)
    body += _str_field(_NODE_NAME, f"yolox_deploy_{op_type.lower()}") + _str_field(_NODE_OP_TYPE, op_type)
    return _bytes_field(_GRAPH_NODE, body + _bytes_field(_NODE_ATTRIBUTE, attribute))


def _conversion_nodes(input_name: str) -> bytes:
    cast_to = _str_field(_ATTR_NAME, "to") + _int_field(_ATTR_I, _FLOAT) + _int_field(_ATTR_TYPE, _ATTR_INT)
    perm = _str_field(_ATTR_NAME, "perm") + b"".join(_int_field(_ATTR_INTS, p) for p in (0, 3, 1, 2))
    perm += _int_field(_ATTR_TYPE, _ATTR_INTS_TYPE)
    return (_node("Cast", [PIXEL_INPUT], [_CAST_OUTPUT], cast_to)
            + _node("Transpose", [_CAST_OUTPUT], [input_name], perm))


def _value_info_name(payload: memoryview) -> str | None:
    for field, wire, _, value in _fields(payload):
        if field == _VALUE_INFO_NAME and wire == _BYTES:
            return bytes(value).decode()
    return None


def _graph_with_pixel_input(graph: memoryview, input_name: str, nchw_shape: Sequence[int | str | None]) -> bytes:
    parts = [_conversion_nodes(input_name)]  # first: repeated fields keep their order, so these come first
    replaced = 0
    for field, wire, whole, payload in _fields(graph):
        if field == _GRAPH_INPUT and wire == _BYTES and _value_info_name(payload) == input_name:
            parts.append(_bytes_field(_GRAPH_INPUT, _pixel_value_info(nchw_shape)))
            replaced += 1
        else:
            parts.append(bytes(whole))
    if replaced != 1:
        raise ValueError(f"graph input {input_name!r} found {replaced} times")
    return b"".join(parts)


def with_pixel_input(model: bytes, input_name: str, nchw_shape: Sequence[int | str | None]) -> bytes:
    """Serialized ONNX model whose float NCHW input ``input_name`` (shape ``nchw_shape``:
    ints, dim names or None) is replaced by the uint8 ``[B, H, W, 3]`` input
    :data:`PIXEL_INPUT`, cast and transposed in the graph."""
    if len(nchw_shape) != 4:
        raise ValueError(f"expected an NCHW input shape, got {list(nchw_shape)}")
    parts, graphs = [], 0
    for field, wire, whole, payload in _fields(memoryview(model)):
        if field == _MODEL_GRAPH and wire == _BYTES:
            parts.append(_bytes_field(_MODEL_GRAPH, _graph_with_pixel_input(payload, input_name, nchw_shape)))
            graphs += 1
        else:
            parts.append(bytes(whole))
    if graphs != 1:
        raise ValueError("not an ONNX model (no graph)")
    return b"".join(parts)
