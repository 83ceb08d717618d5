"""Corrupted and hostile deploy.json files: each is refused in one line naming the field,
through Detector, yolox-detect --model and yolox-tune -o, and nothing outside the folder is
ever opened."""
from __future__ import annotations

import json
import os

import pytest

from yolox_deploy import Detector
from yolox_deploy.artifacts.deploy import DEPLOY_FORMAT
from yolox_deploy.artifacts.machine import machine_fingerprint
from yolox_deploy.cli import detect as detect_cli
from yolox_deploy.errors import ModelFileError


def valid_record(**changes):
    return {"format": DEPLOY_FORMAT, "model_file": "model.onnx", "backend": "onnxruntime", "precision": "fp32",
            "arithmetic": "fp32", "threads": 1, "batch": 1,
            "detector": {"conf": 0.4, "iou": 0.5, "max_det": 20, "class_agnostic": False},
            "model": {"name": "tiny", "input_size": [64, 96]}, "source": {"sha256": "ab"},
            "machine": machine_fingerprint(), **changes}


def with_detector(**changes):
    return {"detector": {"conf": 0.4, "iou": 0.5, "max_det": 20, "class_agnostic": False, **changes}}


# (case id, deploy.json changes or a builder, what the one-line message must name)
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
    ("deploy.json a link out", "deploy_link", "deploy.json is a link to a file outside the deployment folder"),
]


def hostile_folder(root, tiny_onnx, case):
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
    elif isinstance(case, dict):
        record.update(case)
    if case != "symlink":
        (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    text = json.dumps(record)
    if case == "nested":
        text = "[" * 100_000 + "]" * 100_000
    if case == "deploy_link":
        (root / "elsewhere.json").write_text(text)
        os.symlink(root / "elsewhere.json", folder / "deploy.json")
    else:
        (folder / "deploy.json").write_text(text)
    return folder


@pytest.mark.parametrize("case, message", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_deploy_json_is_one_line_everywhere(tmp_path, tiny_onnx, case, message, capsys):
    folder = hostile_folder(tmp_path, tiny_onnx, case)
    with pytest.raises(ModelFileError) as info:
        Detector(folder)
    assert message in str(info.value) and "\n" not in str(info.value)

    image = tmp_path / "image.png"
    import cv2
    import numpy as np
    cv2.imwrite(str(image), np.zeros((64, 96, 3), np.uint8))
    assert detect_cli.main([str(image), "--model", str(folder), "--save-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("yolox-detect: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_yolox_tune_refuses_to_overwrite_a_hostile_folder_in_one_line(tmp_path, tiny_onnx, capsys):
    pytest.importorskip("pycocotools")
    pytest.importorskip("matplotlib")
    from yolox_deploy.cli import tune as tune_cli

    data = tmp_path / "data"
    data.mkdir()
    for number, (case_id, case, message) in enumerate(HOSTILE):
        root = tmp_path / f"case{number}"
        root.mkdir()
        folder = hostile_folder(root, tiny_onnx, case)
        before = sorted(p.name for p in folder.iterdir())
        rc = tune_cli.main(["--model", str(tiny_onnx), "--data", str(data), "-o", str(folder), "--budget-s", "5"])
        err = capsys.readouterr().err.strip()
        assert rc == 2, case_id
        assert err.startswith("yolox-tune: error: ") and "\n" not in err, (case_id, err)
        assert "holds a broken deployment" in err and message in err, (case_id, err)
        assert sorted(p.name for p in folder.iterdir()) == before, case_id


def test_a_symlinked_deployment_folder_is_fine_when_its_files_are_inside(tmp_path, tiny_onnx):
    """The folder itself may be reached through a link: what matters is where its files resolve."""
    folder = hostile_folder(tmp_path, tiny_onnx, {})
    os.symlink(folder, tmp_path / "link")
    assert Detector(tmp_path / "link").conf == 0.4
