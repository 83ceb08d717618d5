"""COCO box mAP of a Detector, with the official YOLOX evaluator's conventions.

Class index i maps to the i-th of the dataset's sorted category ids; boxes are reported
in original-image pixels as COCO xywh; pycocotools computes the metrics. For a number
comparable with the official evaluator, build the Detector with conf=0.01, iou=0.65,
max_det=None and clip_boxes=False (what ``yolox-eval`` does).
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ._optional import require
from .detector import Detector
from .errors import InvalidInputError

STAT_NAMES = ("mAP50_95", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


def evaluate_coco(detector: Detector, images_dir: str | Path, ann_file: str | Path,
                  progress: bool = True) -> dict[str, Any]:
    """Run ``detector`` on every image of a COCO-format annotation file; return the 12
    COCO box statistics (``mAP50_95``, ``mAP50`` ...), counts and the printed summary."""
    require("pycocotools", extra="eval", purpose="COCO evaluation")
    images_dir, ann_file = Path(images_dir), Path(ann_file)
    coco = coco_from_dict(read_annotations(ann_file))
    if not images_dir.is_dir():
        raise InvalidInputError(f"image folder not found: {images_dir}")
    category_ids = sorted(coco.getCatIds())
    image_ids = sorted(coco.getImgIds())
    missing = [coco.imgs[i]["file_name"] for i in image_ids if not (images_dir / coco.imgs[i]["file_name"]).is_file()]
    if missing:
        raise InvalidInputError(f"{len(missing)} annotated images are not in {images_dir} (e.g. {missing[0]})")

    results: list[dict[str, Any]] = []
    for image_id in tqdm(image_ids, desc="evaluating", unit="img", disable=not progress):
        detections = detector(images_dir / coco.imgs[image_id]["file_name"])
        if len(detections) and int(detections.class_ids.max()) >= len(category_ids):
            raise InvalidInputError(f"the model predicts class {int(detections.class_ids.max())} but "
                                    f"{ann_file.name} has only {len(category_ids)} categories")
        results.extend(detections.to_coco(image_id, category_ids))

    return {**coco_box_stats(coco, results), "num_images": len(image_ids), "num_detections": len(results)}


def coco_box_stats(coco: Any, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The 12 COCO box statistics of ``results`` (COCO result dicts) against the ground truth
    ``coco`` (a pycocotools ``COCO``), and the printed ``summary``; zeros without detections."""
    from pycocotools.cocoeval import COCOeval

    stats = [0.0] * len(STAT_NAMES)
    summary = "no detections"
    if results:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_eval = COCOeval(coco, coco.loadRes(results), "bbox")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats = [float(v) for v in coco_eval.stats]
        summary = buffer.getvalue().strip()
    return {**dict(zip(STAT_NAMES, stats)), "summary": summary}


def read_annotations(path: Path) -> dict[str, Any]:
    """A COCO instances JSON, checked to have images, annotations and categories."""
    if not path.is_file():
        raise InvalidInputError(f"annotation file not found: {path}")
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; absurd nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise InvalidInputError(f"{path.name} is not valid JSON ({reason}): give a COCO instances file") from None
    if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), list)
                                                for k in ("images", "annotations", "categories")):
        raise InvalidInputError(f"{path.name} is not a COCO instances file (it needs 'images', 'annotations' and "
                                "'categories' lists)")
    if not dataset["images"] or not dataset["categories"]:
        raise InvalidInputError(f"{path.name} lists no images or no categories")
    return dataset


def coco_from_dict(dataset: dict[str, Any]) -> Any:
    """A pycocotools ``COCO`` over an in-memory dataset dict (images, annotations, categories)."""
    require("pycocotools", extra="eval", purpose="COCO evaluation")
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
