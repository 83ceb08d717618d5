"""Image loading: every accepted form, and one clear line for everything else."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing.images import read_image, to_bgr

BGR = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_arrays_in_every_layout_become_bgr():
    assert to_bgr(BGR) is BGR
    gray = BGR[:, :, 0]
    np.testing.assert_array_equal(to_bgr(gray), np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(to_bgr(gray[:, :, None]), to_bgr(gray))
    bgra = np.dstack([BGR, np.full(BGR.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(to_bgr(bgra), BGR)


def test_pil_images_are_converted_from_rgb():
    from PIL import Image

    pil = Image.fromarray(BGR[:, :, ::-1].copy())
    np.testing.assert_array_equal(to_bgr(pil), BGR)
    np.testing.assert_array_equal(to_bgr(pil.convert("RGBA")), BGR)


def test_files_png_16bit_gray_alpha(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), BGR)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), BGR)
    cv2.imwrite(str(tmp_path / "g16.png"), (BGR[:, :, 0].astype(np.uint16) * 257))
    img16 = read_image(tmp_path / "g16.png")
    assert img16.dtype == np.uint8 and img16.shape == (20, 30, 3)
    np.testing.assert_array_equal(img16[:, :, 0], BGR[:, :, 0])  # 16-bit scaled back to 8-bit
    cv2.imwrite(str(tmp_path / "a4.png"), np.dstack([BGR, BGR[:, :, 0]]))
    np.testing.assert_array_equal(read_image(tmp_path / "a4.png"), BGR)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.float32), "dtype float32; expected uint8"),
    (np.zeros((10, 10, 2), np.uint8), r"shape \(10, 10, 2\)"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    (12, "unsupported image type int"),
])
def test_bad_arrays(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        to_bgr(bad)


def test_bad_files(tmp_path, coco_images):
    with pytest.raises(InvalidInputError, match="image not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty \\(0 bytes\\)"):
        read_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(InvalidInputError, match="cannot decode"):
        read_image(tmp_path / "text.jpg")
    data = coco_images[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="truncated"):
        read_image(tmp_path / "cut.jpg")
    png = cv2.imencode(".png", BGR)[1].tobytes()
    (tmp_path / "cut.png").write_bytes(png[:-20])
    with pytest.raises(InvalidInputError, match="truncated"):
        read_image(tmp_path / "cut.png")
