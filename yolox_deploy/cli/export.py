"""yolox-export: PyTorch checkpoint -> deployable model file."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import YoloxDeployError
from ..exporters import export_targets, get_exporter
from ..runtimes import backend_names, get_backend_class
from .common import run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-export", description="Export a YOLOX checkpoint.")
    p.add_argument("--to", required=True, help=f"target format: {', '.join(export_targets())}")
    p.add_argument("--weights", default=None, help="official-format .pth ({'model': state_dict}), or an FP32 .onnx "
                                                   "(--to openvino/trt/triton, --to onnx --half/--int8); omit for "
                                                   "seeded random weights")
    p.add_argument("--model-name", default=None, help="yolox-nano, yolox-tiny, yolox-s/m/l/x, yolox-darknet53 "
                                                      "(default: inferred from --weights)")
    p.add_argument("-o", "--output", default=None, help="output file (default: MODEL_NAME + the format's suffix)")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    p.add_argument("--batch", type=int, nargs="+", default=[1], metavar="N",
                   help="batch size of the static input; --to trt: N, or MIN OPT MAX of the optimisation profile")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch dimension")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic height and width")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--depth", type=float, default=None, help="custom model depth multiplier")
    p.add_argument("--width", type=float, default=None, help="custom model width multiplier")
    p.add_argument("--depthwise", action="store_true", help="custom model with depthwise convs")
    p.add_argument("--num-classes", type=int, default=None, help="classes of a random-weight model (default 80)")
    p.add_argument("--class-names", default=None, help="text file with one class name per line")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights, the parity check input and the calibration sample")
    p.add_argument("--half", action="store_true", help="FP16 (onnx: FP16 ONNX; openvino, ncnn: FP16 weights)")
    p.add_argument("--int8", action="store_true", help="INT8 post-training quantization (needs --calib); onnx: a "
                                                       "Q/DQ ONNX, openvino: NNCF")
    p.add_argument("--calib", default=None, help="folder of calibration images for --int8")
    p.add_argument("--calib-size", type=int, default=300, help="calibration images used (default 300)")
    p.add_argument("--int8-keep-float", choices=("sensitive", "none"), default="sensitive",
                   help="--to onnx --int8: keep the measured-sensitive convs in float (default), or quantize "
                        "every conv (faster, less accurate)")
    p.add_argument("--int8-symmetric", action="store_true",
                   help="--to onnx --int8: signed INT8 activations with zero point 0, the Q/DQ TensorRT builds "
                        "(--to trt --int8 always makes this one)")
    post = p.add_argument_group("postprocess settings (--nms: baked into the graph; without it: stored as the "
                                "model's defaults)")
    post.add_argument("--nms", nargs="?", const="onnx", choices=("onnx", "trt"), default=None,
                      help="end-to-end model: decode + NMS in the graph (onnx: NonMaxSuppression, runs in ONNX "
                           "Runtime, OpenVINO, TensorRT; trt: the EfficientNMS_TRT plugin, TensorRT only)")
    post.add_argument("--conf", type=float, default=None, help="score threshold (default 0.25)")
    post.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default 0.45)")
    post.add_argument("--max-det", type=int, default=None, help="detections kept per image (--nms default 100)")
    post.add_argument("--agnostic", action="store_true", help="--nms: class-agnostic NMS")
    trt = p.add_argument_group("--to trt (TensorRT engine; needs an NVIDIA GPU)")
    trt.add_argument("--workspace", type=float, default=None, help="builder workspace in GiB (default 4)")
    trt.add_argument("--timing-cache", default=None, help="timing cache file, read and updated (faster rebuilds)")
    triton = p.add_argument_group("--to triton (a model repository)")
    triton.add_argument("--repo", default=None, help="repository folder to write (same as -o)")
    triton.add_argument("--max-batch", type=int, default=None, help="max_batch_size, with dynamic batching (default 8; "
                                                                     "0: no batching)")
    triton.add_argument("--instances", type=int, default=None, help="model instances (default 1)")
    triton.add_argument("--instance-kind", choices=("cpu", "gpu", "auto"), default=None,
                        help="where the ONNX model runs (default cpu)")
    return p


def default_suffix(target: str) -> str:
    """The model-file suffix of the backend that loads ``--to target`` files."""
    for name in backend_names():
        cls = get_backend_class(name)
        if cls.export_target == target and cls.suffixes:
            return cls.suffixes[0]
    return f".{target}"


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    exporter = get_exporter(args.to)
    class_names = None
    if args.class_names:
        with open(args.class_names, encoding="utf-8") as f:
            class_names = [line.strip() for line in f if line.strip()]
    name = args.model_name or "yolox"
    suffix = "_triton_repo" if args.to == "triton" else default_suffix(args.to)
    precision = {k: v for k, v in (("half", args.half), ("int8", args.int8)) if v}
    precision.update({k: v for k, v in (("max_batch", args.max_batch), ("instances", args.instances),
                                        ("instance_kind", args.instance_kind), ("workspace_gib", args.workspace),
                                        ("timing_cache", args.timing_cache)) if v is not None})
    if len(args.batch) not in (1, 3) or (len(args.batch) == 3 and args.to not in ("trt", "engine", "tensorrt")):
        raise YoloxDeployError("--batch takes one size (or MIN OPT MAX with --to trt)")
    batch = args.batch[0] if len(args.batch) == 1 else tuple(args.batch)
    for flag, value in (("--conf", args.conf), ("--iou", args.iou)):
        if value is not None and not 0 <= value <= 1:
            raise YoloxDeployError(f"{flag} must be in [0, 1], got {value}")
    if args.max_det is not None and args.max_det < 1:
        raise YoloxDeployError(f"--max-det must be >= 1, got {args.max_det}")
    if args.nms and args.to == "ncnn":
        raise YoloxDeployError("--nms: ncnn has no NonMaxSuppression layer, so an end-to-end model cannot be "
                               "converted; export the raw model (the shared postprocess runs after ncnn)")
    precision.update({k: v for k, v in (("nms", args.nms), ("conf", args.conf), ("iou", args.iou),
                                        ("max_det", args.max_det)) if v is not None})
    if args.agnostic:
        precision["agnostic"] = True
    if args.int8:
        precision.update(calib=args.calib, calib_size=args.calib_size, int8_keep_float=args.int8_keep_float)
        if args.int8_symmetric:
            precision["int8_symmetric"] = True
    report = exporter(output=args.repo or args.output or f"{name}{suffix}", weights=args.weights, model_name=args.model_name,
                      input_size=args.input_size, batch=batch, dynamic=args.dynamic, dynamic_hw=args.dynamic_hw,
                      opset=args.opset, simplify=not args.no_simplify, class_names=class_names, depth=args.depth,
                      width=args.width, depthwise=args.depthwise, num_classes=args.num_classes, seed=args.seed,
                      **precision)
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-export")


if __name__ == "__main__":
    sys.exit(main())
