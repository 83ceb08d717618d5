"""Throughput through a Triton server against the local Detector, in the same run.

Rows (interleaved rounds, each row ``--seconds`` per round): the local Detector on the
repository's ONNX, one image per call; Triton one image per call from one client; Triton
from ``--clients`` concurrent threads sharing one Detector (the server's dynamic batching
merges their requests). The server's own statistics give inferences per execution.

    python benchmarks/triton_bench.py --url 127.0.0.1:8000 --repo yolox_triton_repo \
        --images ../shared/data/coco-val-mini/images --json benchmarks/results/triton.json
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from yolox_deploy import Detector
from yolox_deploy.processing.images import IMAGE_SUFFIXES, read_image


def images_per_second(work: Callable[[int], None], seconds: float) -> tuple[float, list[float]]:
    """Run ``work(k)`` for k = 0, 1, ... for ``seconds``; (images/s, per-call ms)."""
    latencies = []
    start = end = time.perf_counter()
    k = 0
    while end - start < seconds:
        work(k)
        now = time.perf_counter()
        latencies.append((now - end) * 1e3)
        end, k = now, k + 1
    return k / (end - start), latencies


def concurrent_images_per_second(work: Callable[[int], None], clients: int, seconds: float) -> tuple[float, list[float]]:
    def loop(worker: int) -> tuple[int, list[float]]:
        done, latencies, stop = 0, [], time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            work(worker * 100_000 + done)
            latencies.append((time.perf_counter() - t0) * 1e3)
            done += 1
        return done, latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(loop, range(clients)))
    elapsed = time.perf_counter() - start
    return sum(d for d, _ in results) / elapsed, [ms for _, lat in results for ms in lat]


def server_counts(url: str, model: str) -> tuple[int, int]:
    import tritonclient.http as http

    stats = http.InferenceServerClient(url).get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the server's HTTP endpoint, host:port")
    p.add_argument("--repo", required=True, help="the repository the server serves (for the local ONNX)")
    p.add_argument("--images", required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0, help="per row and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="local Detector's inference threads")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    files = sorted(f for f in Path(args.images).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    images = [read_image(f) for f in files]
    local = Detector(Path(args.repo) / "yolox_onnx" / "1" / "model.onnx", threads=args.threads)
    remote = Detector("yolox", backend="triton", url=args.url)
    rows: dict[str, list[tuple[float, list[float]]]] = {"local Detector, 1 client": [], "Triton, 1 client": [],
                                                         f"Triton, {args.clients} clients": []}
    before = server_counts(args.url, remote.backend.model_name)
    for _ in range(args.rounds):
        rows["local Detector, 1 client"].append(images_per_second(lambda k: local(images[k % len(images)]),
                                                                   args.seconds))
        rows["Triton, 1 client"].append(images_per_second(lambda k: remote(images[k % len(images)]), args.seconds))
        rows[f"Triton, {args.clients} clients"].append(concurrent_images_per_second(
            lambda k: remote(images[k % len(images)]), args.clients, args.seconds))
    inferences, executions = (a - b for a, b in zip(server_counts(args.url, remote.backend.model_name), before))
    base = np.median([r[0] for r in rows["local Detector, 1 client"]])
    result = {"images": len(images), "rounds": args.rounds, "seconds": args.seconds,
              "server_inferences_per_execution": inferences / max(executions, 1), "rows": {}}
    print("| row | images/s (median of rounds) | vs local | p50 ms/call | p90 ms/call |\n| --- | --- | --- | --- | --- |")
    for name, runs in rows.items():
        rate = float(np.median([r[0] for r in runs]))
        latencies = [ms for _, lat in runs for ms in lat]
        p50, p90 = (float(np.percentile(latencies, q)) for q in (50, 90))
        result["rows"][name] = {"images_per_s": rate, "p50_ms": p50, "p90_ms": p90}
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x | {p50:.1f} | {p90:.1f} |")
    print(f"server: {inferences} inferences in {executions} executions "
          f"({result['server_inferences_per_execution']:.2f} per execution)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
