"""Soak test: many inferences through one Detector, resident memory sampled as it goes.

Memory must level off: the acceptance point of issue 8 is RSS growth under 5% between
inference 5,000 and 20,000. Writes the samples as JSON and the curve as a PNG.

    python benchmarks/soak.py --model ../shared/models/yolox_nano.onnx \
        --images ../shared/data/coco-val-mini/images --json benchmarks/results/soak.json \
        --plot benchmarks/results/soak.png
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from yolox_deploy import Detector
from yolox_deploy.processing.images import IMAGE_SUFFIXES, read_image


def rss_mib() -> float:
    """Current resident set size of this process (MiB), from /proc or psutil."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def soak(model: str, images_dir: Path, total: int, every: int, stream: bool) -> list[dict[str, float]]:
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = [read_image(p) for p in files]
    det = Detector(model)
    samples = [{"inferences": 0, "rss_mib": rss_mib(), "seconds": 0.0}]
    start = time.perf_counter()
    done = 0
    with tqdm(total=total, desc="soak", unit="inf") as bar:
        while done < total:
            chunk = min(every, total - done)
            if stream:  # the pipelined path: threads, queues, futures
                for _ in det.stream(images[i % len(images)] for i in range(done, done + chunk)):
                    pass
            else:
                for i in range(done, done + chunk):
                    det(images[i % len(images)])
            done += chunk
            bar.update(chunk)
            samples.append({"inferences": done, "rss_mib": rss_mib(), "seconds": time.perf_counter() - start})
    return samples


def growth_pct(samples: list[dict[str, float]], start: int, end: int) -> float:
    at = {int(s["inferences"]): s["rss_mib"] for s in samples}
    return 100.0 * (at[end] - at[start]) / at[start]


def plot(samples: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([s["inferences"] for s in samples], [s["rss_mib"] for s in samples], marker="o", markersize=3)
    ax.set_xlabel("inferences")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--total", type=int, default=20_000)
    p.add_argument("--every", type=int, default=1_000)
    p.add_argument("--stream", action="store_true", help="run through Detector.stream instead of det(image)")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    samples = soak(args.model, Path(args.images), args.total, args.every, args.stream)
    start = 5_000 if args.total >= 5_000 else args.every
    growth = growth_pct(samples, start, args.total)
    mode = "Detector.stream" if args.stream else "det(image)"
    print(f"RSS {samples[0]['rss_mib']:.0f} MiB at start, {samples[-1]['rss_mib']:.0f} MiB after {args.total} "
          f"inferences; growth between {start} and {args.total}: {growth:+.2f}% ({mode})")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "mode": mode, "machine": platform.machine(),
                                               "growth_pct": growth, "from": start, "samples": samples}, indent=1))
    if args.plot:
        plot(samples, Path(args.plot), f"{Path(args.model).name}, {mode}: RSS growth {start}->{args.total} "
                                       f"{growth:+.2f}%")


if __name__ == "__main__":
    main()
