"""The letterbox of the official YOLOX ``preproc``, computed by the shared C++ core.

Resize by ``r = min(H / h, W / w)`` (sizes truncated to int), paste at the top-left of an
HxW canvas filled with 114, keep BGR 0-255, no normalisation, CHW float32. The pixel variant
stops before the float conversion (uint8 HxWx3, the same values) for backends that convert
inside the model (:attr:`Backend.native_pixels`).

The resize is OpenCV's INTER_LINEAR for 8-bit images written out in ``cpp/core/letterbox.cpp``
(and in NumPy below, the reference when the kernel is not built), so that Python, the C++
library and every CPU produce byte-identical inputs whatever OpenCV build is installed.
``cv2.resize`` itself differs from it by one level on a small fraction of values (its
scalar tail rounds differently; its NEON code on aarch64 more often): docs/cpp.md.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError

try:
    from . import _kernel
except ImportError:  # built by setup.py; missing only where no C++ compiler was found at install
    _kernel = None

PAD_VALUE = 114
# The kernel letterboxes one image on up to this many threads (bands of rows; the same bytes as one)
LETTERBOX_THREADS = min(2, os.cpu_count() or 1)
_WEIGHT_ONE = 2048  # 11-bit fixed-point weights, OpenCV's INTER_RESIZE_COEF_SCALE


def kernel_isa() -> str:
    """The vector instructions the C++ letterbox runs on this CPU ('avx2', 'sse4.1', 'sse2', 'neon', 'scalar';
    YOLOX_DEPLOY_LETTERBOX_ISA forces one, with the same bytes), or 'numpy' without the kernel."""
    return _kernel.letterbox_isa() if _kernel is not None else "numpy"


def check_input_size(input_size: Sequence[int], multiple: int = 32) -> tuple[int, int]:
    """Validate an (height, width) network input size."""
    if len(input_size) != 2:
        raise InvalidInputError(f"input size must be (height, width), got {tuple(input_size)}")
    h, w = (int(v) for v in input_size)
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise InvalidInputError(f"input size {h}x{w} is not a positive multiple of {multiple}; "
                                f"use e.g. {max(multiple, round(h / multiple) * multiple)}x"
                                f"{max(multiple, round(w / multiple) * multiple)}")
    return h, w


def letterbox_ratio(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> float:
    """Scale factor from original-image pixels to network-input pixels."""
    return min(input_hw[0] / image_hw[0], input_hw[1] / image_hw[1])


def _resized_size(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[float, int, int]:
    """(ratio, resized width, resized height) of an image letterboxed into ``input_hw``."""
    r = letterbox_ratio(image_hw, input_hw)
    return r, max(1, int(image_hw[1] * r)), max(1, int(image_hw[0] * r))


def _linear_taps(source: int, destination: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per destination index: source index, next source index and their 11-bit weights
    (half-pixel centres, edges clamped; float32 arithmetic as in cpp/core/letterbox.cpp)."""
    scale = 1.0 / (destination / source)
    f = ((np.arange(destination) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)
    outside = (s < 0) | (s >= source - 1)
    f[outside] = 0
    s = np.clip(s, 0, source - 1)
    w0 = np.rint((np.float32(1) - f) * np.float32(_WEIGHT_ONE)).astype(np.int64)
    w1 = np.rint(f * np.float32(_WEIGHT_ONE)).astype(np.int64)
    return s, np.minimum(s + 1, source - 1), w0, w1


def resize_reference(image: np.ndarray, new_hw: tuple[int, int]) -> np.ndarray:
    """NumPy reference of the core's bilinear resize: BGR uint8 HxWx3 -> uint8 new_h x new_w x 3."""
    (sx0, sx1, wx0, wx1), (sy0, sy1, wy0, wy1) = (_linear_taps(image.shape[1], new_hw[1]),
                                                  _linear_taps(image.shape[0], new_hw[0]))
    rows = np.unique(np.concatenate([sy0, sy1]))
    source = np.zeros((image.shape[0], new_hw[1], 3), np.int64)
    picked = image[rows].astype(np.int64)
    source[rows] = picked[:, sx0] * wx0[None, :, None] + picked[:, sx1] * wx1[None, :, None]  # exact in int32

    def high_half(values: np.ndarray, weights: np.ndarray) -> np.ndarray:  # OpenCV's 16-bit SIMD product
        return (np.clip(values >> 4, -32768, 32767) * weights[:, None, None]) >> 16

    blended = (high_half(source[sy0], wy0) + high_half(source[sy1], wy1) + 2) >> 2
    return np.clip(blended, 0, 255).astype(np.uint8)


def _contiguous_bgr(image: np.ndarray, out_hw: tuple[int, ...], input_hw: tuple[int, int]) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"letterbox needs a BGR uint8 HxWx3 image, got {image.dtype} {image.shape}")
    if tuple(out_hw) != tuple(input_hw):  # the kernel takes the input size from the output array
        raise InvalidInputError(f"letterbox output is {tuple(out_hw)} for an input size of {tuple(input_hw)}")
    if image.strides[1:] == (3, 1) and (image.shape[0] == 1 or image.strides[0] >= 3 * image.shape[1]):
        return image  # only the rows are strided (a window of a larger image): the kernel reads it in place
    return np.ascontiguousarray(image)


def letterbox_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """Letterbox one BGR uint8 HxWx3 image into ``out`` (float32 3xHxW); returns the ratio."""
    image = _contiguous_bgr(image, out.shape[1:], input_hw)
    if _kernel is not None and out.flags.c_contiguous:
        return _kernel.letterbox_chw(image, out, LETTERBOX_THREADS)
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    resized = resize_reference(image, (new_h, new_w))
    out[:, :new_h, :new_w] = resized.transpose(2, 0, 1)
    out[:, new_h:, :] = PAD_VALUE
    out[:, :new_h, new_w:] = PAD_VALUE
    return r


def letterbox_pixels_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """Letterbox one BGR uint8 HxWx3 image into ``out`` (uint8 HxWx3 canvas); returns the ratio."""
    image = _contiguous_bgr(image, out.shape[:2], input_hw)
    if _kernel is not None and out.flags.c_contiguous:
        return _kernel.letterbox_hwc(image, out, LETTERBOX_THREADS)
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    out[:new_h, :new_w] = resize_reference(image, (new_h, new_w))
    out[new_h:, :] = PAD_VALUE
    out[:new_h, new_w:] = PAD_VALUE
    return r


def letterbox(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """One image -> (float32 [3, H, W] BGR 0-255, ratio)."""
    out = np.empty((3, input_hw[0], input_hw[1]), dtype=np.float32)
    return out, letterbox_into(image, input_hw, out)


def letterbox_pixels(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """One image -> (uint8 [H, W, 3] BGR letterboxed, ratio)."""
    out = np.empty((input_hw[0], input_hw[1], 3), dtype=np.uint8)
    return out, letterbox_pixels_into(image, input_hw, out)


def pixels_to_tensor(pixels: np.ndarray) -> np.ndarray:
    """uint8 [B, H, W, 3] letterboxed pixels -> float32 [B, 3, H, W] (the same values)."""
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)


def letterbox_batch(images: Sequence[np.ndarray], input_hw: tuple[int, int],
                    batch_size: int | None = None, pixels: bool = False) -> tuple[np.ndarray, list[float]]:
    """Images -> (float32 [B, 3, H, W], or with ``pixels`` uint8 [B, H, W, 3], ratios).
    ``batch_size`` larger than ``len(images)`` pads the batch with copies of the last image
    (for static-batch models)."""
    if not images:
        raise InvalidInputError("no images to preprocess")
    b = max(len(images), batch_size or 0)
    if pixels:
        batch = np.empty((b, input_hw[0], input_hw[1], 3), dtype=np.uint8)
        ratios = [letterbox_pixels_into(img, input_hw, batch[i]) for i, img in enumerate(images)]
    else:
        batch = np.empty((b, 3, input_hw[0], input_hw[1]), dtype=np.float32)
        ratios = [letterbox_into(img, input_hw, batch[i]) for i, img in enumerate(images)]
    batch[len(images):] = batch[len(images) - 1]
    return batch, ratios
