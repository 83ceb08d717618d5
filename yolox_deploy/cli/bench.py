"""yolox-bench: latency (and accuracy) table of backends x precisions x batch sizes."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..measure.bench import BASELINE, PRECISIONS, BenchConfig, Row, run_bench
from ..measure.report import markdown_table, write_csv, write_json, write_plot
from ..errors import YoloxDeployError
from ..runtimes import backend_names, get_backend_class
from .common import add_slice_args, run, slice_settings


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _at_least(minimum: int, cast=int):
    """An argparse type: a number >= ``minimum`` (argparse turns the ValueError into a one-line usage error)."""
    def parse(text: str):
        value = cast(text)
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-bench", description="Time a YOLOX model on every backend, precision "
                                "and batch size (exports what it needs, cached), beside the official demo pipeline.")
    p.add_argument("--weights", default=None, help="official-format .pth (omit: seeded random weights)")
    p.add_argument("--model", nargs="+", default=None, metavar="FILE",
                   help="benchmark these model files as they are (no export; backend from the suffix)")
    p.add_argument("--model-name", default=None, help="architecture (default: inferred from --weights; "
                                                      "yolox-nano without weights)")
    p.add_argument("--backends", default=None,
                   help="comma-separated (default: every backend that runs a local model file, skipping those not "
                        "installed or not usable here; with --model: each file's own, from its suffix). A named "
                        "backend that cannot run is a failed row")
    p.add_argument("--precisions", default="fp32",
                   help=f"comma-separated of {', '.join(PRECISIONS)}: fp16/int8 export FP16/INT8 model files "
                        "(run with FP32 arithmetic); bf16 runs the FP32 model in bf16 (openvino, CPUs with "
                        "avx512_bf16/AMX; elsewhere the row says why not)")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes, e.g. 1,8")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    p.add_argument("--warmup", type=_at_least(0), default=10)
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--iters", type=_at_least(1), default=50, help="timed calls per row")
    timing.add_argument("--seconds", type=_at_least(1e-3, float), default=None, help="time each row for this long instead")
    p.add_argument("--block", type=_at_least(1), default=5,
                   help="timed calls per row in each interleaved round (after its settling calls)")
    p.add_argument("--settle-ms", type=_at_least(0, float), default=100.0,
                   help="untimed calls of a row before each block for at least this long, so the "
                        "previous row's spinning threads go quiet (default 100)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None, help="image folder: benchmark inputs, calibration, and mAP with --ann")
    p.add_argument("--ann", default=None, help="COCO instances JSON for --data: adds mAP columns")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--no-baseline", action="store_true", help="skip the official demo baseline row")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "yolox_deploy" / "bench"))
    add_slice_args(p)
    p.add_argument("--json", default=None, help="write results as JSON")
    p.add_argument("--csv", default=None, help="write the table as CSV")
    p.add_argument("--plot", default=None, help="write a PNG: stage latency bars and speed/accuracy scatter")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    precisions = _csv(args.precisions)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise YoloxDeployError(f"unknown precision {unknown[0]!r}; use {', '.join(PRECISIONS)}")
    try:
        batches = [int(b) for b in _csv(args.batch)]
    except ValueError:
        raise YoloxDeployError(f"--batch takes comma-separated integers, got {args.batch!r}") from None
    if args.ann and not args.data:
        raise YoloxDeployError("--ann needs --data (the images it annotates)")
    if args.model and args.weights:
        raise YoloxDeployError("give --weights (export what is needed) or --model files, not both")
    missing = [m for m in args.model or () if not Path(m).exists()]
    if missing:
        raise YoloxDeployError(f"model file not found: {missing[0]}")
    backends = checked_backends(args)
    cfg = BenchConfig(backends=backends, backends_requested=args.backends is not None,
                      models=[Path(m) for m in args.model or ()],
                      weights=Path(args.weights) if args.weights else None,
                      model_name=args.model_name, precisions=precisions, batches=batches,
                      input_size=tuple(args.input_size) if args.input_size else None, warmup=args.warmup,
                      iters=args.iters, seconds=args.seconds, block=args.block, settle_ms=args.settle_ms, threads=args.threads,
                      data=Path(args.data) if args.data else None, ann=Path(args.ann) if args.ann else None,
                      cache_dir=Path(args.cache_dir), conf=args.conf, iou=args.iou, baseline=not args.no_baseline,
                      slices=slice_settings(args))
    result = run_bench(cfg)
    print(markdown_table(result))
    for path, writer in ((args.json, write_json), (args.csv, write_csv), (args.plot, write_plot)):
        if path:
            writer(result, Path(path))
            print(f"wrote {path}")
    return outcome(result["rows"])


def checked_backends(args: argparse.Namespace) -> list[str]:
    """The backends to run: the named ones, each known (else a one-line error), or the defaults."""
    known = backend_names()
    if args.backends is None:
        return [] if args.model else [name for name in known if get_backend_class(name).loads_files]
    named = _csv(args.backends)
    if not named:
        raise YoloxDeployError("--backends names no backend")
    unknown = [name for name in named if name not in known]
    if unknown:
        raise YoloxDeployError(f"unknown backend {unknown[0]!r} in --backends; use one of {', '.join(known)}")
    return named


def outcome(rows: list[Row]) -> int:
    """0 when every row ran or was skipped as not offered here; 1 (one line on stderr) when a row
    failed; a YoloxDeployError (exit 2) when no row of the user's models ran at all."""
    measured = [row for row in rows if row.backend != BASELINE]
    if not any(row.ok for row in measured):
        reasons = [row.status for row in measured if not row.ok]
        raise YoloxDeployError(f"no row ran ({len(measured)} tried); first reason: "
                               f"{reasons[0] if reasons else 'nothing to run'}")
    failed = [row for row in rows if row.failed]
    if failed:
        print(f"yolox-bench: error: {len(failed)} of {len(rows)} rows failed; first: {failed[0].backend} "
              f"{failed[0].precision} batch {failed[0].batch}: {failed[0].status}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-bench")


if __name__ == "__main__":
    sys.exit(main())
