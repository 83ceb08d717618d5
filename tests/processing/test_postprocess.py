"""Shared postprocess: semantics, C++ kernel == NumPy reference, hostile input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolox_deploy.processing import postprocess as pp
from yolox_deploy.processing.grids import anchor_grid, num_anchors
from yolox_deploy.processing.postprocess import InvalidModelOutputError, postprocess

pytestmark = pytest.mark.skipif(not pp.kernel_available(), reason="C++ kernel not built")

INPUT = (64, 64)  # 8x8 + 4x4 + 2x2 = 84 anchors


def blank(num_classes: int = 2, batch: int = 1, hw=INPUT) -> np.ndarray:
    """Raw output with nothing above any threshold; box offsets 0 (one-stride boxes)."""
    return np.zeros((batch, num_anchors(hw), 5 + num_classes), np.float32)


def set_anchor(raw, index, obj, cls_scores, offsets=(0, 0, 0, 0), image=0):
    raw[image, index, :4] = offsets
    raw[image, index, 4] = obj
    raw[image, index, 5:] = cls_scores


def run_both(raw, input_hw=INPUT, ratios=(1.0,), shapes=None, **kw):
    cpp = postprocess(raw, input_hw, list(ratios), shapes, impl="cpp", **kw)
    ref = postprocess(raw, input_hw, list(ratios), shapes, impl="numpy", **kw)
    assert_same(cpp, ref)
    return cpp


def assert_same(cpp, ref):
    assert len(cpp) == len(ref)
    for (b1, s1, c1), (b2, s2, c2) in zip(cpp, ref):
        assert b1.dtype == np.float32 and s1.dtype == np.float32 and c1.dtype == np.int64
        assert b1.shape == b2.shape and b1.shape[1:] == (4,)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_allclose(b1, b2, rtol=0, atol=1e-4)


# --- semantics, on hand-made outputs -------------------------------------------------------

def test_grid_is_stride_ordered_and_row_major():
    grid, stride = anchor_grid((64, 96))
    assert grid.shape == (8 * 12 + 4 * 6 + 2 * 3, 2) and not grid.flags.writeable
    np.testing.assert_array_equal(grid[:3], [[0, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(grid[12], [0, 1])  # second row of the stride-8 level
    assert stride[0, 0] == 8 and stride[96, 0] == 16 and stride[-1, 0] == 32
    np.testing.assert_array_equal(grid[-1], [2, 1])


def test_decoding_scoring_and_mapping_back():
    raw = blank(num_classes=3)
    set_anchor(raw, 2 * 8 + 1, obj=0.8, cls_scores=[0.1, 0.9, 0.3], offsets=(0.5, 0.25, np.log(2), 0))
    (boxes, scores, classes), = run_both(raw, ratios=[0.5], shapes=None, conf=0.25)
    # cx = (0.5 + 1) * 8 = 12, cy = (0.25 + 2) * 8 = 18, w = 16, h = 8; then / 0.5
    np.testing.assert_allclose(boxes, [[8, 28, 40, 44]], atol=1e-5)
    assert scores[0] == np.float32(0.8) * np.float32(0.9) and classes.tolist() == [1]


def test_threshold_is_inclusive_on_objectness_times_best_class():
    raw = blank()
    set_anchor(raw, 0, obj=0.5, cls_scores=[0.5, 0.1])  # 0.25 exactly
    set_anchor(raw, 40, obj=0.9, cls_scores=[0.2, 0.27])  # 0.243 < 0.25
    assert len(run_both(raw, conf=0.25)[0][1]) == 1


def _two_boxes(iou_shift: float, classes=(0, 0)):
    """Two anchors of the stride-32 level whose boxes overlap by a chosen amount."""
    raw = blank()
    first, second = 84 - 4, 84 - 3  # (0, 0) and (1, 0) at stride 32, 32 px apart
    set_anchor(raw, first, 0.9, np.eye(2)[classes[0]], offsets=(0, 0, np.log(2), np.log(2)))
    set_anchor(raw, second, 0.8, np.eye(2)[classes[1]], offsets=(-iou_shift, 0, np.log(2), np.log(2)))
    return raw


def test_nms_suppresses_same_class_only_unless_agnostic():
    raw = _two_boxes(0.9, classes=(0, 1))  # heavy overlap, different classes
    assert len(run_both(raw, conf=0.25, iou=0.45)[0][1]) == 2
    assert len(run_both(raw, conf=0.25, iou=0.45, class_agnostic=True)[0][1]) == 1
    same = _two_boxes(0.9, classes=(0, 0))
    (_, scores, _), = run_both(same, conf=0.25, iou=0.45)
    assert scores.tolist() == [np.float32(0.9)]


def test_iou_equal_to_threshold_does_not_suppress_and_has_no_plus_one():
    # 64x64 boxes 32 px apart: inter 32*64, union 2*64*64 - 32*64, IoU exactly 1/3 (with the
    # demo code's +1 it would be 0.34 and the second box would go at threshold 1/3)
    raw = _two_boxes(0.0, classes=(0, 0))
    assert len(run_both(raw, conf=0.25, iou=1 / 3)[0][1]) == 2
    assert len(run_both(raw, conf=0.25, iou=0.33)[0][1]) == 1


def test_results_sorted_by_score_capped_and_clipped():
    raw = blank()
    for k, obj in enumerate([0.3, 0.9, 0.6, 0.6, 0.95]):
        set_anchor(raw, k * 2, obj, [1.0, 0.0], offsets=(0, 0, 3, 3))  # far apart centres, big boxes
    boxes, scores, _ = run_both(raw, conf=0.25, iou=1.0, max_det=4, shapes=[(20, 30)])[0]
    assert scores.tolist() == [np.float32(v) for v in (0.95, 0.9, 0.6, 0.6)]
    assert boxes.min() >= 0 and boxes[:, 0::2].max() <= 30 and boxes[:, 1::2].max() <= 20


def test_batch_images_are_independent_and_padding_images_ignored():
    raw = blank(batch=3)
    set_anchor(raw, 5, 0.9, [0.0, 1.0], image=0)
    set_anchor(raw, 6, 0.9, [1.0, 0.0], image=1)
    set_anchor(raw, 7, 0.9, [1.0, 0.0], image=2)  # a padding copy: no ratio given for it
    out = run_both(raw, ratios=[1.0, 2.0], conf=0.25)
    assert len(out) == 2 and out[0][2].tolist() == [1] and out[1][2].tolist() == [0]


# --- parity on the real outputs of the official model ---------------------------------------

@pytest.mark.parametrize("conf", [0.001, 0.01, 0.25])
@pytest.mark.parametrize("agnostic", [False, True])
def test_kernel_matches_numpy_on_official_nano_outputs(nano_raw_outputs, conf, agnostic):
    raw, ratios, shapes = nano_raw_outputs
    cpp = postprocess(raw, (416, 416), ratios, shapes, conf=conf, iou=0.65, class_agnostic=agnostic,
                      max_det=None, impl="cpp")
    ref = postprocess(raw, (416, 416), ratios, shapes, conf=conf, iou=0.65, class_agnostic=agnostic,
                      max_det=None, impl="numpy")
    assert_same(cpp, ref)
    assert sum(len(s) for _, s, _ in cpp) > (1000 if conf < 0.1 else 100)


def test_non_contiguous_and_float64_inputs_give_the_same_result(nano_raw_outputs):
    raw, ratios, shapes = nano_raw_outputs
    raw = raw[:4]
    strided = np.ascontiguousarray(raw.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert not strided.flags.c_contiguous
    want = postprocess(raw, (416, 416), ratios[:4], shapes[:4], conf=0.01, impl="cpp")
    assert_same(postprocess(strided, (416, 416), ratios[:4], shapes[:4], conf=0.01, impl="cpp"), want)
    assert_same(postprocess(raw.astype(np.float64), (416, 416), ratios[:4], shapes[:4], conf=0.01, impl="cpp"), want)


# --- properties ---------------------------------------------------------------------------

@st.composite
def raw_outputs(draw):
    h = draw(st.sampled_from([32, 64, 96]))
    w = draw(st.sampled_from([32, 64, 128]))
    c = draw(st.integers(1, 5))
    b = draw(st.integers(1, 3))
    n = num_anchors((h, w))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "identical", "zero_area", "huge", "tiny", "saturated"]))
    raw = np.empty((b, n, 5 + c), np.float32)
    raw[..., :2] = rng.normal(0, 1, (b, n, 2))
    raw[..., 2:4] = rng.normal(0, 1, (b, n, 2))
    raw[..., 4:] = rng.random((b, n, 1 + c)) ** 3
    if kind == "identical":
        raw[..., :4] = 0.3  # many equal boxes (per level), equal scores in places
        raw[..., 4:] = np.round(raw[..., 4:], 1)
    elif kind == "zero_area":
        raw[..., 2:4] = -200.0  # exp underflows: w = h = 0
    elif kind == "huge":
        raw[..., :2] = rng.normal(0, 1e5, (b, n, 2))
        raw[..., 2:4] = rng.uniform(-80, 80, (b, n, 2))
    elif kind == "tiny":
        raw[..., 4:] *= 1e-30
    elif kind == "saturated":
        raw[..., 4:] = 1.0
    return raw, (h, w)


@pytest.mark.arm64  # runs on the emulated aarch64 machine too (.ci/arm64)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_outputs(), conf=st.sampled_from([0.0, 1e-30, 0.001, 0.1, 0.25, 0.9, 1.0]),
       iou=st.sampled_from([0.0, 0.3, 0.45, 0.65, 1.0]), agnostic=st.booleans(),
       max_det=st.sampled_from([None, 0, 1, 7]), clip=st.booleans())
def test_kernel_equals_numpy_reference_on_random_outputs(data, conf, iou, agnostic, max_det, clip):
    raw, hw = data
    ratios = [0.37 + 0.5 * i for i in range(raw.shape[0])]
    shapes = [(int(hw[0] / r), int(hw[1] / r)) for r in ratios] if clip else None
    run_both(raw, hw, ratios, shapes, conf=conf, iou=iou, class_agnostic=agnostic, max_det=max_det)


# --- hostile input --------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_non_finite_outputs_are_refused(impl):
    raw = blank()
    raw[0, 3, 4] = np.nan
    with pytest.raises(InvalidModelOutputError, match="NaN/inf objectness"):
        postprocess(raw, INPUT, [1.0], impl=impl)
    raw = blank()
    set_anchor(raw, 3, 0.9, [np.inf, 0.5])
    with pytest.raises(InvalidModelOutputError, match="NaN/inf box or class"):
        postprocess(raw, INPUT, [1.0], impl=impl)
    raw = blank()
    set_anchor(raw, 3, 0.9, [0.9, 0.5], offsets=(np.nan, 0, 0, 0))
    with pytest.raises(InvalidModelOutputError, match="NaN/inf box or class"):
        postprocess(raw, INPUT, [1.0], impl=impl)
    raw = blank()
    set_anchor(raw, 3, 0.9, [0.9, 0.5], offsets=(0, 0, 500, 0))
    with pytest.raises(InvalidModelOutputError, match="decoded boxes overflow"):
        postprocess(raw, INPUT, [1.0], impl=impl)


@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_nan_in_rows_that_cannot_pass_is_documented_as_ignored(impl):
    raw = blank()
    set_anchor(raw, 3, 0.01, [np.nan, 0.5])  # objectness below conf: row never read by the kernel
    assert len(postprocess(raw, INPUT, [1.0], conf=0.25, impl=impl)[0][1]) == 0


@pytest.mark.parametrize("impl", ["cpp", "numpy"])
@pytest.mark.parametrize("bad, message", [
    (np.zeros((84, 7), np.float32), "shape"),
    (np.zeros((1, 84, 5), np.float32), "shape"),
    (np.zeros((1, 85, 7), np.float32), "85 anchors"),
    (np.zeros((1, 84, 7), np.int32), "dtype int32"),
    (np.zeros((1, 84, 7), bool), "dtype bool"),
])
def test_malformed_outputs_raise_clear_errors(impl, bad, message):
    with pytest.raises(InvalidModelOutputError, match=message):
        postprocess(bad, INPUT, [1.0], impl=impl)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_h=-64), "input size must be positive"),
    (dict(input_h=0), "input size must be positive"),
    (dict(strides=[0, 16, 32]), "stride"),
    (dict(strides=[]), "strides must not be empty"),
    (dict(ratios=[1.0, 1.0]), "more letterbox ratios"),
    (dict(ratios=[float("nan")]), "ratios must be finite"),
    (dict(conf=float("nan")), "conf"),
    (dict(iou=2.0), "iou"),
    (dict(image_shapes=[(0, 10)]), "positive"),
    (dict(raw=np.zeros((2, 3), np.float32)), "rank 3"),
    (dict(raw=[[1.0]]), "numpy array"),
    (dict(raw=np.zeros((1, 84, 7), np.uint8)), "dtype uint8"),
])
def test_kernel_validates_its_own_arguments(kwargs, message):
    from yolox_deploy.processing import _kernel

    args = dict(raw=blank(), input_h=64, input_w=64, strides=[8, 16, 32], conf=0.25, iou=0.45,
                class_agnostic=False, max_det=-1, ratios=[1.0], image_shapes=[])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        _kernel.postprocess(**args)


def test_numpy_path_is_used_and_announced_when_kernel_missing(monkeypatch, caplog):
    monkeypatch.setattr(pp, "_kernel", None)
    monkeypatch.setattr(pp, "_warned_slow_path", False)
    raw = blank()
    set_anchor(raw, 3, 0.9, [0.9, 0.5])
    with caplog.at_level("WARNING"):
        out = postprocess(raw, INPUT, [1.0], impl="auto")
        postprocess(raw, INPUT, [1.0], impl="auto")
    assert len(out[0][1]) == 1
    assert sum("using the NumPy reference" in r.message for r in caplog.records) == 1
    with pytest.raises(Exception, match="kernel is not built"):
        postprocess(raw, INPUT, [1.0], impl="cpp")
