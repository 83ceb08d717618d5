"""Letterbox: the official preprocessing's geometry, computed by the shared C++ core; the core,
its NumPy reference and OpenCV's INTER_LINEAR agree (exactly, and within one level)."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing import preprocess
from yolox_deploy.processing.preprocess import (
    check_input_size,
    letterbox,
    letterbox_batch,
    letterbox_pixels,
    pixels_to_tensor,
    resize_reference,
)

needs_kernel = pytest.mark.skipif(preprocess._kernel is None, reason="the C++ kernel is not built here")

# cv2.resize's own rounding differs from the core's on a few values (its scalar tail; measured
# on the 80 COCO images at 416 and 640: 0.006% of values, never more than one level)
CV2_MAX_FRACTION = 0.005


def official_preproc(img, input_size):
    """The documented official recipe, written out independently (cv2.resize)."""
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def assert_within_one_level_of_cv2(got: np.ndarray, want: np.ndarray) -> None:
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1, f"differs from cv2.resize by {diff.max()} levels"
    assert (diff > 0).mean() <= CV2_MAX_FRACTION, f"{(diff > 0).mean():.4%} of values differ from cv2.resize"


@pytest.mark.parametrize("shape, size", [((480, 640, 3), (416, 416)), ((640, 427, 3), (416, 416)),
                                         ((100, 100, 3), (416, 416)), ((333, 777, 3), (320, 640)),
                                         ((416, 416, 3), (416, 416))])
def test_letterbox_matches_official_preprocessing(shape, size):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got, r = letterbox(img, size)
    want, r_want = official_preproc(img, size)
    assert r == r_want and got.dtype == np.float32
    new_h, new_w = int(shape[0] * r), int(shape[1] * r)
    np.testing.assert_array_equal(got[:, new_h:], 114)  # the padding, exactly
    np.testing.assert_array_equal(got[:, :, new_w:], 114)
    assert_within_one_level_of_cv2(got, want)


@needs_kernel
@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), input_h=st.sampled_from([32, 64, 96, 160, 320, 416]),
       input_w=st.sampled_from([32, 64, 128, 416]), seed=st.integers(0, 2**32 - 1))
def test_the_kernel_letterbox_equals_its_numpy_reference(h, w, input_h, input_w, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = np.empty((3, input_h, input_w), np.float32)
    ratio = preprocess._kernel.letterbox_chw(img, out)
    expected_ratio, new_w, new_h = preprocess._resized_size((h, w), (input_h, input_w))
    assert ratio == expected_ratio
    np.testing.assert_array_equal(out[:, :new_h, :new_w], resize_reference(img, (new_h, new_w)).transpose(2, 0, 1))
    assert (out[:, new_h:] == 114).all() and (out[:, :, new_w:] == 114).all()
    pixels = np.empty((input_h, input_w, 3), np.uint8)
    assert preprocess._kernel.letterbox_hwc(img, pixels) == ratio
    np.testing.assert_array_equal(pixels_to_tensor(pixels[None])[0], out)
    # bands of rows on several threads: the bytes of one thread
    banded, banded_pixels = np.full_like(out, -1), np.zeros_like(pixels)
    assert preprocess._kernel.letterbox_chw(img, banded, threads=3) == ratio
    assert preprocess._kernel.letterbox_hwc(img, banded_pixels, threads=3) == ratio
    assert banded.tobytes() == out.tobytes() and banded_pixels.tobytes() == pixels.tobytes()


def test_the_numpy_path_gives_the_kernel_letterbox(monkeypatch):
    img = np.random.default_rng(3).integers(0, 256, (123, 457, 3), dtype=np.uint8)
    with_kernel = letterbox(img, (160, 320))[0], letterbox_pixels(img, (160, 320))[0]
    monkeypatch.setattr(preprocess, "_kernel", None)
    np.testing.assert_array_equal(letterbox(img, (160, 320))[0], with_kernel[0])
    np.testing.assert_array_equal(letterbox_pixels(img, (160, 320))[0], with_kernel[1])


@needs_kernel
def test_the_kernel_letterbox_refuses_what_it_cannot_write_into():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="writable C-contiguous float32"):
        preprocess._kernel.letterbox_chw(img, np.zeros((3, 32, 32), np.float64))
    with pytest.raises(ValueError, match="writable C-contiguous uint8"):
        preprocess._kernel.letterbox_hwc(img, np.zeros((32, 32, 3), np.uint8)[:, ::-1])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        preprocess._kernel.letterbox_chw(img.astype(np.float32), np.zeros((3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="image is empty"):
        preprocess._kernel.letterbox_chw(np.zeros((0, 5, 3), np.uint8), np.zeros((3, 32, 32), np.float32))


@pytest.mark.parametrize("shape, size", [((480, 640, 3), (416, 416)), ((640, 427, 3), (416, 416)),
                                         ((1, 1, 3), (416, 416)), ((333, 777, 3), (320, 640)),
                                         ((416, 416, 3), (416, 416)), ((1000, 60, 3), (64, 96))])
def test_pixel_letterbox_holds_the_same_values_as_uint8(shape, size):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pixels, r = letterbox_pixels(img, size)
    want, r_want = letterbox(img, size)
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
        got = letterbox(img, (416, 416))[0]
        assert_within_one_level_of_cv2(got, official_preproc(img, (416, 416))[0])
        np.testing.assert_array_equal(pixels_to_tensor(letterbox_pixels(img, (416, 416))[0][None])[0], got)


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


@pytest.mark.parametrize("shape, size", [((300, 416, 3), (416, 416)), ((416, 200, 3), (416, 416)), ((64, 64, 3), (64, 64))])
def test_an_image_of_the_resized_size_comes_through_unchanged(shape, size):
    """The core's same-size shortcut gives what its resize gives: the input itself."""
    img = np.random.default_rng(4).integers(0, 256, shape, dtype=np.uint8)
    tensor, ratio = letterbox(img, size)
    assert ratio == 1.0
    np.testing.assert_array_equal(resize_reference(img, shape[:2]), img)
    np.testing.assert_array_equal(tensor[:, :shape[0], :shape[1]], img.transpose(2, 0, 1))
    np.testing.assert_array_equal(letterbox_pixels(img, size)[0][:shape[0], :shape[1]], img)


def test_an_output_of_another_size_than_the_input_size_is_refused():
    img = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(InvalidInputError, match=r"output is \(64, 64\) for an input size of \(32, 64\)"):
        preprocess.letterbox_into(img, (32, 64), np.empty((3, 64, 64), np.float32))
    with pytest.raises(InvalidInputError, match="output is"):
        preprocess.letterbox_pixels_into(img, (32, 64), np.empty((64, 64, 3), np.uint8))


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(0, 100), st.integers(0, 100), st.integers(0, 2**31))
def test_a_window_of_a_larger_image_is_letterboxed_in_place_as_its_copy(h, w, top, left, seed):
    """Sliced inference letterboxes windows of the frame without copying them (the kernel reads the
    row-strided view): the same bytes as the letterbox of the window's contiguous copy."""
    frame = np.random.default_rng(seed).integers(0, 256, (top + h + 7, left + w + 5, 3), dtype=np.uint8)
    window = frame[top:top + h, left:left + w]
    for pixels in (True, False):
        batch, ratios = letterbox_batch([window, window[::-1]], (96, 128), pixels=pixels)
        copies, copy_ratios = letterbox_batch([np.ascontiguousarray(window), np.ascontiguousarray(window[::-1])],
                                              (96, 128), pixels=pixels)
        np.testing.assert_array_equal(batch, copies)
        assert ratios == copy_ratios


def instruction_sets() -> list[str]:
    """The letterbox's vector paths this machine can run (the scalar one always; AVX2 only where
    the CPU has it, which the kernel reports: nothing is asserted about the machine itself)."""
    native = preprocess.kernel_isa()
    x86 = ["scalar", "sse2", "sse4.1", "avx2"]
    if native in x86:
        return x86[: x86.index(native) + 1]
    return ["scalar"] + ([native] if native not in ("scalar", "numpy") else [])


@needs_kernel
@pytest.mark.arm64  # also in the aarch64 stage (.ci/arm64): NEON against the NumPy reference, emulated
@pytest.mark.parametrize("isa", instruction_sets())
def test_every_instruction_set_equals_the_numpy_reference(isa):
    """Each vector path (forced with YOLOX_DEPLOY_LETTERBOX_ISA) passes the property tests against
    the NumPy reference: the same bytes whichever CPU runs the wheel."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           __file__, "-k", "kernel_letterbox_equals_its_numpy or window_of_a_larger or resized_size_comes_through",
                           "-x"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "YOLOX_DEPLOY_LETTERBOX_ISA": isa})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
    check = subprocess.run([sys.executable, "-c", "from yolox_deploy.processing.preprocess import kernel_isa; "
                            "print(kernel_isa())"], capture_output=True, text=True,
                           env={**os.environ, "YOLOX_DEPLOY_LETTERBOX_ISA": isa})
    assert check.stdout.strip() == isa


@needs_kernel
def test_the_letterbox_band_workers_survive_fork():
    """The letterbox keeps worker threads for its bands; a forked child (multiprocessing's default
    on Linux) has none of them, and must still letterbox, on threads of its own, the same bytes."""
    import signal
    import time

    img = np.random.default_rng(3).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    want = np.empty((3, 416, 416), np.float32)
    preprocess._kernel.letterbox_chw(img, want, threads=2)  # the workers exist in this process now
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when its banded letterbox gives the parent's bytes
        got = np.empty_like(want)
        preprocess._kernel.letterbox_chw(img, got, threads=2)
        os._exit(0 if got.tobytes() == want.tobytes() else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in the letterbox (waiting on its parent's workers)")
