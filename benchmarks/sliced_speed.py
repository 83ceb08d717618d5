"""Sliced inference: our pipeline against the sahi package's own loop, same model, same slices,
same machine, same run (docs/sliced.md).

    python benchmarks/sliced_speed.py [--rounds 5] [--json benchmarks/results/sliced_speed.json]
                                      [--plot benchmarks/results/sliced_speed.png]

nano@416 (the official weights exported with a dynamic batch) on ONNX Runtime, FP32, 416x416
slices with overlap 0.2 plus the whole image, greedy NMM / IOS. Two image sets: the 80 shared
images (640x480-ish: 4 slices + 1 whole each) and their 4x4 mosaics (2560x1920: 48 + 1).

Configurations, each on the same images in each round, rounds interleaved so that load changes
on a shared machine hit all alike:
- ``sahi b1``: ``get_sliced_prediction`` (batch_size=1) over ``sahi_model(Detector)``: SAHI's loop;
- ``sahi bN native``: SAHI's ``batch_size=N`` with the wrapper sending each batch as one call;
- ``ours b1`` / ``ours bN``: ``Detector(slices=...)`` on the image list, slices in calls of 1 / N;
- ``ours stream 2x1``: ``stream(infer_workers=2)`` with 1 ONNX Runtime thread per call;
- ``whole bN``: the plain Detector on the slice crops themselves (the same model inputs, no
  slicing or merging): the yardstick of the slicing overhead.
Thread settings are stated: 2 intra-op threads (1 for the stream row), spinning stopped after
each run (our ONNX Runtime default, stated here). Reported: images/s and slices/s (median and
p10/p90 over rounds) and, per round, the ratio to ``sahi b1`` of the same round (median).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from yolox_deploy import Detector, SliceSettings
from yolox_deploy.measure.report import machine_info
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.merge import slice_windows

SETTINGS = SliceSettings(416, overlap=0.2)
SAHI_SLICES = dict(slice_height=416, slice_width=416, overlap_height_ratio=0.2, overlap_width_ratio=0.2,
                   perform_standard_pred=True, postprocess_type="GREEDYNMM", postprocess_match_metric="IOS",
                   postprocess_match_threshold=0.5, verbose=0)


def model_inputs(image: np.ndarray) -> int:
    """The model inputs of one image: its windows, plus the whole image when it needs more than one
    window (an image within one window is detected whole, once: sahi and we agree)."""
    windows = len(slice_windows(*image.shape[:2], SETTINGS.size, SETTINGS.overlap))
    return windows + (1 if windows > 1 and SETTINGS.full_image else 0)


def configurations(model: Path, images: list[np.ndarray], batch: int) -> dict[str, Callable[[], object]]:
    from sahi.predict import get_sliced_prediction

    from yolox_deploy.integrations.sahi import sahi_model

    rgb = [np.ascontiguousarray(image[..., ::-1]) for image in images]  # SAHI's own channel order
    crops = [image[y1:y2, x1:x2] for image in images
             for x1, y1, x2, y2 in slice_windows(*image.shape[:2], SETTINGS.size, SETTINGS.overlap)]
    crops += [image for image in images if model_inputs(image) > 1]  # the whole-image pass, where there is one

    def sahi(b: int, native: bool) -> Callable[[], object]:
        wrapped = sahi_model(Detector(model, threads=2, batch_size=b), native_batch=native)
        return lambda: [get_sliced_prediction(x, wrapped, batch_size=b, **SAHI_SLICES) for x in rgb]

    def ours(b: int) -> Callable[[], object]:
        detector = Detector(model, threads=2, batch_size=b, slices=SETTINGS)
        return lambda: detector(images)

    def stream() -> Callable[[], object]:
        detector = Detector(model, threads=1, batch_size=1, slices=SETTINGS)
        return lambda: list(detector.stream(images, infer_workers=2))

    def whole(b: int) -> Callable[[], object]:
        detector = Detector(model, threads=2, batch_size=b)
        return lambda: detector(crops)

    return {"sahi b1": sahi(1, False), f"sahi b{batch} native": sahi(batch, True), "ours b1": ours(1),
            f"ours b{batch}": ours(batch), "ours stream 2x1": stream(), "whole b1 (same inputs)": whole(1),
            f"whole b{batch} (same inputs)": whole(batch)}


def measure(model: Path, images: list[np.ndarray], rounds: int, batch: int, label: str) -> dict[str, object]:
    calls = configurations(model, images, batch)
    inputs = sum(model_inputs(i) for i in images)
    for call in calls.values():  # warm-up
        call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in tqdm(range(rounds), desc=f"{label}: rounds", unit="round"):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    rows = {}
    for name, values in seconds.items():
        per_s = len(images) / np.asarray(values)
        ratio = np.asarray(seconds["sahi b1"]) / np.asarray(values)
        rows[name] = {"images_per_s": float(np.median(per_s)), "images_per_s_p10": float(np.percentile(per_s, 10)),
                      "images_per_s_p90": float(np.percentile(per_s, 90)),
                      "slices_per_s": float(np.median(per_s)) * inputs / len(images),
                      "x_sahi_b1": float(np.median(ratio))}
    return {"images": len(images), "model_inputs": inputs, "rounds": rounds, "rows": rows}


def mosaics(assets: Path, out: Path) -> list[Path]:
    from yolox_deploy.benchmarks.mosaic import build_mosaics

    data = assets / "data" / "coco-val-mini"
    build_mosaics(data / "images", data / "instances_val2017.json", out, n=4, progress=False)
    return sorted((out / "images").glob("*.jpg"))


def table(result: dict[str, object]) -> str:
    lines = []
    for label, part in result["sets"].items():
        lines += [f"\n{label}: {part['images']} images, {part['model_inputs']} model inputs, {part['rounds']} rounds",
                  "| configuration | img/s (p10-p90) | slices/s | x sahi b1 |", "| --- | --- | --- | --- |"]
        for name, row in part["rows"].items():
            lines.append(f"| {name} | {row['images_per_s']:.2f} ({row['images_per_s_p10']:.2f}-"
                         f"{row['images_per_s_p90']:.2f}) | {row['slices_per_s']:.1f} | {row['x_sahi_b1']:.2f} |")
    return "\n".join(lines)


def plot(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = result["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4))
    for ax, (label, part) in zip(np.atleast_1d(axes), sets.items()):
        names = list(part["rows"])
        values = [part["rows"][n]["slices_per_s"] for n in names]
        colors = ["#c44e52" if n.startswith("sahi") else "#8c8c8c" if n.startswith("whole") else "#4c72b0"
                  for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("model inputs (slices) per second, median")
        ax.set_title(f"{label}: {part['model_inputs'] / part['images']:.1f} inputs per image")
    fig.suptitle(f"nano@416, ONNX Runtime FP32, {result['machine']['cpu']} ({result['machine']['cores']} cores)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(prog="sliced_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", type=Path, default=Path(os.environ.get("YOLOX_DEPLOY_ASSETS", "../shared")))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="the larger batch (default 8)")
    p.add_argument("--plain-images", type=int, default=24, help="shared images per round (default 24)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)
    logging.getLogger("yolox_deploy").setLevel(logging.ERROR)  # the per-detector notes
    from yolox_deploy.exporters.onnx import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "nano_dynamic.onnx"
        export_onnx(model, weights=args.assets / "models" / "yolox_nano.pth", dynamic=True)
        shared = sorted((args.assets / "data" / "coco-val-mini" / "images").glob("*.jpg"))[:args.plain_images]
        sets = {"4x4 mosaics": [read_image(p) for p in mosaics(args.assets, Path(tmp) / "mosaics")],
                "shared images": [read_image(p) for p in shared]}
        result = {"machine": machine_info(), "slices": "416x416, overlap 0.2, + whole image, greedy_nmm/ios 0.5",
                  "threads": "2 intra-op (stream row: 1 per call, 2 calls at once); spinning stopped after each run",
                  "sets": {label: measure(model, images, args.rounds, args.batch, label)
                           for label, images in sets.items()}}
    print(f"{result['machine']['cpu']}, {result['machine']['cores']} cores" + table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
