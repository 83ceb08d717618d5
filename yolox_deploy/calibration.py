"""Calibration data for INT8 post-training quantization, through our own letterbox."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import InvalidInputError, YoloxDeployError
from .images import IMAGE_SUFFIXES, read_image
from .preprocess import letterbox


def calibration_images(folder: str | Path, input_hw: tuple[int, int], limit: int = 300,
                       progress: bool = True) -> list[np.ndarray]:
    """Up to ``limit`` letterboxed images (float32 [1, 3, H, W]) from ``folder``, sorted by
    name; unreadable files are skipped, and a folder with none readable is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    batches = []
    for path in tqdm(files, desc="calibration images", unit="img", disable=not progress):
        if len(batches) >= limit:
            break
        try:
            batches.append(letterbox(read_image(path), input_hw)[0][None])
        except YoloxDeployError:
            continue
    if not batches:
        raise InvalidInputError(f"calibration folder {folder} has no readable images "
                                f"({', '.join(IMAGE_SUFFIXES)}); point --calib at a folder of typical images")
    return batches
