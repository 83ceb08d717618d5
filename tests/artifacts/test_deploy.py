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
    # the recorded machine is built from this one, so the test holds on any CPU (bf16/AMX, x86, aarch64)
    here = machine_fingerprint()
    machine = {**here, "cpu": "Some Other CPU", "cpu_features": [*here["cpu_features"], "zz_feature_of_another_cpu"]}
    folder = deployment(tmp_path / "d", machine=machine)
    (folder / "model.onnx").write_bytes(nano_onnx.read_bytes())
    with pytest.warns(MachineMismatchWarning) as caught:
        det = Detector(folder)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "'Some Other CPU'" in str(caught[0].message) and "-zz_feature_of_another_cpu" in str(caught[0].message)
    assert len(det(coco_images[0])) > 0


def test_fingerprint_differences_between_two_made_up_machines():
    with_amx = {"cpu": "Xeon", "machine": "x86_64", "cores": 8, "cpu_features": ["avx512_bf16", "amx_bf16"],
                "versions": {"openvino": "2026.1"}}
    without = {**with_amx, "cpu": "EPYC", "cpu_features": ["avx2"]}
    notes = fingerprint_differences(with_amx, without, "openvino")
    assert notes == ["CPU 'Xeon' -> 'EPYC'", "CPU features -amx_bf16, -avx512_bf16, +avx2"]
    assert fingerprint_differences(without, with_amx, "openvino")[1] == "CPU features -avx2, +amx_bf16, +avx512_bf16"
    assert fingerprint_differences(with_amx, with_amx, "openvino") == []
    older = {**with_amx, "versions": {"openvino": "2023.0"}, "postprocess_kernel": False}
    assert fingerprint_differences(older, {**with_amx, "postprocess_kernel": True}, "openvino") == [
        "C++ postprocess kernel built False -> True", "openvino 2023.0 -> 2026.1"]
    # only the backend's own library counts
    assert fingerprint_differences(older, {**with_amx, "postprocess_kernel": False}, "onnxruntime") == []
    broken = {**with_amx, "cpu_features": 5, "versions": ["x"]}  # a corrupted deploy.json: no crash
    assert fingerprint_differences(broken, with_amx, "openvino")[0].startswith("CPU features +")


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
