"""The models the C++ stage tests (``.ci/cpp``), exported on the host with the host's environment
(torch, onnx, the exporters) and handed to the Debian 13 root filesystem as files; nothing of it
is committed.

``python tests/cpp/cpp_models.py OUT_DIR [--assets DIR]`` writes into OUT_DIR, from the shared
official YOLOX-Nano checkpoint:

- ``nano.onnx``: FP32 ONNX with our metadata (input size, class names, default thresholds);
- ``nano_int8.onnx``: the Q/DQ INT8 ONNX (calibrated on the shared images);
- ``nano_openvino.xml/.bin``: ``nano.onnx`` as an FP32 OpenVINO IR;
- ``nano_e2e.onnx``: the end-to-end export (decode + NMS in the graph, ``--nms onnx``);
- ``nano_dynamic.onnx``: dynamic batch, height and width (input size from its metadata).

The official ONNX itself (no metadata) is read from the assets where it lies.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_EXPORTS = {  # --bench: seeded yolox-s at 640 for the speed table (benchmarks/cpp_vs_python.py)
    "yolox_s.onnx": ["--to", "onnx", "--model-name", "yolox-s", "--seed", "0", "--input-size", "640", "640"],
    "yolox_s_openvino.xml": ["--to", "openvino", "--weights", "{out}/yolox_s.onnx"],
}
EXPORTS = {
    "nano.onnx": ["--to", "onnx", "--weights", "{pth}"],
    "nano_int8.onnx": ["--to", "onnx", "--weights", "{pth}", "--int8", "--calib", "{images}"],
    "nano_e2e.onnx": ["--to", "onnx", "--weights", "{pth}", "--nms", "onnx"],
    "nano_dynamic.onnx": ["--to", "onnx", "--weights", "{pth}", "--dynamic", "--dynamic-hw"],
    "nano_openvino.xml": ["--to", "openvino", "--weights", "{out}/nano.onnx"],
}


def export_all(out: Path, assets: Path, bench: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    values = {"pth": assets / "models" / "yolox_nano.pth", "images": assets / "data" / "coco-val-mini" / "images",
              "out": out}
    for name, args in {**EXPORTS, **(BENCH_EXPORTS if bench else {})}.items():
        if (out / name).is_file():
            continue
        start = time.perf_counter()
        command = [sys.executable, "-m", "yolox_deploy.cli.export", *(a.format(**values) for a in args),
                   "-o", str(out / name)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"exporting {name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        print(f"[cpp] exported {name} in {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get("YOLOX_DEPLOY_ASSETS", "../shared")))
    parser.add_argument("--bench", action="store_true", help="also the seeded yolox-s@640 of the speed table")
    args = parser.parse_args()
    export_all(args.out, args.assets, args.bench)


if __name__ == "__main__":
    main()
