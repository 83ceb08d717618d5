"""yolox-tune: pick the fastest backend x precision x threads within an accuracy bound, on
this machine and your images, and write a deployment folder."""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ..measure.config import PRECISIONS
from ..tune import NothingWithinBound, TuneConfig, tune
from ..tune.config import DEFAULT_CACHE
from .common import run


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _batch(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"is 'auto' or an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"is 'auto' or an integer >= 1, got {text!r}")
    return value


def _threads(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated thread counts, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-tune", description="Measure every installed backend x precision x "
                                "thread setting on this machine and your images, choose the fastest within "
                                "--max-ap-drop of FP32, and write it with deploy.json into -o DEPLOY_DIR.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--weights", help="official-format .pth checkpoint")
    source.add_argument("--model", help="a raw FP32 .onnx (formats made from the checkpoint are then skipped) or a .pth")
    p.add_argument("--model-name", default=None, help="architecture of a .pth (default: inferred from the weights)")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    p.add_argument("--data", required=True, help="folder of your images (accuracy, INT8 calibration, timing)")
    p.add_argument("--ann", default=None, help="COCO instances JSON for --data; without it, ΔmAP is a label-free "
                                               "estimate from the FP32 model's detections (docs/tune.md)")
    p.add_argument("--max-ap-drop", type=float, default=0.01, help="largest mAP50-95 loss against FP32 (default 0.01)")
    p.add_argument("--budget-s", type=float, default=600.0, help="wall-time budget in seconds (default 600)")
    p.add_argument("--batch", type=_batch, default=1, help="1 (default: latency), N, or auto (the batch with "
                                                           "the most images/s)")
    p.add_argument("-o", "--output", default=None, help="the deployment folder to write")
    p.add_argument("--verify", metavar="DEPLOY_DIR", default=None,
                   help="re-measure a deployment on this machine against FP32 and its recorded next-best "
                        "candidates; exit 0 if the choice holds, 1 if not (no --weights/-o)")
    p.add_argument("--update", action="store_true", help="with --verify: rewrite the folder with the fastest "
                                                          "configuration that holds here")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the shuffle splitting --data into calibration and evaluation images (default 0)")
    p.add_argument("--force", action="store_true", help="replace an -o folder that holds something else")
    p.add_argument("--backends", type=_csv, default=None, help="comma-separated (default: every installed one)")
    p.add_argument("--precisions", type=_csv, default=list(PRECISIONS),
                   help=f"comma-separated of {', '.join(PRECISIONS)} (default: all)")
    p.add_argument("--threads", type=_threads, default=None,
                   help="comma-separated thread counts (default: all logical cores, and half of them)")
    p.add_argument("--conf", type=float, default=0.25, help="deployed score threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="deployed NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="deployed detections per image (default 300)")
    p.add_argument("--max-images", type=int, default=500, help="images of --data used (default 500)")
    p.add_argument("--timing-s", type=float, default=None, help="timed seconds per candidate (default: budget/200, "
                                                                "0.3 to 3)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="exports cache (shared with yolox-bench)")
    return p


def _verify(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..tune.verify import verify

    if args.weights or args.model or args.output:
        raise InvalidInputError("--verify re-measures a deployment folder: give --verify DEPLOY_DIR --data DIR "
                                "[--ann ANN] [--update], without --weights/--model/-o")
    result = verify(args.verify, args.data, args.ann, update=args.update,
                    timing_s=args.timing_s if args.timing_s is not None else 1.0, max_images=args.max_images)
    print(result.table)
    print(f"\n{'holds' if result.holds else 'does not hold'}: {result.reason}"
          + (f"; {args.verify} updated" if result.updated else "" if result.holds else
             "; nothing changed (pass --update to re-deploy)"))
    return 0 if result.holds else 1


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.verify:
        return _verify(args)
    if args.update:
        from ..errors import InvalidInputError

        raise InvalidInputError("--update goes with --verify DEPLOY_DIR")
    if not args.output:
        from ..errors import InvalidInputError

        raise InvalidInputError("give -o DEPLOY_DIR, the folder to write the deployment into")
    cfg = TuneConfig(data=Path(args.data), output=Path(args.output),
                     weights=Path(args.weights) if args.weights else None,
                     model=Path(args.model) if args.model else None, model_name=args.model_name,
                     input_size=tuple(args.input_size) if args.input_size else None,
                     ann=Path(args.ann) if args.ann else None, max_ap_drop=args.max_ap_drop, budget_s=args.budget_s,
                     batch=args.batch, force=args.force, backends=args.backends, precisions=args.precisions,
                     threads=args.threads, conf=args.conf, iou=args.iou, max_det=args.max_det,
                     max_images=args.max_images, timing_s=args.timing_s, cache_dir=Path(args.cache_dir),
                     split_seed=args.split_seed,
                     command=shlex.join(["yolox-tune", *(sys.argv[1:] if argv is None else argv)]))
    try:
        result = tune(cfg)
    except NothingWithinBound as exc:
        print(exc.result.table)
        print(f"yolox-tune: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"yolox-tune: interrupted: nothing written, {cfg.output} left as it was", file=sys.stderr)
        return 130
    print(result.table)
    chosen = result.chosen
    print(f"\nchosen: {chosen.label} at batch {chosen.batch}: p50 {chosen.p50_ms:.2f} ms, "
          f"{chosen.speedup:.2f}x FP32, ΔmAP50-95 {chosen.delta_mAP50_95:+.4f} ({result.accuracy_mode}); "
          f"{len(result.rows)} measured, {len(result.skipped)} skipped, {result.elapsed_s:.0f} s")
    for note in result.notes:
        print(f"note: {note}")
    uncertain = [r for r in result.rows if r.uncertain]
    if uncertain:
        print(f"note: {len(uncertain)} candidate(s) have a ΔmAP interval that crosses the bound and were not chosen "
              "(uncertain): more evaluation images narrow it")
    busy = [r for r in result.rows if r.busy]
    if busy:
        print(f"note: {len(busy)} candidate(s) were timed while other processes took over a quarter of the CPU: "
              "their speeds do not rank; run again on a quiet machine (the table says which)")
    print(f"wrote {cfg.output}/ (deploy.json, model, table.md, pareto.png); use it: "
          f"Detector({str(cfg.output)!r}) or yolox-detect --model {cfg.output} IMAGE")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-tune")


if __name__ == "__main__":
    sys.exit(main())
