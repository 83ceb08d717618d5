"""The user's images for ``yolox-tune``: decoded once, checked against their annotations
when there are some, and split (seeded) into calibration and evaluation images."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..artifacts.calibration import images_digest
from ..errors import InvalidInputError
from ..evaluation import read_annotations
from ..processing.images import IMAGE_SUFFIXES, read_image


@dataclasses.dataclass
class TuneImages:
    """Decoded BGR images with their COCO image ids; ``annotations``: the COCO dataset dict
    restricted to them (None: no labels given)."""

    folder: Path
    files: list[Path]
    images: list[np.ndarray]
    image_ids: list[int]
    annotations: dict[str, Any] | None = None

    def subset(self, indices: list[int]) -> TuneImages:
        """These images at ``indices`` (in that order), their annotations restricted to them."""
        ids = [self.image_ids[i] for i in indices]
        annotations = self.annotations
        if annotations is not None:
            kept = set(ids)
            annotations = {**annotations, "images": [e for e in annotations["images"] if int(e["id"]) in kept],
                           "annotations": [a for a in annotations["annotations"] if int(a["image_id"]) in kept]}
        return TuneImages(self.folder, [self.files[i] for i in indices], [self.images[i] for i in indices], ids,
                          annotations)

    @property
    def category_ids(self) -> list[int] | None:
        """Dataset category ids in class-index order (the official evaluator's mapping)."""
        if self.annotations is None:
            return None
        return sorted(int(c["id"]) for c in self.annotations["categories"])


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` by name, or a one-line error for a missing, unreadable or empty one."""
    if not folder.is_dir():
        raise InvalidInputError(f"--data {folder} is not a folder: give the folder of your images")
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except PermissionError:
        raise InvalidInputError(f"--data {folder} cannot be read (permission denied)") from None
    if not files:
        raise InvalidInputError(f"--data {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): give the folder "
                                "of the images the model will see")
    return files


def load_images(folder: str | Path, ann: str | Path | None, max_images: int, progress: bool = True) -> TuneImages:
    """The first ``max_images`` images of ``folder`` (with ``ann``: the annotated ones, by
    image id), decoded; every one must decode, and with ``ann`` every annotated image must
    be there, at the size the annotations give."""
    folder = Path(folder)
    files = image_files(folder)
    annotations = read_annotations(Path(ann)) if ann is not None else None
    if annotations is not None:
        by_name = {p.name: p for p in files}
        entries = sorted(annotations["images"], key=lambda e: int(e["id"]))
        missing = [e["file_name"] for e in entries if e["file_name"] not in by_name]
        if missing:
            raise InvalidInputError(f"{len(missing)} of the {len(entries)} images in {Path(ann).name} are not in "
                                    f"{folder} (e.g. {missing[0]}): the annotations do not match these images")
        entries = entries[:max_images]
        files, ids = [by_name[e["file_name"]] for e in entries], [int(e["id"]) for e in entries]
    else:
        files, ids = files[:max_images], list(range(1, min(len(files), max_images) + 1))
        entries = []
    images = []
    with tqdm(files, desc="reading images", unit="img", leave=False, disable=not progress) as bar:
        for path in bar:
            images.append(_read(path))
    for entry, image in zip(entries, images):
        if (int(entry.get("height", image.shape[0])), int(entry.get("width", image.shape[1]))) != image.shape[:2]:
            raise InvalidInputError(f"{entry['file_name']} is {image.shape[1]}x{image.shape[0]} in {folder} but "
                                    f"{entry.get('width')}x{entry.get('height')} in {Path(ann).name}: the annotations "
                                    "are for other images (resized?)")
    if annotations is not None:
        kept = set(ids)
        annotations = {**annotations, "images": [e for e in annotations["images"] if int(e["id"]) in kept],
                       "annotations": [a for a in annotations["annotations"] if int(a["image_id"]) in kept]}
    return TuneImages(folder, files, images, ids, annotations)


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--data holds an unreadable image: {exc}; remove or replace it") from None
    except PermissionError:
        raise InvalidInputError(f"--data holds an unreadable image: {path} (permission denied)") from None


SMALL_SPLIT = 40  # below this many images, INT8 cannot be judged on images it was not calibrated on
MAX_CALIBRATION = 300


@dataclasses.dataclass
class Split:
    """``--data`` cut in two by a seeded shuffle: INT8 calibrates on ``calibration`` and
    every accuracy figure is computed on ``evaluation`` (no image is in both)."""

    seed: int
    calibration: list[Path]
    evaluation: TuneImages

    @property
    def too_small(self) -> bool:
        return len(self.calibration) + len(self.evaluation.files) < SMALL_SPLIT

    def record(self) -> dict[str, Any]:
        return {"seed": self.seed, "calibration": [p.name for p in self.calibration],
                "evaluation": [p.name for p in self.evaluation.files]}


def split_images(images: TuneImages, seed: int) -> Split:
    """Half the images (at most :data:`MAX_CALIBRATION`) for calibration, the rest for
    evaluation, drawn by a shuffle seeded with ``seed``; file order kept within each part."""
    n = len(images.files)
    calibration_count = min(MAX_CALIBRATION, n // 2)
    chosen = set(np.random.default_rng(seed).permutation(n)[:calibration_count].tolist())
    evaluation = images.subset([i for i in range(n) if i not in chosen])
    return Split(seed, [images.files[i] for i in sorted(chosen)], evaluation)


def calibration_folder(split: Split, cache_dir: Path) -> Path:
    """A folder of links to the calibration images (the exporters calibrate on a folder), named
    by the images' names and contents, so that other images make other INT8 files and moved
    images the same ones. Each link is (re)pointed at where its image is now."""
    folder = Path(cache_dir) / "calibration" / images_digest(list(split.calibration))[:12]
    folder.mkdir(parents=True, exist_ok=True)
    for path in split.calibration:
        link, target = folder / path.name, path.resolve()
        if link.is_symlink() and os.readlink(link) == str(target):
            continue
        staged = folder / f".{path.name}.{os.getpid()}.link"
        staged.unlink(missing_ok=True)
        staged.symlink_to(target)
        os.replace(staged, link)  # atomic: a run beside this one never sees the link missing
    return folder
