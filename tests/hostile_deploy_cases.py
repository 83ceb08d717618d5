"""Hostile deploy.json cases, shared by the Python reader's tests (tests/artifacts/
test_deploy_hostile.py) and the C++ library's (tests/cpp/test_cpp_parity.py): one list, two readers."""
from __future__ import annotations

import json
import os
from pathlib import Path

from yolox_deploy.artifacts.deploy import DEPLOY_FORMAT
from yolox_deploy.artifacts.machine import machine_fingerprint

# where the C++ reader's message differs: its JSON parser is strict (NaN is not JSON)
CPP_MESSAGES = {"conf NaN": "is not valid JSON"}


def valid_record(**changes):
    return {"format": DEPLOY_FORMAT, "model_file": "model.onnx", "backend": "onnxruntime", "precision": "fp32",
            "arithmetic": "fp32", "threads": 1, "batch": 1,
            "detector": {"conf": 0.4, "iou": 0.5, "max_det": 20, "class_agnostic": False},
            "model": {"name": "tiny", "input_size": [64, 96]}, "source": {"sha256": "ab"},
            "machine": machine_fingerprint(), **changes}


def with_detector(**changes):
    return {"detector": {"conf": 0.4, "iou": 0.5, "max_det": 20, "class_agnostic": False, **changes}}


# (case id, deploy.json changes or a builder, what the one-line message must name); the C++
# library's reader faces the same cases (tests/cpp/test_cpp_parity.py), with CPP_MESSAGES where
# its wording must differ
HOSTILE = [
    ("traversal", {"model_file": "../outside.onnx"}, "field 'model_file' is '../outside.onnx'"),
    ("absolute path", "absolute", "field 'model_file' is '/"),
    ("subfolder", {"model_file": "sub/model.onnx"}, "field 'model_file'"),
    ("empty name", {"model_file": ""}, "field 'model_file'"),
    ("symlink out", "symlink", "resolves outside the deployment folder"),
    ("companion symlink out", "companion", "model.bin, which resolves outside"),
    ("missing file", {"model_file": "absent.onnx"}, "names absent.onnx in deploy.json but the file is missing"),
    ("source null", {"source": None}, "field 'source' is null"),
    ("model a string", {"model": "nano"}, "field 'model' is 'nano'"),
    ("batch a string", {"batch": "abc"}, "field 'batch' is 'abc', it must be an integer in [1, 4096]"),
    ("batch huge", {"batch": 10 ** 12}, "field 'batch' is 1000000000000"),
    ("batch a bool", {"batch": True}, "field 'batch' is true"),
    ("detector a list", {"detector": [0.3, 0.5]}, "field 'detector' is [0.3, 0.5]"),
    ("one-element input_size", {"model": {"input_size": [416]}}, "field 'model.input_size' is [416]"),
    ("input_size not /32", {"model": {"input_size": [416, 420]}}, "multiples of 32"),
    ("input_size huge", {"model": {"input_size": [10 ** 9, 416]}}, "field 'model.input_size'"),
    ("threads a string", {"threads": "two"}, "field 'threads' is 'two'"),
    ("threads huge", {"threads": 10 ** 9}, "field 'threads' is 1000000000"),
    ("conf a string", with_detector(conf="0.3"), "field 'detector.conf' is '0.3', it must be a number in [0, 1]"),
    ("conf NaN", with_detector(conf=float("nan")), "field 'detector.conf' is NaN"),
    ("max_det huge", with_detector(max_det=10 ** 30), "field 'detector.max_det'"),
    ("class_agnostic a string", with_detector(class_agnostic="yes"), "field 'detector.class_agnostic'"),
    ("unknown detector key", with_detector(nms="soft"), "unknown key 'nms'"),
    ("unknown precision", {"precision": "int4"}, "field 'precision' is 'int4'"),
    ("backend a path", {"backend": "../../evil"}, "field 'backend' is '../../evil'"),
    ("machine a string", {"machine": "x86"}, "field 'machine' is 'x86'"),
    ("sha256 a number", {"source": {"sha256": 5}}, "field 'source.sha256' is 5"),
    ("deeply nested JSON", "nested", "is not valid JSON"),
    ("deeply nested format", "nested_format", "is not valid JSON"),
    ("spinning a string", {"spinning": "yes"}, "field 'spinning' is 'yes'"),
    ("spinning on openvino", "spinning_openvino", "field 'spinning' is true"),
    ("deploy.json a link out", "deploy_link", "deploy.json is a link to a file outside the deployment folder"),
]


def hostile_folder(root: Path, tiny_onnx: Path, case) -> Path:
    """A deployment folder for one hostile case; a real model lies just outside it."""
    outside = root / "outside.onnx"
    outside.write_bytes(tiny_onnx.read_bytes())
    folder = root / "deploy"
    folder.mkdir()
    record = valid_record()
    if case == "absolute":
        record["model_file"] = str(outside)
    elif case == "symlink":
        os.symlink(outside, folder / "model.onnx")
    elif case == "companion":
        record.update(model_file="model.xml", backend="openvino")
        (folder / "model.xml").write_text("<net/>")
        os.symlink(outside, folder / "model.bin")
    elif case == "spinning_openvino":
        record.update(model_file="model.xml", backend="openvino", spinning=True)
        (folder / "model.xml").write_text("<net/>")
        (folder / "model.bin").write_bytes(b"")
    elif isinstance(case, dict):
        record.update(case)
    if case != "symlink":
        (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    text = json.dumps(record)
    if case == "nested":
        text = "[" * 100_000 + "]" * 100_000
    if case == "nested_format":
        text = '{"format": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if case == "deploy_link":
        (root / "elsewhere.json").write_text(text)
        os.symlink(root / "elsewhere.json", folder / "deploy.json")
    else:
        (folder / "deploy.json").write_text(text)
    return folder
