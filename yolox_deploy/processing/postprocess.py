"""The one postprocess every backend shares: score filter, grid decode, NMS, mapping back.

Input is the raw head output ``[B, N, 5 + C]`` (box offsets not decoded, sigmoid
objectness, sigmoid class scores). Semantics are those of the official YOLOX evaluator:

* score = objectness x best class score; a candidate needs ``score >= conf`` (and, which
  is equivalent for sigmoid outputs and lets both implementations skip rows early,
  ``objectness >= conf``);
* boxes decoded as ``cx = (x + grid_x) * stride``, ``w = exp(log_w) * stride`` in network
  input pixels, NMS there (class-aware unless ``class_agnostic``), then divided by the
  letterbox ratio to original-image pixels and, if ``clip``, clipped to the image;
* results sorted by score descending, at most ``max_det`` per image (``None``: all).

Non-finite values are refused: objectness anywhere, or box/class values of a row whose
objectness passes the threshold (rows that cannot pass are never read by the kernel).

``impl="cpp"`` runs the C++ kernel, ``"numpy"`` the reference below, ``"auto"`` the
kernel when it is built (it is, by ``pip install``) and the reference otherwise.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError, YoloxDeployError
from .grids import DEFAULT_STRIDES, anchor_grid, decode_boxes, num_anchors
from .nms import nms

try:
    from . import _kernel
except ImportError:  # built by setup.py; missing only in a source tree that was not installed
    _kernel = None

log = logging.getLogger(__name__)
_warned_slow_path = False

ImageResult = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy f32 [K,4], scores f32 [K], class ids i64 [K]


class InvalidModelOutputError(YoloxDeployError, ValueError):
    """The raw model output is not a YOLOX head output for this input size."""


def kernel_available() -> bool:
    """Whether the C++ kernel was built at install time (else "auto" runs the NumPy reference)."""
    return _kernel is not None


def validate_raw(raw: np.ndarray, input_hw: tuple[int, int],
                 strides: Sequence[int] = DEFAULT_STRIDES) -> np.ndarray:
    """Check rank, dtype and anchor count; return a float32 view or copy."""
    raw = np.asarray(raw)
    if raw.dtype.kind != "f":
        raise InvalidModelOutputError(f"model output has dtype {raw.dtype}; expected floating point")
    if raw.ndim != 3 or raw.shape[2] < 6:
        raise InvalidModelOutputError(f"model output has shape {raw.shape}; expected [batch, anchors, "
                                      "5 + num_classes] with num_classes >= 1")
    expected = num_anchors(input_hw, tuple(strides))
    if raw.shape[1] != expected:
        raise InvalidModelOutputError(
            f"model output has {raw.shape[1]} anchors but input {input_hw[0]}x{input_hw[1]} with strides "
            f"{tuple(strides)} gives {expected}; is the input size right for this model?")
    return raw.astype(np.float32, copy=False)


def _check_settings(conf: float, iou: float, max_det: int | None, ratios: Sequence[float],
                    image_shapes: Sequence[tuple[int, int]] | None, batch: int) -> None:
    if not (math.isfinite(conf) and conf >= 0):
        raise InvalidInputError(f"conf must be a finite number >= 0, got {conf}")
    if not (math.isfinite(iou) and 0 <= iou <= 1):
        raise InvalidInputError(f"iou must be in [0, 1], got {iou}")
    if max_det is not None and max_det < 0:
        raise InvalidInputError(f"max_det must be >= 0 or None, got {max_det}")
    if len(ratios) > batch:
        raise InvalidInputError(f"{len(ratios)} letterbox ratios for a batch of {batch}")
    if not all(math.isfinite(r) and r > 0 for r in ratios):
        raise InvalidInputError(f"letterbox ratios must be finite and > 0, got {list(ratios)}")
    if image_shapes is not None and (len(image_shapes) != len(ratios)
                                     or not all(h > 0 and w > 0 for h, w in image_shapes)):
        raise InvalidInputError(f"image shapes {list(image_shapes)} must be one positive (h, w) per ratio")


def _postprocess_one_numpy(pred: np.ndarray, grid: np.ndarray, stride: np.ndarray, conf: np.float32,
                           iou: float, class_agnostic: bool, max_det: int | None, ratio: float,
                           image_hw: tuple[int, int] | None) -> ImageResult:
    objectness = pred[:, 4]
    if not np.isfinite(objectness).all():
        raise InvalidModelOutputError("model output has NaN/inf objectness; the model or its conversion is broken")
    rows_idx = np.flatnonzero(objectness >= conf)
    rows = pred[rows_idx]
    if not np.isfinite(rows).all():
        raise InvalidModelOutputError("model output has NaN/inf box or class values; "
                                      "the model or its conversion is broken")
    class_ids = rows[:, 5:].argmax(axis=1)
    scores = rows[:, 4] * rows[np.arange(len(rows)), 5 + class_ids]
    passing = scores >= conf
    rows_idx, rows, class_ids, scores = rows_idx[passing], rows[passing], class_ids[passing], scores[passing]
    boxes = decode_boxes(rows[:, :4], grid[rows_idx], stride[rows_idx])
    if not np.isfinite(boxes).all():
        raise InvalidModelOutputError("decoded boxes overflow (box offsets far outside any real model's range)")
    keep = nms(boxes, scores, class_ids, iou, class_agnostic)[:max_det]
    boxes = boxes[keep] / np.float32(ratio)
    if image_hw is not None:
        np.clip(boxes[:, 0::2], 0, np.float32(image_hw[1]), out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, np.float32(image_hw[0]), out=boxes[:, 1::2])
    return boxes.astype(np.float32), scores[keep], class_ids[keep].astype(np.int64)


def postprocess_numpy(raw: np.ndarray, input_hw: tuple[int, int], ratios: Sequence[float],
                      image_shapes: Sequence[tuple[int, int]] | None, conf: float = 0.25,
                      iou: float = 0.45, class_agnostic: bool = False, max_det: int | None = 300,
                      strides: Sequence[int] = DEFAULT_STRIDES) -> list[ImageResult]:
    """NumPy reference of :func:`postprocess` (``image_shapes=None``: no clipping)."""
    grid, stride = anchor_grid(tuple(input_hw), tuple(strides))
    conf32 = np.float32(conf)
    return [_postprocess_one_numpy(raw[b], grid, stride, conf32, iou, class_agnostic, max_det, r,
                                   None if image_shapes is None else tuple(image_shapes[b]))
            for b, r in enumerate(ratios)]


def _warn_slow_path_once() -> None:
    global _warned_slow_path
    if not _warned_slow_path:
        _warned_slow_path = True
        log.warning("yolox_deploy: C++ postprocess kernel not built, using the NumPy reference (same results, "
                    "slower); install g++ and python3-dev, then reinstall with 'pip install .' to build it")


def postprocess(raw: np.ndarray, input_hw: tuple[int, int], ratios: Sequence[float],
                image_shapes: Sequence[tuple[int, int]] | None = None, *, conf: float = 0.25,
                iou: float = 0.45, class_agnostic: bool = False, max_det: int | None = 300,
                strides: Sequence[int] = DEFAULT_STRIDES, impl: str = "auto") -> list[ImageResult]:
    """Raw ``[B, N, 5 + C]`` -> per image (xyxy float32 [K, 4] in original-image pixels,
    scores float32 [K], class ids int64 [K]).

    ``ratios`` holds one letterbox ratio per image (fewer than B: trailing padding images
    are ignored); ``image_shapes`` one (height, width) per image to clip to, or None.
    """
    raw = validate_raw(raw, input_hw, strides)
    _check_settings(conf, iou, max_det, ratios, image_shapes, raw.shape[0])
    if impl not in ("auto", "cpp", "numpy"):
        raise InvalidInputError(f"postprocess impl must be 'auto', 'cpp' or 'numpy', got {impl!r}")
    if impl == "cpp" and _kernel is None:
        raise YoloxDeployError("the C++ postprocess kernel is not built (no C++ compiler at install time): use "
                               "impl='auto' or 'numpy', or install g++ and reinstall with 'pip install .'")
    if impl == "numpy" or _kernel is None:
        if impl == "auto":
            _warn_slow_path_once()
        return postprocess_numpy(raw, input_hw, ratios, image_shapes, conf, iou, class_agnostic,
                                 max_det, strides)
    shapes = [] if image_shapes is None else [(int(h), int(w)) for h, w in image_shapes]
    try:
        return _kernel.postprocess(raw, int(input_hw[0]), int(input_hw[1]), [int(s) for s in strides],
                                   float(conf), float(iou), bool(class_agnostic),
                                   -1 if max_det is None else int(max_det),
                                   [float(r) for r in ratios], shapes)
    except ValueError as exc:
        raise InvalidModelOutputError(str(exc)) from None
