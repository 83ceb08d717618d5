"""Ray Data throughput with 1 and 2 workers on this machine (issue 9).

Each setting runs the shared images ``--repeat`` times over (so actor start-up is amortised)
on a fresh local cluster; images/s is wall-clock from submitting the dataset to the last row.

    python benchmarks/ray_bench.py --model ../shared/models/yolox_nano.onnx \
        --images ../shared/data/coco-val-mini/images --repeat 8
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from yolox_deploy.integrations.ray import detect_dataset, init_ray
from yolox_deploy.processing.images import IMAGE_SUFFIXES


def run(model: str, files: list[str], workers: int) -> dict[str, float]:
    import ray

    init_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    start = time.perf_counter()
    rows = detect_dataset(files, model, num_workers=workers, threads=1).count()
    seconds = time.perf_counter() - start
    ray.shutdown()
    return {"workers": workers, "images": rows, "seconds": seconds, "images_per_s": rows / seconds}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--repeat", type=int, default=8)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    files = sorted(str(f.resolve()) for f in Path(args.images).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    results = [run(args.model, files * args.repeat, workers) for workers in (1, 2)]
    print("| workers | images | seconds (incl. actor start) | images/s | vs 1 worker |\n| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['workers']} | {r['images']} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['images_per_s'] / results[0]['images_per_s']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
