"""The x86 side of the aarch64 check (``.ci/arm64``), computed on the host and handed to the
emulated aarch64 tests as files (nothing of it is committed).

``python tests/platforms/arm64_reference.py OUT_DIR`` writes into OUT_DIR:

- ``nano_ncnn.param/.bin/.json``: YOLOX-Nano exported to ncnn here, from the shared official
  checkpoint, and ``nano_openvino.xml/.bin``, the official ONNX as an FP32 IR (the aarch64 side
  runs these x86-exported files, as a Jetson user would);
- ``reference.npz``: the letterboxed float32 inputs of the first ``IMAGES`` shared images, and
  the raw FP32 outputs of ONNX Runtime (the official ONNX) and ncnn on exactly those inputs;
- ``coco_subset.json``: the shared annotations cut to the first ``MAP_IMAGES`` images (by id):
  the COCO mAP check runs on them on both sides, so that the emulated stage stays bounded
  (about 5.5 s an image under emulation on a 2-vCPU EPYC, several times that on slower hosts);
- ``reference.json``: COCO mAP50-95 / mAP50 of both backends on that subset, with the
  official evaluator's settings, and the machine that computed them.

Every runtime is stated: FP32 arithmetic, ``THREADS`` threads, on both sides.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IMAGES = 8  # raw-output checks (each image: ONNX Runtime and ncnn, every anchor)
MAP_IMAGES = 16  # the COCO mAP check
THREADS = 2
INPUT_SIZE = (416, 416)
EVAL_SETTINGS = {"conf": 0.01, "iou": 0.65, "max_det": None, "clip_boxes": False}  # the official evaluator's


def asset_paths(assets: Path) -> dict[str, Path]:
    coco = assets / "data" / "coco-val-mini"
    return {"onnx": assets / "models" / "yolox_nano.onnx", "pth": assets / "models" / "yolox_nano.pth",
            "images": coco / "images", "ann": coco / "instances_val2017.json"}


def reference_images(images_dir: Path) -> list[Path]:
    return sorted(images_dir.glob("*.jpg"))[:IMAGES]


def letterboxed_inputs(images_dir: Path) -> np.ndarray:
    """float32 [IMAGES, 3, 416, 416]: the shared letterbox of the first shared images."""
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    return np.stack([letterbox(read_image(p), INPUT_SIZE)[0] for p in reference_images(images_dir)])


def open_backend(model: Path, precision: str = "fp32") -> Any:
    """ONNX Runtime (.onnx) or ncnn (.param), FP32 unless asked, ``THREADS`` threads, float input."""
    from yolox_deploy.runtimes import load_backend

    options: dict[str, Any] = {"threads": THREADS, "precision": precision}
    if model.suffix == ".onnx":
        options["pixel_input"] = False
    return load_backend(model, **options)


def raw_outputs(model: Path, inputs: np.ndarray, precision: str = "fp32") -> np.ndarray:
    backend = open_backend(model, precision)
    return np.concatenate([backend.infer(inputs[i:i + 1]) for i in range(len(inputs))])


def write_coco_subset(ann: Path, out: Path, count: int = MAP_IMAGES) -> Path:
    """``ann`` cut to its first ``count`` images (by id) and their annotations, written to ``out``."""
    data = json.loads(ann.read_text(encoding="utf-8"))
    kept = sorted(data["images"], key=lambda image: image["id"])[:count]
    ids = {image["id"] for image in kept}
    data = {**data, "images": kept, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def coco_map(model: Path, images_dir: Path, ann: Path) -> dict[str, float]:
    from yolox_deploy import Detector
    from yolox_deploy.evaluation import evaluate_coco

    result = evaluate_coco(Detector(open_backend(model), **EVAL_SETTINGS), images_dir, ann, progress=False)
    return {"mAP50_95": float(result["mAP50_95"]), "mAP50": float(result["mAP50"])}


def export_ncnn(pth: Path, out: Path) -> Path:
    from yolox_deploy.exporters import get_exporter

    param = out / "nano_ncnn.param"
    get_exporter("ncnn")(param, weights=pth, model_name="yolox-nano", input_size=INPUT_SIZE)
    return param


def export_openvino(onnx: Path, out: Path) -> Path:
    from yolox_deploy.exporters import get_exporter

    xml = out / "nano_openvino.xml"
    get_exporter("openvino")(xml, weights=onnx)
    return xml


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--assets", type=Path, default=None, help="default: $YOLOX_DEPLOY_ASSETS or ../shared")
    args = parser.parse_args(argv)
    import os

    assets = args.assets or Path(os.environ.get("YOLOX_DEPLOY_ASSETS", "../shared"))
    paths = asset_paths(assets)
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        parser.error(f"shared assets not found: {', '.join(missing)}; pass --assets or set YOLOX_DEPLOY_ASSETS")
    args.out.mkdir(parents=True, exist_ok=True)
    param = export_ncnn(paths["pth"], args.out)
    export_openvino(paths["onnx"], args.out)
    inputs = letterboxed_inputs(paths["images"])
    np.savez(args.out / "reference.npz", inputs=inputs, onnxruntime=raw_outputs(paths["onnx"], inputs),
             ncnn=raw_outputs(param, inputs))
    subset = write_coco_subset(paths["ann"], args.out / "coco_subset.json")
    summary = {"machine": platform.machine(), "python": platform.python_version(), "threads": THREADS,
               "images": [p.name for p in reference_images(paths["images"])], "map_images": MAP_IMAGES,
               "map": {"onnxruntime": coco_map(paths["onnx"], paths["images"], subset),
                       "ncnn": coco_map(param, paths["images"], subset)}}
    (args.out / "reference.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["map"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
