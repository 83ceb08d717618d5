"""Corrupted and hostile deploy.json files: each is refused in one line naming the field,
through Detector, yolox-detect --model and yolox-tune -o, and nothing outside the folder is
ever opened."""
from __future__ import annotations

import os

import pytest

from yolox_deploy import Detector
from hostile_deploy_cases import HOSTILE, hostile_folder  # tests/: shared with the C++ library's tests
from yolox_deploy.cli import detect as detect_cli
from yolox_deploy.errors import ModelFileError


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
