"""C++ Detector against Python Detector: end-to-end latency and pre+post time, same models, same
runtimes, same machine, same run (interleaved rounds). Run inside the C++ stage's root filesystem,
where both exist: ``bash .ci/cpp --bench OUT_DIR`` (docs/cpp.md).

``python benchmarks/cpp_vs_python.py --tool BUILD/yolox-detect-cpp --models DIR --images DIR -o OUT.json``

Per image call, medians over ``--rounds`` x ``--repeat`` runs of each of ``--images-count``
images (decoded beforehand on both sides): preprocess (checks + letterbox), inference, postprocess
(decode + NMS + mapping back) and the whole call. Python's figures come from ``Detector.timings``
(the same stage boundaries) and a clock around the call. Both sides state FP32 and ``--threads``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODELS = {  # row -> (model file in --models, backend)
    "nano@416 onnxruntime": ("nano.onnx", "onnxruntime"),
    "nano@416 openvino": ("nano_openvino.xml", "openvino"),
    "yolox-s@640 onnxruntime": ("yolox_s.onnx", "onnxruntime"),
    "yolox-s@640 openvino": ("yolox_s_openvino.xml", "openvino"),
}


def cpp_round(tool: Path, model: Path, backend: str, images: list[Path], threads: int, repeat: int) -> dict[str, list]:
    with tempfile.TemporaryDirectory() as tmp:
        timings = Path(tmp) / "t.json"
        subprocess.run([str(tool), "--model", str(model), "--backend", backend, "--threads", str(threads),
                        "--repeat", str(repeat), "--timings", str(timings), "--json", str(Path(tmp) / "d.json"),
                        *map(str, images)], check=True, capture_output=True, text=True)
        runs = json.loads(timings.read_text())["runs_ms"]
    # the first run of each process warms the runtime up: dropped, as on the Python side
    return {stage: values[1:] for stage, values in runs.items()}


def python_round(detector: Any, images: list[np.ndarray], repeat: int) -> dict[str, list]:
    runs: dict[str, list] = {"preprocess": [], "inference": [], "postprocess": [], "total": []}
    for image in images:
        for _ in range(repeat):
            start = time.perf_counter()
            detector(image)
            runs["total"].append((time.perf_counter() - start) * 1e3)
            runs["preprocess"].append(detector.timings.preprocess_ms)
            runs["inference"].append(detector.timings.inference_ms)
            runs["postprocess"].append(detector.timings.postprocess_ms)
    return runs


def summary(runs: dict[str, list]) -> dict[str, float]:
    pre_post = [a + b for a, b in zip(runs["preprocess"], runs["postprocess"])]
    return {"total_ms": statistics.median(runs["total"]), "pre_post_ms": statistics.median(pre_post),
            "preprocess_ms": statistics.median(runs["preprocess"]), "postprocess_ms": statistics.median(runs["postprocess"]),
            "inference_ms": statistics.median(runs["inference"]),
            "total_p90_ms": float(np.percentile(runs["total"], 90)), "runs": len(runs["total"])}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--images-count", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    from yolox_deploy import Detector
    from yolox_deploy.processing.images import read_image

    paths = sorted(args.images.glob("*.jpg"))[:args.images_count]
    decoded = [read_image(p) for p in paths]
    rows = {}
    for row, (name, backend) in MODELS.items():
        model = args.models / name
        if not model.is_file():
            print(f"skipped {row}: {model} missing")
            continue
        detector = Detector(model, backend=backend, threads=args.threads)
        detector(decoded[0])  # warm-up
        cpp_runs: dict[str, list] = {}
        py_runs: dict[str, list] = {}
        for _ in range(args.rounds):  # interleaved: both sides see the same machine state
            for stage, values in cpp_round(args.tool, model, backend, paths, args.threads, args.repeat).items():
                cpp_runs.setdefault(stage, []).extend(values)
            for stage, values in python_round(detector, decoded, args.repeat).items():
                py_runs.setdefault(stage, []).extend(values)
        cpp, python = summary(cpp_runs), summary(py_runs)
        rows[row] = {"cpp": cpp, "python": python,
                     "total_ratio_python_over_cpp": python["total_ms"] / cpp["total_ms"],
                     "pre_post_ratio_python_over_cpp": python["pre_post_ms"] / cpp["pre_post_ms"]}
        print(f"{row}: C++ {cpp['total_ms']:.2f} ms (pre+post {cpp['pre_post_ms']:.2f}), Python {python['total_ms']:.2f} ms "
              f"(pre+post {python['pre_post_ms']:.2f})", flush=True)
    args.output.write_text(json.dumps({"machine": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                                       "images": [p.name for p in paths], "rounds": args.rounds,
                                       "repeat": args.repeat, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
