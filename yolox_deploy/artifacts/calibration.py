"""Calibration data for INT8 post-training quantization, through our own letterbox."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import InvalidInputError, YoloxDeployError
from .deploy import file_sha256
from ..processing.images import IMAGE_SUFFIXES, read_image
from ..processing.preprocess import letterbox

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CalibrationSet:
    """Letterboxed calibration batches (float32 [1, 3, H, W], BGR 0-255) and where they came from."""

    batches: list[np.ndarray]
    files: tuple[str, ...]  # names of the images used, in the order used
    skipped: tuple[str, ...]  # unreadable files passed over
    seed: int | None  # None: the first files by name; else a seeded sample of the folder

    def describe(self) -> dict[str, Any]:
        """What a quantized model's metadata records, so the calibration can be reproduced."""
        digest = hashlib.sha256("\n".join(self.files).encode()).hexdigest()[:16]
        return {"images": len(self.files), "skipped_unreadable": len(self.skipped), "seed": self.seed,
                "files_sha256": digest, "preprocess": "yolox_deploy letterbox (pad 114, BGR 0-255)"}


def images_digest(files: list[Path]) -> str:
    """SHA-256 over the images' names and contents (in name order): what an INT8 file is made from,
    wherever the images lie. A dangling link or unreadable file is a one-line error."""
    lines = []
    for path in sorted(files, key=lambda p: p.name):
        try:
            lines.append(f"{path.name}:{file_sha256(path)}")
        except OSError as exc:
            raise InvalidInputError(f"calibration image {path} cannot be read ({exc.strerror or exc})") from None
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def calibration_set(folder: str | Path, input_hw: tuple[int, int], limit: int = 300, seed: int | None = 0,
                    progress: bool = True) -> CalibrationSet:
    """Up to ``limit`` images of ``folder``, letterboxed to ``input_hw``: a sample drawn with
    ``seed`` when the folder holds more (``seed=None``: the first by name). Unreadable files
    are skipped and counted; a folder with none readable is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if seed is not None and len(files) > limit:
        files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    batches, used, skipped = [], [], []
    for path in tqdm(files, desc="calibration images", unit="img", disable=not progress):
        if len(batches) >= limit:
            break
        try:
            batches.append(letterbox(read_image(path), input_hw)[0][None])
            used.append(path.name)
        except YoloxDeployError:
            skipped.append(path.name)
    if not batches:
        raise InvalidInputError(f"calibration folder {folder} has no readable images ({len(skipped)} unreadable; "
                                f"looked for {', '.join(IMAGE_SUFFIXES)}); point --calib at a folder of typical images")
    if skipped:
        log.warning("calibration: skipped %d unreadable image(s) in %s: %s", len(skipped), folder,
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return CalibrationSet(batches, tuple(used), tuple(skipped), seed if len(files) > limit else None)


def calibration_images(folder: str | Path, input_hw: tuple[int, int], limit: int = 300,
                       progress: bool = True) -> list[np.ndarray]:
    """The batches of :func:`calibration_set` (the first ``limit`` readable images by name)."""
    return calibration_set(folder, input_hw, limit, seed=None, progress=progress).batches
