"""Video benchmarks (issue 20), on synthetic videos of real COCO pixels (camera pans over the
shared images, 640-wide frames cut to 480x360):

1. many streams: total frames/s of ``Detector.stream_many`` (frames of all streams batched
   into one backend call) against one loop per stream (a thread each, ``det(frame)`` per
   frame: what people write, and where throughput collapses), for 1, 4 and 8 streams;
2. tracking: frames/s of ``stream()`` against ``track()`` on the same video, and the
   tracker's own time per frame as a share of the frame time.

The two sides of each comparison run in the same process, alternately, ``--rounds`` times;
medians are reported.

    python -m yolox_deploy.benchmarks.video_bench --assets ../shared --json results/video.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..detector import Detector
from ..streaming import iter_source
from .bench import machine_info
from .synthetic_videos import pan_video

VIDEO_IMAGES = ("000000491008.jpg", "000000547336.jpg", "000000261888.jpg", "000000329219.jpg",
                "000000051712.jpg", "000000343937.jpg", "000000357888.jpg", "000000010764.jpg")


def make_videos(coco_dir: Path, folder: Path, count: int, frames: int) -> list[Path]:
    return [pan_video(coco_dir, folder / f"v{i}.mp4", frames=frames, image_name=VIDEO_IMAGES[i % len(VIDEO_IMAGES)])[0]
            for i in range(count)]


def timed(fn: Any) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn()
    return time.perf_counter() - start, frames


def run_many(det: Detector, videos: Sequence[Path]) -> int:
    return sum(1 for r in det.stream_many(list(videos), batch_size=len(videos)) if not r.finished)


def run_loops(det: Detector, videos: Sequence[Path]) -> int:
    counts = [0] * len(videos)

    def loop(i: int) -> None:
        for _, frame in iter_source(videos[i]):
            det(frame)
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(videos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def streams_table(det: Detector, videos: Sequence[Path], counts: Sequence[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n in counts:
        fps = {"stream_many (batched)": [], "one loop per stream": []}
        for _ in range(rounds):
            for name, fn in (("stream_many (batched)", run_many), ("one loop per stream", run_loops)):
                seconds, frames = timed(lambda: fn(det, videos[:n]))
                fps[name].append(frames / seconds)
        row = {"streams": n, **{k: round(statistics.median(v), 1) for k, v in fps.items()}}
        row["ratio"] = round(row["stream_many (batched)"] / row["one loop per stream"], 2)
        rows.append(row)
        print(f"{n} streams: {row}", flush=True)
    return rows


def tracking_table(det: Detector, video: Path, rounds: int) -> dict[str, Any]:
    stream_fps, track_fps, shares = [], [], []
    for _ in range(rounds):
        seconds, frames = timed(lambda: sum(1 for _ in det.stream(video)))
        stream_fps.append(frames / seconds)
        start = time.perf_counter()
        tracked = det.track(video)
        frames = sum(1 for _ in tracked)
        seconds = time.perf_counter() - start
        track_fps.append(frames / seconds)
        shares.append(tracked.tracker.seconds / seconds)
    result = {"video_frames": frames, "stream fps": round(statistics.median(stream_fps), 1),
              "track fps": round(statistics.median(track_fps), 1),
              "tracker share of frame time": round(statistics.median(shares), 4),
              "tracker ms per frame": round(1000 * statistics.median(shares) / statistics.median(track_fps), 3)}
    print(f"tracking: {result}", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", default="../shared", help="the shared assets folder (COCO images, nano weights)")
    p.add_argument("--model", default=None, help="a dynamic-batch ONNX (default: nano exported from the assets)")
    p.add_argument("--streams", default="1,4,8")
    p.add_argument("--frames", type=int, default=60, help="frames per synthetic video")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    assets = Path(args.assets)
    counts = [int(v) for v in args.streams.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else Path(tmp) / "nano_dynamic.onnx"
        if args.model is None:
            from ..exporters.onnx import export_onnx

            export_onnx(model, weights=assets / "models" / "yolox_nano.pth", dynamic=True)
        videos = make_videos(assets / "data" / "coco-val-mini", Path(tmp), max(counts), args.frames)
        det = Detector(model)
        result = {"machine": machine_info(), "model": model.name, "frames_per_video": args.frames,
                  "rounds": args.rounds, "streams": streams_table(det, videos, counts, args.rounds),
                  "tracking": tracking_table(det, videos[0], args.rounds)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
