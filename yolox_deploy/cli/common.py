"""What the CLIs share: model options and one-line errors instead of tracebacks."""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from ..errors import InvalidInputError, YoloxDeployError
from ..precision import RUNTIME_PRECISIONS
from ..slicing import SliceSettings


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model file: .onnx, .pth (official checkpoint) ..., or a "
                        "deployment folder written by yolox-tune")
    parser.add_argument("--backend", default=None, help="onnxruntime, torch ... (default: from the file suffix)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's own, cuda for "
                        "tensorrt, cpu for the others)")
    parser.add_argument("--model-name", default=None,
                        help="architecture of a .pth (default: inferred from the weights)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="network input size for models with dynamic height/width")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (backend default if unset)")
    parser.add_argument("--impl", choices=("auto", "cpp", "numpy"), default=None,
                        help="postprocess implementation (default auto: the C++ kernel when built; end-to-end models "
                             "have theirs in the graph)")
    parser.add_argument("--precision", choices=RUNTIME_PRECISIONS, default=None,
                        help="arithmetic the backend computes in (default fp32 on every backend and CPU, or a "
                             "deployment folder's own); bf16: "
                             "openvino on CPUs with avx512_bf16/AMX; fp16: openvino, ncnn, torch on CUDA")


def add_slice_args(parser: argparse.ArgumentParser) -> None:
    """--slice and its merge options (sliced inference for small objects; docs/sliced.md)."""
    group = parser.add_argument_group("sliced inference (small objects on large images; docs/sliced.md)")
    group.add_argument("--slice", default=None, metavar="H[,W]",
                       help="detect on overlapping H x W windows (multiples of 32; W defaults to H) and merge")
    group.add_argument("--overlap", type=float, default=None, help="overlap of neighbouring windows, in [0, 1) "
                       "(default 0.2)")
    group.add_argument("--no-full-image", action="store_true", help="skip the whole-image pass added to the windows")
    group.add_argument("--merge", default=None, metavar="{greedy_nmm,nms}",
                       help="greedy_nmm (SAHI's GREEDYNMM, the default) or nms")
    group.add_argument("--match", default=None, metavar="{ios,iou}",
                       help="match boxes by ios (intersection over the smaller box, the default) or iou")
    group.add_argument("--match-threshold", type=float, default=None, help="default 0.5")
    group.add_argument("--recheck", default=None, metavar="{sahi,none}",
                       help="sahi (the default: an absorbed box that no longer matches the grown box is dropped, "
                            "as SAHI does) or none (every match is merged)")
    group.add_argument("--force-merge", action="store_true",
                       help="keep --merge/--match below conf 0.1 (by default they switch to NMS/IoU there, as SAHI "
                            "does)")


def slice_settings(args: argparse.Namespace) -> SliceSettings | None:
    """The SliceSettings of --slice and its options; None without --slice."""
    options = {"overlap": args.overlap, "merge": args.merge, "match": args.match,
               "match_threshold": args.match_threshold, "recheck": args.recheck,
               "force_merge": args.force_merge or None}
    given = {k: v for k, v in options.items() if v is not None}
    if args.slice is None:
        if given or args.no_full_image:
            named = [f"--{k.replace('_', '-')}" for k in given] + (["--no-full-image"] if args.no_full_image else [])
            verb = "applies" if len(named) == 1 else "apply"
            raise InvalidInputError(f"{', '.join(named)} {verb} only to sliced inference: add --slice H[,W]")
        return None
    try:
        size = tuple(int(v) for v in args.slice.split(","))
    except ValueError:
        raise InvalidInputError(f"--slice takes H or H,W in pixels (e.g. 416 or 416,640), got {args.slice!r}") from None
    if len(size) not in (1, 2):
        raise InvalidInputError(f"--slice takes H or H,W in pixels (e.g. 416 or 416,640), got {args.slice!r}")
    # --agnostic means across classes everywhere: in each slice's NMS and in the merge of the slices
    return SliceSettings(size=size if len(size) == 2 else size[0], full_image=not args.no_full_image,
                         class_agnostic=bool(getattr(args, "agnostic", False)), **given)


def backend_options(args: argparse.Namespace) -> dict:
    options = {"threads": args.threads}
    if args.precision is not None:  # unset: fp32, or a deployment folder's own
        options["precision"] = args.precision
    if args.model_name:
        options["model_name"] = args.model_name
    return options


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None, prog: str) -> int:
    """Run ``main``; expected failures print one line 'prog: error: ...' and return 2, and
    warnings print as one line 'prog: warning: ...'."""
    shown = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"{prog}: warning: {message}\n"
    try:
        return main(argv)
    except YoloxDeployError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown
