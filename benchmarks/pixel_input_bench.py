"""Pixel input vs float input: one Detector each on the same model, timed interleaved.

    python benchmarks/pixel_input_bench.py --model ../shared/models/yolox_nano.onnx \
        --image ../shared/data/coco-val-mini/images/000000005001.jpg

Prints per-stage p50 (ms per image), end-to-end p50/mean, the pre+post overhead as a share
of inference, and the overhead counting the pixel path's extra inference time as overhead.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from yolox_deploy import Detector
from yolox_deploy.processing.images import read_image


def time_interleaved(detectors: dict[str, Detector], image, rounds: int, block: int,
                     settle_s: float) -> dict[str, list[tuple[float, float, float]]]:
    """Per detector, (pre, inference, post) ms of every timed call."""
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, det in detectors.items():
            end = time.perf_counter() + settle_s
            while time.perf_counter() < end:
                det(image)
            for _ in range(block):
                det(image)
                t = det.timings
                samples[name].append((t.preprocess_ms, t.inference_ms, t.postprocess_ms))
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help=".onnx or .xml")
    p.add_argument("--image", required=True)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--block", type=int, default=5)
    args = p.parse_args(argv)
    image = read_image(args.image)
    detectors = {"float input": Detector(args.model, pixel_input=False), "pixel input": Detector(args.model)}
    samples = time_interleaved(detectors, image, args.rounds, args.block, settle_s=0.06)
    p50 = {name: [statistics.median(stage) for stage in zip(*rows)] for name, rows in samples.items()}
    float_inference = p50["float input"][1]
    print("| input | pre p50 | inference p50 | post p50 | e2e p50 | e2e mean | overhead | overhead incl. extra inference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in samples.items():
        pre, inf, post = p50[name]
        e2e = [sum(r) for r in rows]
        moved = pre + post + max(0.0, inf - float_inference)
        print(f"| {name} | {pre:.3f} | {inf:.3f} | {post:.3f} | {statistics.median(e2e):.3f} | "
              f"{statistics.mean(e2e):.3f} | {100 * (pre + post) / inf:.1f}% | {100 * moved / float_inference:.1f}% |")


if __name__ == "__main__":
    main()
