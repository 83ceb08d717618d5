"""Images/s over a folder: ONNX Runtime vs OpenVINO LATENCY (synchronous) vs OpenVINO
THROUGHPUT (AsyncInferQueue), each through Detector on the same images, in one run.

    python benchmarks/throughput_bench.py --onnx M.onnx --xml M.xml [--images DIR] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from yolox_deploy import Detector
from yolox_deploy.processing.images import read_image

ASSETS = Path(os.environ.get("YOLOX_DEPLOY_ASSETS", Path(__file__).resolve().parents[2] / "shared"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True, help="dynamic-batch ONNX")
    p.add_argument("--xml", required=True, help="OpenVINO IR with a dynamic batch")
    p.add_argument("--images", default=str(ASSETS / "data" / "coco-val-mini" / "images"))
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    images = [read_image(f) for f in sorted(Path(args.images).glob("*.jpg"))]
    setups = {
        "onnxruntime, batch 1": Detector(args.onnx),
        "openvino LATENCY, batch 1": Detector(args.xml),
        "openvino THROUGHPUT, batch 1 (async queue)": Detector(args.xml, hint="THROUGHPUT"),
        "openvino THROUGHPUT, batch 4 (async queue)": Detector(args.xml, hint="THROUGHPUT", batch_size=4),
    }
    rates = {name: [] for name in setups}
    for det in setups.values():
        det(images[:8])  # warm up
    for _ in range(args.rounds):
        for name, det in setups.items():  # interleaved so noise hits all alike
            t0 = time.perf_counter()
            det(images)
            rates[name].append(len(images) / (time.perf_counter() - t0))
    base = np.median(rates["onnxruntime, batch 1"])
    print(f"| setup | images/s (median of {args.rounds}) | vs onnxruntime |\n| --- | --- | --- |")
    for name, r in rates.items():
        print(f"| {name} | {np.median(r):.1f} | {np.median(r) / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
