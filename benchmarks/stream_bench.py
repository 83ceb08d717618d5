"""Streaming vs the plain sequential loop over a folder of images (issue 8).

Every setup processes the same folder from files (decode included) through ``Detector``;
setups run interleaved, round by round, and the table shows the median images/s of the
rounds and the ratio to the sequential loop measured in the same run.

    python benchmarks/stream_bench.py --model ../shared/models/yolox_nano.onnx \
        --images ../shared/data/coco-val-mini/images --json benchmarks/results/stream.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from yolox_deploy import Detector
from yolox_deploy.processing.images import IMAGE_SUFFIXES


def sequential(det: Detector, files: Sequence[Path]) -> int:
    return sum(1 for path in files if det(path) is not None)


def streamed(det: Detector, folder: Path, **options: Any) -> int:
    return sum(1 for result in det.stream(folder, **options) if result.detections is not None)


def setups(model: str, folder: Path, files: Sequence[Path]) -> dict[str, Callable[[], int]]:
    plain = Detector(model)
    one_thread = Detector(model, threads=1)
    if model.endswith(".xml"):
        tput = Detector(model, hint="THROUGHPUT")
        return {
            "sequential loop: for f in files: det(f)": lambda: sequential(plain, files),
            "det.stream(folder), batch 1": lambda: streamed(plain, folder),
            "THROUGHPUT hint, det.stream(folder), infer_workers=2": lambda: streamed(tput, folder, infer_workers=2),
            "THROUGHPUT hint, det.stream(folder), batch 2, infer_workers=2": lambda: streamed(
                tput, folder, infer_workers=2, batch_size=2),
        }
    return {
        "sequential loop: for f in files: det(f)": lambda: sequential(plain, files),
        "det.stream(folder), batch 1": lambda: streamed(plain, folder),
        "det.stream(folder), batch 4": lambda: streamed(plain, folder, batch_size=4),
        "det.stream(folder), batch 1, backend threads=1": lambda: streamed(one_thread, folder),
        "det.stream(folder), batch 1, threads=1, infer_workers=2": lambda: streamed(one_thread, folder,
                                                                                     infer_workers=2),
        "det.stream(folder), batch 1, threads=1, infer_workers=2, workers=1": lambda: streamed(
            one_thread, folder, infer_workers=2, workers=1),
        "det.stream(folder), batch 1, threads=1, infer_workers=3": lambda: streamed(one_thread, folder,
                                                                                     infer_workers=3),
    }


def measure(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up: first decode, allocator, thread pools
        run()
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - start))
    return rates


def cpu_work_per_image(model: str, files: Sequence[Path], passes: int = 3) -> dict[str, float]:
    """Single-threaded ms per image of each stage (median of ``passes``), and the sequential
    loop's: the floor any pipeline on N cores can reach is their sum / N."""
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox, letterbox_pixels
    from yolox_deploy.runtimes import load_backend

    def per_image(fn, items):
        start = time.perf_counter()
        out = [fn(item) for item in items]
        return (time.perf_counter() - start) * 1000 / len(items), out

    samples: dict[str, list[float]] = {}
    one_thread = load_backend(model, threads=1)
    det = Detector(model)
    for _ in range(passes):
        decode, images = per_image(read_image, files)
        prepare = letterbox_pixels if one_thread.native_pixels else letterbox  # what the Detector feeds it
        prep, tensors = per_image(lambda im: prepare(im, det.input_size)[0][None], images)
        infer, raws = per_image(one_thread.infer, tensors)
        post, _ = per_image(lambda raw: det.postprocess_raw(raw, [1.0], [det.input_size]), raws)
        loop, _ = per_image(det, files)
        for key, value in (("decode", decode), ("letterbox", prep), ("inference_1_thread", infer),
                           ("postprocess", post), ("sequential_loop", loop)):
            samples.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    folder = Path(args.images)
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    rates = measure(setups(args.model, folder, files), args.rounds)
    baseline = statistics.median(next(iter(rates.values())))
    print(f"# {len(files)} images from {folder}, model {Path(args.model).name}, {platform.machine()}, "
          f"median of {args.rounds} interleaved rounds")
    print("| setup | images/s (median) | min | max | vs sequential |\n| --- | --- | --- | --- | --- |")
    rows = []
    for name, values in rates.items():
        median = statistics.median(values)
        rows.append({"setup": name, "images_per_s": values, "median": median, "ratio": median / baseline})
        print(f"| {name} | {median:.1f} | {min(values):.1f} | {max(values):.1f} | {median / baseline:.2f}x |")
    work = cpu_work_per_image(args.model, files)
    cpu = sum(v for k, v in work.items() if k != "sequential_loop")
    cores = os.cpu_count() or 1
    ceiling = work["sequential_loop"] / (cpu / cores)
    print(f"CPU work per image, single thread (ms): {', '.join(f'{k} {v:.2f}' for k, v in work.items())}; "
          f"on {cores} cores no pipeline beats {cpu / cores:.1f} ms/img: ceiling {ceiling:.2f}x the sequential loop")
    if args.json:
        Path(args.json).write_text(json.dumps({"images": len(files), "model": str(args.model), "rows": rows,
                                               "cpu_work_ms": work, "ceiling_vs_sequential": ceiling}, indent=1))


if __name__ == "__main__":
    main()
