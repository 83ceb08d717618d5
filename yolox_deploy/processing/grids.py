"""Anchor grids of the YOLOX head and box decoding (NumPy reference)."""
from __future__ import annotations

import functools

import numpy as np

DEFAULT_STRIDES = (8, 16, 32)


def num_anchors(input_hw: tuple[int, int], strides: tuple[int, ...] = DEFAULT_STRIDES) -> int:
    return sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)


@functools.lru_cache(maxsize=32)
def anchor_grid(input_hw: tuple[int, int],
                strides: tuple[int, ...] = DEFAULT_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """(grid float32 [N, 2] of (x, y) cell indices, stride float32 [N, 1]), levels in
    stride order, each level row-major; cached per size and read-only."""
    grids, level_strides = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(input_hw[0] // s), np.arange(input_hw[1] // s), indexing="ij")
        grids.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
        level_strides.append(np.full((grids[-1].shape[0], 1), s))
    grid = np.concatenate(grids).astype(np.float32)
    stride = np.concatenate(level_strides).astype(np.float32)
    grid.flags.writeable = False
    stride.flags.writeable = False
    return grid, stride


def decode_boxes(offsets: np.ndarray, grid: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """Raw offsets [K, 4] (x, y, log w, log h) -> xyxy float32 [K, 4] in input pixels.

    ``exp`` runs in float64 and is rounded to float32, so the C++ kernel (which does the
    same) gives bit-identical boxes.
    """
    cxcy = (offsets[:, :2] + grid) * stride
    with np.errstate(over="ignore"):
        wh = np.exp(offsets[:, 2:4].astype(np.float64)).astype(np.float32) * stride
    half = wh / 2
    return np.concatenate((cxcy - half, cxcy + half), axis=1)
