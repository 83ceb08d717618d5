"""Postprocess latency: our C++ kernel vs our NumPy path vs the official demo's NumPy loop
vs a pure-torch pipeline, on the same real raw outputs, in one run.

Raw outputs come from the official YOLOX-Nano weights (``$YOLOX_DEPLOY_ASSETS``) run by
our PyTorch model at 416 (N=3549), 640 (8400) and 1280 (33600) on real COCO images.
Methods are interleaved round by round so machine noise hits them alike; before each
call the output is copied into the inference buffer (as the runtime writes it); the table
gives per-image medians and p90 in microseconds and each method's speed-up over the
official demo path measured in the same run.

    python benchmarks/postprocess_bench.py [--images 8] [--rounds 15] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from yolox_deploy.measure.official_demo import demo_postprocess
from yolox_deploy.processing import _kernel
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.postprocess import postprocess
from yolox_deploy.processing.preprocess import letterbox

ASSETS = Path(os.environ.get("YOLOX_DEPLOY_ASSETS", Path(__file__).resolve().parents[2] / "shared"))
SIZES = {3549: (416, 416), 8400: (640, 640), 33600: (1280, 1280)}
IOU = 0.45


def raw_outputs(n_images: int, input_hw: tuple[int, int]):
    import torch

    from yolox_deploy.models import load_model

    model, _ = load_model(ASSETS / "models" / "yolox_nano.pth")
    paths = sorted((ASSETS / "data" / "coco-val-mini" / "images").glob("*.jpg"))[:n_images]
    items = []
    for path in paths:
        image = read_image(path)
        x, r = letterbox(image, input_hw)
        with torch.inference_mode():
            raw = model(torch.from_numpy(x[None])).numpy()
        items.append((np.ascontiguousarray(raw), r, image.shape[:2]))  # as ONNX Runtime returns it
    return items


def torch_pipeline(raw, input_hw, ratio, conf, iou):
    """What a user without torchvision writes in torch: vectorised decode/filter, IoU matrix,
    class-offset trick, greedy loop over rows (torchvision is not importable beside the
    pinned CPU torch here)."""
    import torch

    from yolox_deploy.processing.grids import anchor_grid

    grid, stride = (torch.tensor(a) for a in anchor_grid(input_hw))  # copies: the cached grids are read-only
    pred = torch.from_numpy(raw[0])
    cls_conf, cls_id = pred[:, 5:].max(1)
    scores = pred[:, 4] * cls_conf
    mask = scores >= conf
    pred, scores, cls_id = pred[mask], scores[mask], cls_id[mask]
    cxcy = (pred[:, :2] + grid[mask]) * stride[mask]
    wh = pred[:, 2:4].exp() * stride[mask]
    boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1)
    offset = boxes + (cls_id.float() * (boxes.max() + 1))[:, None]
    order = scores.argsort(descending=True)
    b = offset[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(b[:, None, :2], b[None, :, :2])
    rb = torch.min(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    iou_m = inter / (area[:, None] + area[None, :] - inter)
    suppressed = torch.zeros(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou_m[i] > iou
    idx = order[keep]
    return boxes[idx] / ratio, scores[idx], cls_id[idx]


def methods(input_hw, conf):
    return {
        "yolox_deploy C++ (Detector path)": lambda raw, r, hw: postprocess(raw, input_hw, [r], [hw], conf=conf, iou=IOU,
                                                                           impl="cpp"),
        "yolox_deploy C++ (kernel call)": lambda raw, r, hw: _kernel.postprocess(raw, input_hw[0], input_hw[1], [8, 16, 32],
                                                                                 conf, IOU, False, 300, [r], [hw]),
        "yolox_deploy NumPy reference": lambda raw, r, hw: postprocess(raw, input_hw, [r], [hw], conf=conf, iou=IOU,
                                                                       impl="numpy"),
        "official demo (NumPy, per-class loop)": lambda raw, r, hw: demo_postprocess(raw, input_hw, r, conf, IOU),
        "torch (IoU matrix, no torchvision)": lambda raw, r, hw: torch_pipeline(raw, input_hw, r, conf, IOU),
    }


def measure(items, fns, rounds: int, budget_s: float):
    """Per-image times (µs). Before each call the image's raw output is copied into one
    output buffer, as a runtime writes its output right before the postprocess runs."""
    times = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)
    buffer = np.empty_like(items[0][0])
    for k in range(rounds):
        for name, fn in fns.items():
            if k >= 3 and spent[name] > budget_s:
                continue  # slow baselines get at least 3 rounds, then stop once over budget
            for raw, r, hw in items:
                np.copyto(buffer, raw)
                t0 = time.perf_counter_ns()
                fn(buffer, r, hw)
                dt = (time.perf_counter_ns() - t0) / 1e3
                times[name].append(dt)
                spent[name] += dt / 1e6
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--budget", type=float, default=4.0, help="seconds per slow method and setting")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)  # postprocess is single-threaded in every method compared
    rows = []
    print(f"# postprocess latency, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}")
    print("| N | conf | method | median µs/img | p90 µs/img | vs official | dets/img |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, input_hw in SIZES.items():
        items = raw_outputs(args.images, input_hw)
        for conf in (0.001, 0.25):
            fns = methods(input_hw, conf)
            cpp = [fns["yolox_deploy C++ (Detector path)"](*it)[0] for it in items]
            ref = [fns["yolox_deploy NumPy reference"](*it)[0] for it in items]
            assert all(np.array_equal(a[1], b[1]) for a, b in zip(cpp, ref)), "C++ and NumPy disagree"
            dets = np.mean([len(c[1]) for c in cpp])
            times = measure(items, fns, args.rounds, args.budget)
            official = np.median(times["official demo (NumPy, per-class loop)"])
            for name, ts in times.items():
                med, p90 = float(np.median(ts)), float(np.percentile(ts, 90))
                row = dict(N=n, conf=conf, method=name, median_us=med, p90_us=p90, speedup=official / med,
                           samples=len(ts), dets_per_img=float(dets))
                rows.append(row)
                print(f"| {n} | {conf} | {name} | {med:,.0f} | {p90:,.0f} | {official / med:,.1f}x | {dets:.0f} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
