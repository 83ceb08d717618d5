"""Letterbox preprocessing identical to the official YOLOX ``preproc``.

Resize by ``r = min(H / h, W / w)`` (INTER_LINEAR, sizes truncated to int), paste at the
top-left of an HxW canvas filled with 114, keep BGR 0-255, no normalisation, CHW float32.
The pixel variant stops before the float conversion (uint8 HxWx3, the same values) for
backends that convert inside the model (:attr:`Backend.native_pixels`).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import InvalidInputError

PAD_VALUE = 114


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


def letterbox_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """Letterbox one BGR uint8 HxWx3 image into ``out`` (float32 3xHxW); returns the ratio."""
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # Per-channel casts straight into the output (no uint8 canvas, no strided HWC->CHW copy);
    # only the padding is filled with 114.
    for channel, plane in enumerate(cv2.split(resized)):
        out[channel, :new_h, :new_w] = plane
    out[:, new_h:, :] = PAD_VALUE
    out[:, :new_h, new_w:] = PAD_VALUE
    return r


def letterbox_pixels_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """Letterbox one BGR uint8 HxWx3 image into ``out`` (uint8 HxWx3 canvas); returns the ratio."""
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    target = out[:new_h, :new_w]
    resized = cv2.resize(image, (new_w, new_h), dst=target if target.flags.c_contiguous else None,
                         interpolation=cv2.INTER_LINEAR)
    if not np.shares_memory(resized, out):  # a narrower-than-canvas image: its rows are strided
        target[...] = resized
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
