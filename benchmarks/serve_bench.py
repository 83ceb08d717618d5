"""yolox-serve's long figures (docs/serve.md), against real RTSP streams (tests/serve/rtsp_server.py,
Debian's gst-rtsp-server) or video files:

    python benchmarks/serve_bench.py overhead --model M [--frames 300]     service vs stream_many fps, same files
    python benchmarks/serve_bench.py memory --model M [--frames 30000] [--cycles 60] [--streams 4] [--fps 60]
    python benchmarks/serve_bench.py latency --model M [--seconds 120] [--fps 10]   consumer 2x slower, drop-oldest
    python benchmarks/serve_bench.py capacity --model M [--size 1280x720] [--fps 15] [--max-streams 6]

Each prints a JSON line of its figures (-o FILE appends it) and, for memory and latency, writes a
plot beside FILE. Precision FP32, threads as given (default 2).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def make_clip(path: Path, frames: int, size=(480, 640)) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (size[1], size[0]))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(np.roll(base, i * 4, axis=1))
    writer.release()


def wait_stopped(service, names, timeout=600) -> None:
    from yolox_deploy.serve import StreamState

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        snapshots = service.snapshots()
        if all(service.status(n).state == StreamState.STOPPED for n in names) and not any(s.in_flight for s in snapshots):
            return
        time.sleep(0.05)


def steady_fps(times: list[float]) -> float:
    """Frames per second between the first result and the last: the rate a long-running service
    holds (the start-up of a decoder process, once per stream, is left out, as stream_many's file
    opening is)."""
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0])


def overhead(args, detector) -> dict:
    """Frames per second over the same 2 files: the service (wait mode) and stream_many, each
    from its first result to its last."""
    from yolox_deploy.serve import VideoService

    folder = Path(tempfile.mkdtemp())
    clips = [folder / f"clip{i}.mp4" for i in range(2)]
    for clip in clips:
        make_clip(clip, args.frames)
    rounds = []
    for _ in range(args.rounds):
        offline_times = [time.perf_counter() for r in detector.stream_many([str(c) for c in clips]) if not r.finished]
        served_times: list[float] = []
        with VideoService(detector, on_result=lambda r: served_times.append(time.perf_counter())) as service:
            for i, clip in enumerate(clips):
                service.add(str(clip), name=f"c{i}")
            wait_stopped(service, ["c0", "c1"])
        rounds.append((steady_fps(offline_times), steady_fps(served_times), len(offline_times), len(served_times)))
    offline = statistics.median(r[0] for r in rounds)
    served = statistics.median(r[1] for r in rounds)
    return {"kind": "overhead", "frames": 2 * args.frames, "stream_many_fps": round(offline, 2),
            "service_fps": round(served, 2), "ratio": round(served / offline, 3), "rounds": args.rounds,
            "results": [r[2:] for r in rounds]}


def memory(args, detector) -> dict:
    """RSS of the service (and its decoders) over frames and reconnect cycles (decoder killed)."""
    import signal

    from rtsp_helpers import RtspServer
    from yolox_deploy.serve import VideoService

    names = [f"cam{i}" for i in range(args.streams)]
    server = RtspServer(names, fps=args.fps)
    samples, cycles = [], 0
    try:
        with VideoService(detector) as service:
            for name in names:
                service.add(server.url(name), name=name, stall_s=2)
            time.sleep(3)
            every = max(1, args.frames // max(1, args.cycles))
            next_kill, start = every, time.monotonic()
            while True:
                done = sum(s.decoded for s in service.snapshots())  # every frame crosses the service's pipes
                pids = [os.getpid()] + [s.decoder_pid for s in service.streams() if s.decoder_pid]
                samples.append((time.monotonic() - start, done, rss_mb([os.getpid()]), rss_mb(pids)))
                if done >= args.frames:
                    break
                if done >= next_kill and cycles < args.cycles:
                    pid = service.status(names[cycles % len(names)]).decoder_pid
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        cycles += 1
                    next_kill += every
                time.sleep(0.5)
    finally:
        server.close()
    frames = np.array([s[1] for s in samples], float)
    own = np.array([s[2] for s in samples])
    warm = frames >= frames[-1] * 0.1  # after start-up
    slope = float(np.polyfit(frames[warm], own[warm], 1)[0] * 10_000) if warm.sum() > 2 else float("nan")
    if args.output:
        plot(Path(args.output).with_suffix(".memory.png"), frames, own, "frames decoded", "service RSS (MB)",
             f"RSS over {int(frames[-1])} frames, {cycles} reconnects: {slope:+.3f} MB per 10k frames")
    decoders = [s[3] - s[2] for s in samples[len(samples) // 2:]]
    return {"kind": "memory", "frames": int(frames[-1]), "reconnect_cycles": cycles, "streams": args.streams,
            "decoder_rss_mb_per_stream": round(statistics.median(decoders) / args.streams, 1),
            "fps_per_stream": args.fps, "rss_start_mb": round(float(own[warm][0]), 1),
            "rss_end_mb": round(float(own[-1]), 1), "mb_per_10k_frames": round(slope, 3),
            "seconds": round(samples[-1][0], 1)}


class SlowDetector:
    """The Detector, made to take at least ``seconds`` per call (a consumer slower than the source)."""

    def __init__(self, detector, seconds: float):
        self.detector, self.seconds, self.batch_size = detector, seconds, 1
        self.calls: list[float] = []  # seconds per call, the wait included: the consumer's time

    def __call__(self, images):
        start = time.perf_counter()
        found = self.detector(images)
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - start)))
        self.calls.append(time.perf_counter() - start)
        return found


def latency(args, detector) -> dict:
    """Consumer 2x slower than the source, drop-oldest (queue 1): decode-to-result latency."""
    from rtsp_helpers import RtspServer
    from yolox_deploy.serve import VideoService

    interval = 1.0 / args.fps
    slow = SlowDetector(detector, 2 * interval)
    server = RtspServer(["cam0"], fps=args.fps)
    got = []
    try:
        with VideoService(slow, on_result=got.append) as service:
            service.add(server.url("cam0"), name="cam0", drop="oldest", queue_size=1)
            time.sleep(args.seconds)
            status = service.status("cam0")
    finally:
        server.close()
    t = np.array([r.received for r in got])
    lat = np.array([r.latency_s for r in got])
    t, lat = t - t[0], lat
    p99 = float(np.percentile(lat, 99))
    consumer_p99 = float(np.percentile(slow.calls, 99))
    bound = 2 * interval + consumer_p99  # the bound: 2 frame intervals + p99 inference (the consumer's)
    slope = float(np.polyfit(t, lat, 1)[0] * 60)  # seconds of latency gained per minute
    if args.output:
        plot(Path(args.output).with_suffix(".latency.png"), t, lat * 1000, "seconds", "decode to result (ms)",
             f"consumer 2x slower, drop-oldest: p99 {p99 * 1000:.0f} ms, trend {slope * 1000:+.2f} ms/min")
    return {"kind": "latency", "seconds": args.seconds, "source_fps": args.fps, "results": len(got),
            "dropped": status.dropped, "decoded": status.decoded, "p50_ms": round(float(np.median(lat)) * 1000, 1),
            "p99_ms": round(p99 * 1000, 1), "p99_consumer_ms": round(consumer_p99 * 1000, 1),
            "bound_ms": round(bound * 1000, 1), "within_bound": p99 <= bound,
            "frame_interval_ms": round(interval * 1000, 1), "trend_ms_per_min": round(slope * 1000, 3)}


def capacity(args, detector) -> dict:
    """Streams of --size at --fps held: every stream's inferred fps within 5% of the source's."""
    from rtsp_helpers import RtspServer
    from yolox_deploy.serve import VideoService

    held, rows = 0, []
    for count in range(1, args.max_streams + 1):
        names = [f"cam{i}" for i in range(count)]
        server = RtspServer(names, fps=args.fps, size=args.size)
        try:
            with VideoService(detector) as service:
                for name in names:
                    service.add(server.url(name), name=name)
                time.sleep(4)
                before = {s.name: s.inferred for s in service.snapshots()}
                time.sleep(args.seconds)
                after = {s.name: s.inferred for s in service.snapshots()}
        finally:
            server.close()
        fps = [(after[n] - before[n]) / args.seconds for n in names]
        rows.append({"streams": count, "min_fps": round(min(fps), 2)})
        if min(fps) < 0.95 * args.fps:
            break
        held = count
    return {"kind": "capacity", "size": args.size, "fps": args.fps, "held": held, "rows": rows}


def plot(path: Path, x, y, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(x, y, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("overhead", "memory", "latency", "capacity"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--fps", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--max-streams", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args()
    defaults = {"overhead": (300, None, None), "memory": (30000, 60, None), "latency": (None, 10, 120),
                "capacity": (None, 15, 15)}[args.kind]
    args.frames = args.frames or defaults[0]
    args.fps = args.fps or defaults[1]
    args.seconds = args.seconds or defaults[2]
    from yolox_deploy import Detector

    detector = Detector(args.model, threads=args.threads)
    figures = {"overhead": overhead, "memory": memory, "latency": latency, "capacity": capacity}[args.kind](args,
                                                                                                       detector)
    figures.update(model=Path(args.model).name, threads=args.threads, precision="fp32")
    line = json.dumps(figures)
    print(line)
    if args.output:
        with open(args.output, "a") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
