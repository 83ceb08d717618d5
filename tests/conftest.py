"""Shared fixtures: the shared assets (fail loudly in CI when missing) and small models."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("YOLOX_DEPLOY_ASSETS", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Raw output of the official YOLOX-Nano ONNX on the shared COCO images is cached per session.
NANO_INPUT = (416, 416)


def _require_assets() -> Path:
    if not (ASSETS / "models" / "yolox_nano.pth").is_file():
        message = (f"shared assets not found at {ASSETS}: set YOLOX_DEPLOY_ASSETS to the folder holding "
                   "models/yolox_nano.{pth,onnx} and data/coco-val-mini")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return ASSETS


@pytest.fixture(scope="session")
def assets() -> Path:
    return _require_assets()


@pytest.fixture(scope="session")
def nano_pth(assets: Path) -> Path:
    return assets / "models" / "yolox_nano.pth"


@pytest.fixture(scope="session")
def nano_onnx(assets: Path) -> Path:
    return assets / "models" / "yolox_nano.onnx"


@pytest.fixture(scope="session")
def coco_dir(assets: Path) -> Path:
    return assets / "data" / "coco-val-mini"


@pytest.fixture(scope="session")
def coco_images(coco_dir: Path) -> list[Path]:
    ann = json.loads((coco_dir / "instances_val2017.json").read_text())
    return [coco_dir / "images" / im["file_name"] for im in sorted(ann["images"], key=lambda i: i["id"])]


@pytest.fixture(scope="session")
def nano_raw_outputs(nano_onnx: Path, coco_images: list[Path]):
    """(raw [80, 3549, 85] from the official ONNX, ratios, image shapes) on the shared images."""
    import onnxruntime as ort

    from yolox_deploy.images import read_image
    from yolox_deploy.preprocess import letterbox

    session = ort.InferenceSession(str(nano_onnx), providers=["CPUExecutionProvider"])
    raws, ratios, shapes = [], [], []
    for path in coco_images:
        image = read_image(path)
        x, r = letterbox(image, NANO_INPUT)
        raws.append(session.run(None, {"images": x[None]})[0][0])
        ratios.append(r)
        shapes.append(image.shape[:2])
    return np.stack(raws), ratios, shapes


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small custom CSPDarknet model (width 0.125) with seeded weights, saved officially."""
    torch = pytest.importorskip("torch")
    from yolox_deploy.models import ModelSpec, seeded_model

    model = seeded_model(ModelSpec("yolox-custom", 0.33, 0.125, input_size=(64, 96)), num_classes=3, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The tiny model exported with a dynamic batch, input 64x96, three named classes."""
    from yolox_deploy.exporters.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(path, weights=tiny_checkpoint, input_size=(64, 96), dynamic=True,
                class_names=["cat", "dog", "bird"])
    return path
