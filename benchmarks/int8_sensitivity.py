"""Which convs to keep in float when quantizing a YOLOX ONNX to INT8 (Q/DQ): COCO mAP of each choice.

Quantizes the model with every group of convs kept float in turn (none; the stride-2/4 convs,
i.e. the stem and the first CSP stage; the prediction convs; both, the exporter's default)
and, with ``--per-conv``, measures what keeping each remaining conv float as well adds to
the default. ONNX Runtime evaluates each model with the official evaluator's settings.

    python benchmarks/int8_sensitivity.py --model ../shared/models/yolox_nano.onnx \
        --images ../shared/data/coco-val-mini/images \
        --ann ../shared/data/coco-val-mini/instances_val2017.json --json benchmarks/results/int8_sensitivity.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from yolox_deploy import Detector
from yolox_deploy.artifacts.calibration import calibration_set
from yolox_deploy.evaluation import evaluate_coco
from yolox_deploy.exporters.quantize import (
    QuantizationSettings,
    conv_output_strides,
    prediction_convs,
    quantize_onnx_int8,
    with_qdq_opset,
)


def coco_map(model: Path, images: Path, ann: Path) -> float:
    det = Detector(model, conf=0.01, iou=0.65, max_det=None, clip_boxes=False)
    return evaluate_coco(det, images, ann, progress=False)["mAP50_95"]


def groups(model, input_hw: tuple[int, int]) -> dict[str, list[str]]:
    strides = conv_output_strides(model, input_hw)
    early = [name for name, stride in strides.items() if stride <= 4]
    predictions = prediction_convs(model)
    return {"none": [], "stride 2-4 convs": early, "prediction convs": predictions,
            "stride 2-4 + prediction convs (default)": early + predictions}


def main(argv: Sequence[str] | None = None) -> None:
    import onnx

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="FP32 ONNX")
    p.add_argument("--images", required=True)
    p.add_argument("--ann", required=True)
    p.add_argument("--calib-size", type=int, default=80)
    p.add_argument("--per-conv", action="store_true", help="also each remaining conv kept float on top of the default")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    images, ann = Path(args.images), Path(args.ann)
    model = with_qdq_opset(onnx.load(args.model), Path(args.model).name)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    input_hw = (dims[2], dims[3])
    calib = calibration_set(images, input_hw, limit=args.calib_size, progress=False)
    results = {"fp32": coco_map(Path(args.model), images, ann)}
    choices = groups(model, input_hw)
    default = choices["stride 2-4 + prediction convs (default)"]
    if args.per_conv:
        choices.update({f"default + {node.name}": default + [node.name] for node in model.graph.node
                        if node.op_type == "Conv" and node.name not in default})
    with tempfile.TemporaryDirectory() as tmp:
        for label, keep in tqdm(choices.items(), desc="quantizing"):
            path = Path(tmp) / "int8.onnx"
            quantize_onnx_int8(model, path, calib, input_hw, "model", QuantizationSettings(), keep_float=keep)
            results[label] = coco_map(path, images, ann)
    print("| convs kept float | mAP50-95 | vs FP32 |\n| --- | --- | --- |")
    for label, value in results.items():
        print(f"| {label} | {value:.4f} | {value - results['fp32']:+.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
