"""The x86 side of the aarch64 check (``.ci/arm64``), computed on the host and handed to the
emulated aarch64 tests as files (nothing of it is committed).

``python tests/platforms/arm64_reference.py OUT_DIR`` writes into OUT_DIR:

- ``nano_ncnn.param/.bin/.json``: YOLOX-Nano exported to ncnn here, from the shared official
  checkpoint, and ``nano_openvino.xml/.bin``, the official ONNX as an FP32 IR (the aarch64 side
  runs these x86-exported files, as a Jetson user would);
- ``reference.npz``: the letterboxed float32 inputs of the first ``IMAGES`` shared images (by
  name), their letterbox ratios and image sizes, and the raw FP32 outputs of ONNX Runtime (the
  official ONNX) and ncnn on exactly those inputs;
- ``coco_subset.json``: the shared annotations cut to those images;
- ``reference.json``: COCO mAP50-95 / mAP50 of both backends' raw outputs on those inputs,
  decoded by the shared postprocess with the official evaluator's settings, and the machine
  that computed them.

The subset keeps the emulated stage bounded: inference under qemu-user takes about 2-6 s an
image on a 2-vCPU EPYC, and several times that on slower hosts (docs/platforms.md).

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

IMAGES = 16  # raw outputs (every anchor) and COCO mAP, each runtime, on the same inputs
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
    return letterboxed(images_dir)[0]


def letterboxed(images_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs float32 [IMAGES, 3, 416, 416], ratios [IMAGES], image sizes int [IMAGES, 2] (h, w))."""
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    inputs, ratios, sizes = [], [], []
    for path in reference_images(images_dir):
        image = read_image(path)
        tensor, ratio = letterbox(image, INPUT_SIZE)
        inputs.append(tensor)
        ratios.append(ratio)
        sizes.append(image.shape[:2])
    return np.stack(inputs), np.asarray(ratios, np.float64), np.asarray(sizes, np.int64)


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


def write_coco_subset(ann: Path, out: Path, file_names: Sequence[str]) -> Path:
    """``ann`` cut to the images named ``file_names`` and their annotations, written to ``out``."""
    data = json.loads(ann.read_text(encoding="utf-8"))
    kept = [image for image in data["images"] if image["file_name"] in set(file_names)]
    ids = {image["id"] for image in kept}
    data = {**data, "images": kept, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def coco_map_of_raw(raw: np.ndarray, ratios: np.ndarray, sizes: np.ndarray, file_names: Sequence[str],
                    ann: Path) -> dict[str, float]:
    """COCO mAP of raw outputs [IMAGES, N, 85], decoded by the shared postprocess at the official
    evaluator's settings (``EVAL_SETTINGS``), against ``ann`` (the subset's annotations)."""
    from yolox_deploy.coco import default_class_names
    from yolox_deploy.detections import Detections
    from yolox_deploy.evaluation import coco_box_stats, coco_from_dict
    from yolox_deploy.processing.postprocess import postprocess

    dataset = json.loads(ann.read_text(encoding="utf-8"))
    coco = coco_from_dict(dataset)
    ids = {image["file_name"]: image["id"] for image in dataset["images"]}
    categories = sorted(coco.getCatIds())
    found = postprocess(raw, INPUT_SIZE, list(ratios), None, conf=EVAL_SETTINGS["conf"], iou=EVAL_SETTINGS["iou"],
                        max_det=EVAL_SETTINGS["max_det"])
    results, names = [], default_class_names(raw.shape[-1] - 5)
    for name, size, (boxes, scores, classes) in zip(file_names, sizes, found):
        detections = Detections.from_arrays(boxes, scores, classes, names, tuple(size))
        results.extend(detections.to_coco(ids[name], categories))
    stats = coco_box_stats(coco, results)
    return {"mAP50_95": float(stats["mAP50_95"]), "mAP50": float(stats["mAP50"])}


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
    inputs, ratios, sizes = letterboxed(paths["images"])
    raw = {"onnxruntime": raw_outputs(paths["onnx"], inputs), "ncnn": raw_outputs(param, inputs)}
    np.savez(args.out / "reference.npz", inputs=inputs, ratios=ratios, sizes=sizes, **raw)
    names = [p.name for p in reference_images(paths["images"])]
    subset = write_coco_subset(paths["ann"], args.out / "coco_subset.json", names)
    summary = {"machine": platform.machine(), "python": platform.python_version(), "threads": THREADS,
               "images": names, "map": {runtime: coco_map_of_raw(out, ratios, sizes, names, subset)
                                        for runtime, out in raw.items()}}
    (args.out / "reference.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["map"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
