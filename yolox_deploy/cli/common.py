"""What the CLIs share: model options and one-line errors instead of tracebacks."""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from ..errors import YoloxDeployError
from ..precision import RUNTIME_PRECISIONS


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
