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
from ..video.streaming import iter_source
from ..measure.report import machine_info
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


def run_sequentially(det: Detector, videos: Sequence[Path]) -> int:
    frames = 0
    for video in videos:
        for _, frame in iter_source(video):
            det(frame)
            frames += 1
    return frames


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


SIDES = {"stream_many (batched)": run_many, "one loop per stream (threads)": run_loops,
         "loops one after another": run_sequentially}


def streams_table(det: Detector, videos: Sequence[Path], counts: Sequence[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n in counts:
        fps: dict[str, list[float]] = {name: [] for name in SIDES}
        for _ in range(rounds):
            for name, fn in SIDES.items():
                seconds, frames = timed(lambda: fn(det, videos[:n]))
                fps[name].append(frames / seconds)
        row = {"streams": n, **{k: round(statistics.median(v), 1) for k, v in fps.items()}}
        row["ratio vs thread loops"] = round(row["stream_many (batched)"] / row["one loop per stream (threads)"], 2)
        row["ratio vs sequential"] = round(row["stream_many (batched)"] / row["loops one after another"], 2)
        rows.append(row)
        print(f"{n} streams: {row}", flush=True)
    return rows


def tracking_table(model: Path, video: Path, rounds: int) -> list[dict[str, Any]]:
    """stream() vs track() ms per frame (alternating, ``rounds`` pairs; the cost is the median
    of the per-pair ratios, which cancels most of a shared machine's drift) and the tracker's
    CPU time per frame, for ONNX Runtime's default threads (one inference at a time using
    every core) and for the small-CPU setup of docs/api.md (threads=1, one inference worker
    per core, so host work runs beside inference)."""
    rows = []
    for threads, infer_workers in ((None, 1), (1, 2)):
        det = Detector(model, threads=threads)
        stream_ms, track_ms, tracker_ms = [], [], []
        for _ in range(rounds):
            seconds, frames = timed(lambda: sum(1 for _ in det.stream(video, infer_workers=infer_workers)))
            stream_ms.append(1000 * seconds / frames)
            tracked = det.track(video, infer_workers=infer_workers)
            seconds, frames = timed(lambda: sum(1 for _ in tracked))
            track_ms.append(1000 * seconds / frames)
            tracker_ms.append(1000 * tracked.tracker.seconds / frames)  # the tracker's own CPU time
        row = {"threads": threads or "default", "infer_workers": infer_workers, "video_frames": frames,
               "rounds": rounds, "stream ms/frame": round(statistics.median(stream_ms), 2),
               "track ms/frame": round(statistics.median(track_ms), 2),
               "track cost vs stream": round(statistics.median(t / s - 1 for s, t in zip(stream_ms, track_ms)), 3),
               "tracker CPU ms/frame": round(statistics.median(tracker_ms), 3)}
        isolated = isolated_tracker_ms(det, video, 5)
        row["tracker ms/frame, alone"] = round(isolated, 3)
        row["tracker share of the frame, alone"] = round(isolated / row["stream ms/frame"], 3)
        rows.append(row)
        print(f"tracking: {row}", flush=True)
    return rows


def isolated_tracker_ms(det: Detector, video: Path, rounds: int) -> float:
    """The tracker alone, on the detections the pipeline gives it (recorded once): wall ms per
    frame, median of ``rounds`` passes over the video, nothing else running in the process."""
    from ..video.streaming import run_stream
    from ..video.tracking import Tracker, tracking_pipeline

    recorded = [r.detections for r in run_stream(tracking_pipeline(det.pipeline), video)]
    per_frame = []
    for _ in range(rounds):
        tracker = Tracker("bytetrack", 25.0)
        start = time.perf_counter()
        for dets in recorded:
            tracker.update(dets)
        per_frame.append(1000 * (time.perf_counter() - start) / len(recorded))
    return statistics.median(per_frame)


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Grouped bars: total frames/s per number of streams, one bar per way of running them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["streams"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(SIDES)
    for k, side in enumerate(SIDES):
        xs = [i + (k - (len(SIDES) - 1) / 2) * width for i in range(len(rows))]
        bars = ax.bar(xs, [r[side] for r in rows], width, label=side)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"{r['streams']} stream(s)" for r in rows])
    ax.set_ylabel("total frames/s (median)")
    ax.set_title(f"{result['model']}, {result['machine'].get('cpu', 'CPU')}: many video streams", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", default="../shared", help="the shared assets folder (COCO images, nano weights)")
    p.add_argument("--model", default=None, help="a dynamic-batch ONNX (default: nano exported from the assets)")
    p.add_argument("--streams", default="1,4,8")
    p.add_argument("--frames", type=int, default=60, help="frames per synthetic video")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the streams table")
    p.add_argument("--tracking-rounds", type=int, default=15, help="stream()/track() pairs per setup")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None, help="PNG of the streams table")
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
                  "tracking": tracking_table(model, videos[0], args.tracking_rounds)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        write_plot(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
