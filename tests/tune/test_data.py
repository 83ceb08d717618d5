"""yolox-tune's calibration folder and INT8 cache keys: keyed by the images' contents, so moving --data
neither breaks a run nor calibrates on other images."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.measure.config import BenchConfig
from yolox_deploy.measure.models import ModelCache
from yolox_deploy.tune.data import Split, TuneImages, calibration_folder


def split_of(folder: Path) -> Split:
    files = sorted(folder.glob("*.jpg"))
    return Split(seed=0, calibration=files[:4], evaluation=TuneImages(folder, files[4:], [], []))


def tag_of(folder: Path, cache: Path) -> str:
    return ModelCache(BenchConfig(backends=(), data=folder, cache_dir=cache, progress=False)).calibration_tag


@pytest.fixture
def data(coco_images, tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for path in coco_images[:6]:
        shutil.copy(path, folder / path.name)
    return folder


def test_moved_data_keeps_its_calibration_and_links_follow_it(data, tmp_path, coco_images):
    cache = tmp_path / "cache"
    before = calibration_folder(split_of(data), cache)
    tag = tag_of(before, cache)
    moved = data.rename(tmp_path / "moved")
    after = calibration_folder(split_of(moved), cache)
    assert after == before  # the same images: the same folder, the same INT8 files
    assert all(Path(os.readlink(link)).parent == moved for link in after.iterdir())  # re-pointed, none dangling
    assert tag_of(after, cache) == tag  # was FileNotFoundError on the dangling links
    # the old path now holds other images under the same names: never calibrated on
    data.mkdir()
    for source, link in zip(coco_images[10:14], sorted(after.iterdir())):
        shutil.copy(source, data / link.name)
    other = calibration_folder(split_of(data), cache)
    assert other != before and tag_of(other, cache) != tag
    assert tag_of(calibration_folder(split_of(moved), cache), cache) == tag


def test_a_dangling_image_is_a_one_line_error(data, tmp_path):
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(InvalidInputError, match=r"^calibration image .*gone.jpg cannot be read \(No such file"):
        tag_of(folder, tmp_path / "cache")
