"""The pixel-input graph edit: a valid ONNX model whose outputs are bit-identical."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from yolox_deploy.artifacts.onnx_pixels import PIXEL_INPUT, _read_varint, _varint, with_pixel_input
from yolox_deploy.runtimes.onnxruntime import fp32_session_options

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varints_round_trip(value):
    encoded = _varint(value)
    assert _read_varint(memoryview(encoded), 0) == (value, len(encoded))


def _float_input(session):
    (inp,) = session.get_inputs()
    return inp.name, inp.shape


def test_edited_model_is_valid_onnx_with_a_uint8_nhwc_input(tiny_onnx):
    session = ort.InferenceSession(str(tiny_onnx), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    name, shape = _float_input(session)
    model = onnx.load_from_string(with_pixel_input(tiny_onnx.read_bytes(), name, shape))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == PIXEL_INPUT and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims == [shape[0], 64, 96, 3] and isinstance(shape[0], str)  # the dynamic batch stays dynamic
    assert [n.op_type for n in model.graph.node[:2]] == ["Cast", "Transpose"]
    assert model.metadata_props == onnx.load(str(tiny_onnx)).metadata_props


def test_outputs_are_bit_identical_to_the_float_input(nano_onnx):
    session = ort.InferenceSession(str(nano_onnx), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    name, shape = _float_input(session)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 416, 416, 3), dtype=np.uint8)
    edited = ort.InferenceSession(with_pixel_input(nano_onnx.read_bytes(), name, shape), fp32_session_options(ort),
                                  providers=["CPUExecutionProvider"])
    want = session.run(None, {name: np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), np.float32)})[0]
    np.testing.assert_array_equal(edited.run(None, {PIXEL_INPUT: pixels})[0], want)


def test_what_it_cannot_edit_is_a_value_error(tiny_onnx):
    data = tiny_onnx.read_bytes()
    with pytest.raises(ValueError, match="truncated"):
        with_pixel_input(data[:len(data) // 2], "images", ["b", 3, 64, 96])
    with pytest.raises(ValueError, match="'pixels' found 0 times"):
        with_pixel_input(data, "pixels", ["b", 3, 64, 96])
    with pytest.raises(ValueError, match="no graph"):
        with_pixel_input(b"", "images", ["b", 3, 64, 96])
    with pytest.raises(ValueError, match="NCHW"):
        with_pixel_input(data, "images", [3, 64, 96])
