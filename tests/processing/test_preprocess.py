"""Letterbox: identical to the official preprocessing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing.preprocess import (
    check_input_size,
    letterbox,
    letterbox_batch,
    letterbox_pixels,
    pixels_to_tensor,
)


def official_preproc(img, input_size):
    """The documented official recipe, written out independently."""
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


@pytest.mark.parametrize("shape, size", [((480, 640, 3), (416, 416)), ((640, 427, 3), (416, 416)),
                                         ((100, 100, 3), (416, 416)), ((333, 777, 3), (320, 640)),
                                         ((416, 416, 3), (416, 416))])
def test_letterbox_matches_official_preprocessing(shape, size):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got, r = letterbox(img, size)
    want, r_want = official_preproc(img, size)
    assert r == r_want and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape, size", [((480, 640, 3), (416, 416)), ((640, 427, 3), (416, 416)),
                                         ((1, 1, 3), (416, 416)), ((333, 777, 3), (320, 640)),
                                         ((416, 416, 3), (416, 416)), ((1000, 60, 3), (64, 96))])
def test_pixel_letterbox_holds_the_same_values_as_uint8(shape, size):
    # wide images resize straight into the canvas, narrow ones (strided rows) through a copy
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pixels, r = letterbox_pixels(img, size)
    want, r_want = official_preproc(img, size)
    assert r == r_want and pixels.dtype == np.uint8 and pixels.shape == (*size, 3)
    np.testing.assert_array_equal(pixels_to_tensor(pixels[None])[0], want)


def test_pixel_batch_pads_like_the_float_batch():
    imgs = [np.full((50, 80, 3), v, np.uint8) for v in (10, 200)]
    pixels, ratios = letterbox_batch(imgs, (64, 64), batch_size=3, pixels=True)
    floats, float_ratios = letterbox_batch(imgs, (64, 64), batch_size=3)
    assert pixels.shape == (3, 64, 64, 3) and pixels.dtype == np.uint8 and ratios == float_ratios
    np.testing.assert_array_equal(pixels_to_tensor(pixels), floats)


def test_letterbox_on_real_images(coco_images):
    for path in coco_images[:5]:
        img = cv2.imread(str(path))
        np.testing.assert_array_equal(letterbox(img, (416, 416))[0], official_preproc(img, (416, 416))[0])
        np.testing.assert_array_equal(pixels_to_tensor(letterbox_pixels(img, (416, 416))[0][None])[0],
                                      official_preproc(img, (416, 416))[0])


def test_batch_pads_static_batches_with_the_last_image():
    imgs = [np.full((50, 80, 3), v, np.uint8) for v in (10, 200)]
    batch, ratios = letterbox_batch(imgs, (64, 64), batch_size=4)
    assert batch.shape == (4, 3, 64, 64) and len(ratios) == 2
    np.testing.assert_array_equal(batch[3], batch[1])
    assert batch[0, 0, 0, 0] == 10 and batch[0, 0, 63, 63] == 114


def test_input_size_must_be_multiple_of_32():
    assert check_input_size((416, 640)) == (416, 640)
    with pytest.raises(InvalidInputError, match="415x416 is not a positive multiple of 32; use e.g. 416x416"):
        check_input_size((415, 416))
    with pytest.raises(InvalidInputError, match="multiple of 32"):
        check_input_size((0, 32))
    with pytest.raises(InvalidInputError, match="height, width"):
        check_input_size((416,))
