"""The models the C++ stage tests (``.ci/cpp``), exported on the host with the host's environment
(torch, onnx, the exporters) and handed to the Debian 13 root filesystem as files; nothing of it
is committed.

``python tests/cpp/cpp_models.py OUT_DIR [--assets DIR]`` writes into OUT_DIR, from the shared
official YOLOX-Nano checkpoint:

- ``nano.onnx``: FP32 ONNX with our metadata (input size, class names, default thresholds);
- ``nano_int8.onnx``: the Q/DQ INT8 ONNX (calibrated on the shared images);
- ``nano_openvino.xml/.bin``: ``nano.onnx`` as an FP32 OpenVINO IR;
- ``nano_e2e.onnx``: the end-to-end export (decode + NMS in the graph, ``--nms onnx``);
- ``nano_dynamic.onnx``: dynamic batch, height and width (input size from its metadata), and
  ``nano_dynamic_openvino.xml``, the same as an OpenVINO IR (the batch tests of the OpenVINO-only
  Debian 12 stage);

- hostile models for the refusal tests: ``nano_strides0.onnx`` (metadata strides [0]),
  ``nano_deep_names.onnx`` (class_names nested 100000 levels deep), ``sequence_input.onnx`` (a
  graph whose input is a sequence, not a tensor), ``e2e_float_ids.onnx`` (an end-to-end signature
  returning class id 1e20 as float).

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
    "nano_dynamic_openvino.xml": ["--to", "openvino", "--weights", "{out}/nano_dynamic.onnx", "--dynamic"],
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


def with_metadata(source: Path, target: Path, **props: str) -> None:
    import onnx

    model = onnx.load(str(source))
    for key, value in props.items():
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add(key=key)
        entry.value = value
    onnx.save(model, str(target))


def sequence_input_model(target: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    sequence = helper.make_tensor_sequence_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 32, 32])
    position = helper.make_node("Constant", [], ["position"], value=helper.make_tensor("p", TensorProto.INT64, [], [0]))
    at = helper.make_node("SequenceAt", ["images", "position"], ["output"])
    graph = helper.make_graph([position, at], "sequence_input", [sequence], [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(target))


def float_ids_model(target: Path) -> None:
    """The end-to-end signature (num_dets, boxes, scores, class_ids) with a class id of 1e20 as float."""
    import onnx
    from onnx import TensorProto, helper

    def constant(name: str, kind: int, dims: list[int], values: list) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_v", kind, dims, values))

    nodes = [constant("num_dets", TensorProto.INT32, [1, 1], [1]),
             constant("boxes", TensorProto.FLOAT, [1, 1, 4], [1.0, 1.0, 9.0, 9.0]),
             constant("scores", TensorProto.FLOAT, [1, 1], [0.9]),
             constant("class_ids", TensorProto.FLOAT, [1, 1], [1e20])]
    outputs = [helper.make_tensor_value_info("num_dets", TensorProto.INT32, [1, 1]),
               helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4]),
               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1]),
               helper.make_tensor_value_info("class_ids", TensorProto.FLOAT, [1, 1])]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph(nodes, "float_ids", [images], outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(target))


def export_hostile(out: Path) -> None:
    nano = out / "nano.onnx"
    with_metadata(nano, out / "nano_strides0.onnx", strides="[0]")
    with_metadata(nano, out / "nano_deep_names.onnx", class_names="[" * 100_000 + "]" * 100_000)
    sequence_input_model(out / "sequence_input.onnx")
    float_ids_model(out / "e2e_float_ids.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get("YOLOX_DEPLOY_ASSETS", "../shared")))
    parser.add_argument("--bench", action="store_true", help="also the seeded yolox-s@640 of the speed table")
    args = parser.parse_args()
    export_all(args.out, args.assets, args.bench)
    export_hostile(args.out)


if __name__ == "__main__":
    main()
