"""yolox-eval: COCO box mAP of a model through one backend, with the official evaluator's settings."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from ..detector import Detector
from ..errors import InvalidInputError
from ..evaluation import evaluate_coco
from ..runtimes import load_backend
from .common import add_model_args, add_slice_args, backend_options, run, slice_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-eval", description="COCO box mAP of a YOLOX model on one backend. "
                                "Defaults are the official YOLOX evaluator's: conf 0.01, class-aware NMS 0.65, "
                                "no box clipping, no cap on detections. End-to-end models (yolox-export --nms) "
                                "are evaluated at their baked conf/iou/max_det: export them with --conf 0.01 "
                                "--iou 0.65 --max-det 1000 for comparable numbers.")
    add_model_args(p)
    p.add_argument("--images", required=True, help="folder with the images")
    p.add_argument("--ann", required=True, help="COCO-format instances JSON")
    p.add_argument("--conf", type=float, default=None, help="default 0.01 (end-to-end models: the baked one)")
    p.add_argument("--iou", type=float, default=None, help="default 0.65 (end-to-end models: the baked one)")
    p.add_argument("--max-det", type=int, default=None,
                   help="detections per image (default: all; end-to-end models: the baked max_det)")
    p.add_argument("--agnostic", action="store_true", default=None,
                   help="class-agnostic NMS (with --slice: the merge of the slices too)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="with --slice: slice inputs per backend call (default 8 for a dynamic-batch model, else its "
                        "static batch)")
    add_slice_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    backend = load_backend(args.model, args.backend, args.device, **backend_options(args))
    if backend.end_to_end:  # thresholds live in the graph: the defaults are the baked ones
        settings = dict(conf=args.conf, iou=args.iou, max_det="model" if args.max_det is None else args.max_det)
    else:
        settings = dict(conf=0.01 if args.conf is None else args.conf, iou=0.65 if args.iou is None else args.iou,
                        max_det=args.max_det)
    slices = slice_settings(args)
    detector = Detector(backend, class_agnostic=args.agnostic, input_size=args.input_size, clip_boxes=False,
                        postprocess_impl=args.impl, slices=slices, batch_size=args.batch_size, **settings)
    result = evaluate_coco(detector, args.images, args.ann, progress=not args.json)
    result.update(backend=detector.backend.name, precision=detector.backend.precision,
                  model_precision=detector.backend.metadata.precision, model=str(args.model),
                  input_size=list(detector.input_size), conf=detector.conf, iou=detector.iou, max_det=detector.max_det,
                  end_to_end=backend.end_to_end, slices=None if slices is None else dataclasses.asdict(slices))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}))
    else:
        print(result["summary"])
        stored, arithmetic = detector.backend.metadata.precision, detector.backend.precision
        label = arithmetic if stored == arithmetic else f"{stored} model, {arithmetic} arithmetic"
        print(f"{detector.backend.name} ({label}): mAP50-95 {result['mAP50_95']:.4f}  mAP50 {result['mAP50']:.4f}  "
              f"APsmall {result['mAP_small']:.4f}  ({result['num_images']} images, {result['num_detections']} detections"
              f"{describe_slices(detector)})")
        if backend.end_to_end and detector.conf > 0.01:
            print(f"note: end-to-end model with conf {detector.conf} baked in; mAP is measured at conf 0.01 by "
                  "convention and is lower here. Export with --nms --conf 0.01 --max-det 1000 to compare.")
    return 0


def describe_slices(detector: Detector) -> str:
    slices = detector.slices
    if slices is None:
        return ""
    merge, match = detector.pipeline.merge_kind()
    return (f"; sliced {slices.height}x{slices.width}, overlap {slices.overlap}, "
            f"{'with' if slices.full_image else 'without'} the whole image, {merge}/{match} {slices.match_threshold}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-eval")


if __name__ == "__main__":
    sys.exit(main())
