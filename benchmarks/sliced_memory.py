"""Peak memory of sliced inference on a 4K stream (docs/sliced.md).

    python benchmarks/sliced_memory.py --model nano_dynamic.onnx [--frames 24] [--json OUT.json]

A 3840x2160 MPEG-4 file (the 4x4 mosaics of the shared images, scaled to 4K and cycled), decoded by
OpenCV's FFmpeg, through
``Detector(model, batch_size=B, slices=SliceSettings(416)).stream(...)`` with the default
prefetch (4): 416x416 windows at overlap 0.2 plus the whole image, about 60 model inputs a frame.
Reported: the process's peak resident memory (VmHWM) while streaming, above what it held
once the model was loaded and had run once, and frames/s. Each configuration runs in a
fresh process, so peaks do not carry over. ONNX Runtime FP32, 2 intra-op threads, stated.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ASSETS_DEFAULT = Path(__file__).resolve().parents[2] / "shared"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def four_k_video(assets: Path, count: int, out: Path) -> Path:
    """An MPEG-4 file of ``count`` 3840x2160 frames: the 4x4 mosaics of the shared images, scaled and cycled."""
    import tempfile

    import cv2

    from yolox_deploy.benchmarks.mosaic import build_mosaics

    with tempfile.TemporaryDirectory() as tmp:
        coco = assets / "data" / "coco-val-mini"
        build_mosaics(coco / "images", coco / "instances_val2017.json", Path(tmp), n=4, progress=False)
        mosaics = [cv2.resize(cv2.imread(str(p)), (3840, 2160), interpolation=cv2.INTER_LINEAR)
                   for p in sorted((Path(tmp) / "images").glob("*.jpg"))]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 10, (3840, 2160))
    for i in range(count):
        writer.write(mosaics[i % len(mosaics)])
    writer.release()
    return out


def measure_one(model: str, batch: int, video: Path) -> dict:
    """Runs in its own process (see main): one configuration's peak."""
    from yolox_deploy import Detector, SliceSettings

    detector = Detector(model, threads=2, batch_size=batch, slices=SliceSettings(416))
    detector(np.zeros((2160, 3840, 3), np.uint8))  # warm: sessions and pools exist before the baseline is read
    baseline = rss_mb()
    t0 = time.perf_counter()
    count = sum(1 for _ in detector.stream(str(video)))
    seconds = time.perf_counter() - t0
    return {"batch_size": batch, "frames": count, "inputs_per_frame": detector.timings.slices,
            "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_above_baseline_mb": round(peak_rss_mb() - baseline, 1), "frames_per_s": round(count / seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a dynamic-batch nano ONNX (yolox-export --dynamic)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--batches", default="1,8", help="the Detector's batch_size values to run")
    parser.add_argument("--assets", type=Path, default=ASSETS_DEFAULT)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--video", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure_one(args.model, args.one, args.video)))
        return 0
    import tempfile

    from yolox_deploy.measure.report import machine_info

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = four_k_video(args.assets, args.frames, Path(tmp) / "4k.mp4")
        for batch in (int(b) for b in args.batches.split(",")):
            child = subprocess.run([sys.executable, __file__, "--model", args.model, "--video", str(video),
                                    "--one", str(batch)], capture_output=True, text=True, check=True)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(rows[-1])
    result = {"machine": machine_info(), "settings": "nano@416 dynamic batch, ONNX Runtime FP32, 2 threads, "
              "SliceSettings(416) (overlap 0.2, + whole image), stream() prefetch 4, 3840x2160 frames",
              "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
