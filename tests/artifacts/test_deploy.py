"""Deployment folders: read back with one-line errors, compared with this machine, and
replaced whole or not at all."""
from __future__ import annotations

import json

import pytest

from yolox_deploy import Detector
from yolox_deploy.artifacts.deploy import DEPLOY_FORMAT, MachineMismatchWarning, read_deployment, write_deployment
from yolox_deploy.artifacts.machine import fingerprint_differences, machine_fingerprint
from yolox_deploy.artifacts.staging import staged_folder
from yolox_deploy.errors import ModelFileError


def deployment(folder, model_file="model.onnx", **changes):
    folder.mkdir(exist_ok=True)
    record = {"model_file": model_file, "backend": "onnxruntime", "precision": "fp32", "arithmetic": "fp32",
              "threads": 1, "batch": 1, "detector": {"conf": 0.4, "iou": 0.5, "max_det": 20, "class_agnostic": False},
              "source": {"sha256": "ab"}, "machine": machine_fingerprint(), **changes}
    write_deployment(folder, record)
    return folder


def test_a_folder_made_here_loads_with_its_settings_and_no_warning(tmp_path, nano_onnx, recwarn):
    folder = deployment(tmp_path / "d")
    (folder / "model.onnx").write_bytes(nano_onnx.read_bytes())
    det = Detector(folder)
    assert (det.conf, det.iou, det.max_det) == (0.4, 0.5, 20)  # the batch: tests/tune (a dynamic-batch model)
    assert det.backend.name == "onnxruntime" and det.backend.deployment.threads == 1
    assert Detector(folder, conf=0.6, batch_size=1).conf == 0.6  # the caller's values win
    assert not [w for w in recwarn if issubclass(w.category, MachineMismatchWarning)]


def test_another_machine_warns_once_per_load_and_still_runs(tmp_path, nano_onnx, coco_images):
    machine = {**machine_fingerprint(), "cpu": "Some Other CPU", "cpu_features": ["avx512_bf16"]}
    folder = deployment(tmp_path / "d", machine=machine)
    (folder / "model.onnx").write_bytes(nano_onnx.read_bytes())
    with pytest.warns(MachineMismatchWarning) as caught:
        det = Detector(folder)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "'Some Other CPU'" in str(caught[0].message) and "-avx512_bf16" in str(caught[0].message)
    assert len(det(coco_images[0])) > 0


def test_fingerprint_differences_name_what_changed():
    here = machine_fingerprint()
    assert fingerprint_differences(here, here, "openvino") == []
    other = {**here, "cores": 96, "versions": {**here["versions"], "openvino": "2023.0"}}
    notes = fingerprint_differences(other, here, "openvino")
    assert any(n.startswith("cores 96") for n in notes) and any(n.startswith("openvino 2023.0") for n in notes)
    assert not any("openvino" in n for n in fingerprint_differences(other, here, "onnxruntime"))


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    (json.dumps({"format": "something else"}), "not a yolox_deploy deployment"),
    (json.dumps({"format": DEPLOY_FORMAT, "backend": "onnxruntime"}), "lacks model_file"),
])
def test_a_broken_deploy_json_is_one_line(tmp_path, content, message):
    (tmp_path / "deploy.json").write_text(content)
    with pytest.raises(ModelFileError, match=message) as info:
        Detector(tmp_path)
    assert "\n" not in str(info.value)


def test_a_missing_model_file_and_a_plain_folder_are_one_line(tmp_path):
    folder = deployment(tmp_path / "d")
    with pytest.raises(ModelFileError, match="names model.onnx in deploy.json but the file is missing"):
        read_deployment(folder)
    with pytest.raises(ModelFileError, match="folder without deploy.json"):
        Detector(tmp_path)


def test_staged_folder_replaces_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "deploy"
    target.mkdir()
    (target / "old.xml").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(target) as stage:
            (stage / "model.onnx").write_text("new")
            raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["old.xml"]
    with staged_folder(target) as stage:
        (stage / "model.onnx").write_text("new")
        assert not (target / "model.onnx").exists()
    assert [p.name for p in target.iterdir()] == ["model.onnx"]  # nothing of the old content stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]  # no staging or old folders left
