"""Turning user images (paths, arrays, PIL images) into validated BGR uint8 HxWx3 arrays."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from ..errors import InvalidInputError
from .imagesize import image_dimensions

ImageLike = Union[str, Path, np.ndarray, Any]  # Any: a PIL.Image.Image (PIL is optional)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Largest image read_image decodes (width x height), checked on the header before decoding;
# set this attribute (or YOLOX_DEPLOY_MAX_IMAGE_PIXELS) to change it for the process.
MAX_IMAGE_PIXELS = int(os.environ.get("YOLOX_DEPLOY_MAX_IMAGE_PIXELS", 100_000_000))


def _looks_truncated(data: bytes) -> bool:
    """JPEG without its end-of-image marker, PNG without its IEND chunk."""
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-1024:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def check_pixel_limit(data: bytes, name: str, max_pixels: int | None) -> None:
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    size = image_dimensions(data)
    if size is not None and size[0] * size[1] > limit:
        raise InvalidInputError(f"{name} declares {size[0]}x{size[1]} pixels, over the limit of {limit:,}; raise "
                                "yolox_deploy.processing.images.MAX_IMAGE_PIXELS (or YOLOX_DEPLOY_MAX_IMAGE_PIXELS) if "
                                "it is genuine")


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes (a file's content) -> BGR uint8 HxWx3, with the checks of
    :func:`read_image`; ``name`` is used in error messages."""
    if not data:
        raise InvalidInputError(f"image file is empty (0 bytes): {name}")
    if _looks_truncated(data):
        raise InvalidInputError(f"image file is truncated (no end marker): {name}; re-copy or re-encode it")
    check_pixel_limit(data, Path(name).name, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InvalidInputError(f"cannot decode {name} as an image (supported: {', '.join(IMAGE_SUFFIXES)})")
    return image


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as BGR uint8 HxWx3 (16-bit is scaled to 8-bit, alpha dropped,
    grayscale expanded). Images whose header declares more than ``max_pixels`` (default
    :data:`MAX_IMAGE_PIXELS`) are refused before decoding."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"image not found: {path}")
    return decode_image(path.read_bytes(), str(path), max_pixels)


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise InvalidInputError(f"image array has dtype {array.dtype}; expected uint8 BGR 0-255 "
                                "(convert with np.clip(a, 0, 255).astype(np.uint8))")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInputError(f"image array has shape {array.shape}; expected HxW (gray), "
                                "HxWx3 (BGR) or HxWx4 (BGRA)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidInputError(f"image array is empty (shape {array.shape})")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    return array


def to_bgr(image: ImageLike) -> np.ndarray:
    """Any accepted image to BGR uint8 HxWx3: a path, a uint8 array (HxW gray, HxWx3 BGR,
    HxWx4 BGRA) or a PIL image (RGB order, converted)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL.Image.Image, without importing PIL
        rgb = np.asarray(image.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1])
    raise InvalidInputError(f"unsupported image type {type(image).__name__}; pass a path, a uint8 "
                            "numpy array or a PIL image")
