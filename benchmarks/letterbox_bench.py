"""Letterbox cost: the shared core's resize (cpp/core/letterbox.cpp, what every Detector runs since
the C++ library) against the cv2.resize path it replaced, on the same images in the same run.

``python benchmarks/letterbox_bench.py [--assets DIR] [--rounds 5] [--threads N]``: per image and
input size, both paths alternate ``--rounds`` times (5 calls each); medians and p90 over all
calls, and the ratio core / cv2. Both run on the same number of threads: ``--threads`` (default
``LETTERBOX_THREADS``, what every Detector uses) for OpenCV (cv2.setNumThreads; it parallelises
resize) and the core (bands of rows).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from yolox_deploy.processing.images import read_image
from yolox_deploy.processing import preprocess
from yolox_deploy.processing.preprocess import PAD_VALUE, _resized_size


def cv2_letterbox_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """The previous letterbox: cv2.resize INTER_LINEAR, per-channel casts into the float output."""
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    for channel, plane in enumerate(cv2.split(resized)):
        out[channel, :new_h, :new_w] = plane
    out[:, new_h:, :] = PAD_VALUE
    out[:, :new_h, new_w:] = PAD_VALUE
    return r


def cv2_letterbox_pixels_into(image: np.ndarray, input_hw: tuple[int, int], out: np.ndarray) -> float:
    """The previous uint8 letterbox (the pixel input of ONNX Runtime and OpenVINO): cv2.resize into the canvas."""
    r, new_w, new_h = _resized_size(image.shape[:2], input_hw)
    out[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out[new_h:, :] = PAD_VALUE
    out[:new_h, new_w:] = PAD_VALUE
    return r


def timed_ms(fn, image: np.ndarray, size: tuple[int, int], out: np.ndarray, calls: int = 5) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(image, size, out)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get("YOLOX_DEPLOY_ASSETS", "../shared")))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=preprocess.LETTERBOX_THREADS,
                        help="threads of both letterboxes (default: the Detector's, %(default)s)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    preprocess.LETTERBOX_THREADS = args.threads

    def letterbox_into(image: np.ndarray, size: tuple[int, int], out: np.ndarray) -> float:
        return preprocess.letterbox_into(image, size, out)

    def letterbox_pixels_into(image: np.ndarray, size: tuple[int, int], out: np.ndarray) -> float:
        return preprocess.letterbox_pixels_into(image, size, out)

    images = [read_image(p) for p in sorted((args.assets / "data" / "coco-val-mini" / "images").glob("*.jpg"))]
    print(f"{len(images)} images, cv2 {cv2.__version__} with {cv2.getNumThreads()} threads, core with "
          f"{preprocess.LETTERBOX_THREADS}, kernel instruction set: {preprocess.kernel_isa()}")
    print("| input | output | core median ms | core p90 | cv2.resize path median ms | cv2 p90 | core / cv2 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in ((416, 416), (640, 640)):
        for kind, core_fn, cv2_fn, out in (
                ("float32 CHW", letterbox_into, cv2_letterbox_into, np.empty((3, *size), np.float32)),
                ("uint8 HWC (ONNX Runtime, OpenVINO)", letterbox_pixels_into, cv2_letterbox_pixels_into,
                 np.empty((*size, 3), np.uint8))):
            core, old = [], []
            for _ in range(args.rounds):
                for image in images:
                    core += timed_ms(core_fn, image, size, out)
                    old += timed_ms(cv2_fn, image, size, out)
            c, o = statistics.median(core), statistics.median(old)
            print(f"| {size[0]}x{size[1]} | {kind} | {c:.3f} | {np.percentile(core, 90):.3f} | {o:.3f} | "
                  f"{np.percentile(old, 90):.3f} | {c / o:.2f} |")


if __name__ == "__main__":
    main()
