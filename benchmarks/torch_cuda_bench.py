"""The torch backend on a CUDA GPU: latency rows (FP32, FP16 + channels-last, CUDA graphs)
against the CPU reference measured in the same run, and exactness (raw outputs, COCO mAP)
against the CPU FP32 reference on the shared images.

    python benchmarks/torch_cuda_bench.py [--assets DIR] [--rounds 15] [--json OUT.json]

Latency is one ``backend.infer`` call (host array in, host array out: H2D copy, forward,
D2H copy) on a letterboxed batch; setups are timed in interleaved rounds and each row gives
the median and p90 of the per-round medians, and its ratio to the CPU torch FP32 row of the
same model and batch. Nano uses the official weights; yolox-s seeded random weights.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from yolox_deploy import Detector
from yolox_deploy.evaluation import evaluate_coco
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.preprocess import letterbox
from yolox_deploy.runtimes import load_backend

ASSETS = Path(os.environ.get("YOLOX_DEPLOY_ASSETS", Path(__file__).resolve().parents[2] / "shared"))

CUDA_SETUPS: dict[str, dict[str, Any]] = {
    "cuda fp32": {"device": "cuda"},
    "cuda fp32 + cuda graph": {"device": "cuda", "cuda_graph": True},
    "cuda fp16 + channels-last": {"device": "cuda", "half": True, "channels_last": True},
    "cuda fp16 + channels-last + cuda graph": {"device": "cuda", "half": True, "channels_last": True,
                                               "cuda_graph": True},
}


def batch_of(images: list[np.ndarray], size: tuple[int, int], n: int) -> np.ndarray:
    return np.stack([letterbox(images[i % len(images)], size)[0] for i in range(n)])


def per_call_ms(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) * 1e3 / calls


def time_setups(calls: dict[str, Callable[[], Any]], rounds: int, per_round: int) -> dict[str, list[float]]:
    for call in calls.values():
        for _ in range(5):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():  # interleaved: the machine's noise hits every setup alike
            samples[name].append(per_call_ms(call, per_round))
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def latency_rows(weights: Path, model_name: str, size: tuple[int, int], images: list[np.ndarray],
                 batches: list[int], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n in batches:
        x = batch_of(images, size, n)
        backends = {"cpu fp32 (baseline)": load_backend(weights, "torch", device="cpu", model_name=model_name)}
        backends.update({name: load_backend(weights, "torch", model_name=model_name, **opts)
                         for name, opts in CUDA_SETUPS.items()})
        reference = backends["cpu fp32 (baseline)"].infer(x)
        calls = {name: (lambda b=b: b.infer(x)) for name, b in backends.items()}
        samples = time_setups(calls, rounds, per_round=3)
        base = statistics.median(samples["cpu fp32 (baseline)"])
        for name, b in backends.items():
            got = b.infer(x)
            rows.append({"model": model_name, "input": list(size), "batch": n, "setup": name,
                         **summarize(samples[name]), "speedup_vs_cpu": base / statistics.median(samples[name]),
                         "max_abs_diff_scores_vs_cpu": float(np.abs(got[..., 4:] - reference[..., 4:]).max()),
                         "max_abs_diff_boxes_vs_cpu": float(np.abs(got[..., :4] - reference[..., :4]).max())})
            print(f"{model_name} b{n} {name:42s} median {rows[-1]['median_ms']:8.2f} ms  p90 "
                  f"{rows[-1]['p90_ms']:8.2f} ms  x{rows[-1]['speedup_vs_cpu']:6.1f}  "
                  f"score diff {rows[-1]['max_abs_diff_scores_vs_cpu']:.2e}", flush=True)
    return rows


def map_rows(weights: Path, coco: Path) -> list[dict[str, Any]]:
    rows = []
    setups = {"cpu fp32 (reference)": {"device": "cpu"}, **CUDA_SETUPS}
    for name, opts in setups.items():
        det = Detector(weights, backend="torch", conf=0.01, iou=0.65, **opts)
        stats = evaluate_coco(det, coco / "images", coco / "instances_val2017.json", progress=False)
        rows.append({"setup": name, "mAP50_95": stats["mAP50_95"], "mAP50": stats["mAP50"]})
        print(f"nano mAP {name:42s} {stats['mAP50_95']:.4f} / {stats['mAP50']:.4f}", flush=True)
    return rows


def main() -> int:
    import torch

    from yolox_deploy.models.zoo import seeded_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", default=str(ASSETS))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 2
    assets = Path(args.assets)
    coco = assets / "data" / "coco-val-mini"
    images = [read_image(f) for f in sorted((coco / "images").glob("*.jpg"))[:8]]
    seeded = Path(tempfile.mkdtemp()) / "yolox_s_seeded.pth"
    torch.save({"model": seeded_model("yolox-s").state_dict()}, seeded)
    torch.backends.cudnn.benchmark = True
    result = {
        "machine": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "cpu_threads_torch": torch.get_num_threads(), "python": platform.python_version()},
        "latency": (latency_rows(assets / "models" / "yolox_nano.pth", "yolox-nano", (416, 416), images, [1, 8],
                                 args.rounds)
                    + latency_rows(seeded, "yolox-s", (640, 640), images, [1, 8], args.rounds)),
        "map_nano": map_rows(assets / "models" / "yolox_nano.pth", coco),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
