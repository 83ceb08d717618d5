"""yolox-eval: COCO box mAP of a model through one backend, with the official evaluator's settings."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..detector import Detector
from ..evaluation import evaluate_coco
from .common import add_model_args, backend_options, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-eval", description="COCO box mAP of a YOLOX model on one backend. "
                                "Defaults are the official YOLOX evaluator's: conf 0.01, class-aware NMS 0.65, "
                                "no box clipping, no cap on detections.")
    add_model_args(p)
    p.add_argument("--images", required=True, help="folder with the images")
    p.add_argument("--ann", required=True, help="COCO-format instances JSON")
    p.add_argument("--conf", type=float, default=0.01)
    p.add_argument("--iou", type=float, default=0.65)
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    detector = Detector(args.model, backend=args.backend, device=args.device, conf=args.conf, iou=args.iou,
                        class_agnostic=args.agnostic, input_size=args.input_size, max_det=None, clip_boxes=False,
                        postprocess_impl=args.impl, **backend_options(args))
    result = evaluate_coco(detector, args.images, args.ann, progress=not args.json)
    result.update(backend=detector.backend.name, precision=detector.backend.precision,
                  model_precision=detector.backend.metadata.precision, model=str(args.model),
                  input_size=list(detector.input_size), conf=args.conf, iou=args.iou)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}))
    else:
        print(result["summary"])
        stored, arithmetic = detector.backend.metadata.precision, detector.backend.precision
        label = arithmetic if stored == arithmetic else f"{stored} model, {arithmetic} arithmetic"
        print(f"{detector.backend.name} ({label}): mAP50-95 {result['mAP50_95']:.4f}  mAP50 {result['mAP50']:.4f}  "
              f"({result['num_images']} images, {result['num_detections']} detections)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-eval")


if __name__ == "__main__":
    sys.exit(main())
