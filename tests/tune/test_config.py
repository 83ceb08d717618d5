"""yolox-tune's request checks: --force never replaces the user's data, weights, working,
home or root folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolox_deploy.cli import tune as tune_cli


@pytest.fixture
def layout(tmp_path, tiny_onnx, monkeypatch):
    """A home with a project folder holding the images and the weights; the cwd is the project."""
    home = tmp_path / "home"
    project = home / "project"
    (project / "images").mkdir(parents=True)
    (project / "images" / "a.jpg").write_bytes(b"user data")
    (project / "weights").mkdir()
    (project / "weights" / "tiny.onnx").write_bytes(tiny_onnx.read_bytes())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    return project


def force(capsys, project, output):
    rc = tune_cli.main(["--model", str(project / "weights" / "tiny.onnx"), "--data", str(project / "images"),
                        "-o", str(output), "--force", "--budget-s", "5"])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("output, says", [
    ("images", "is --data"),
    ("images/deploy", "lies inside --data"),
    ("weights", "is the weights' folder"),
    ("weights/deploy", "lies inside the weights' folder"),
    (".", "is the current directory"),
    ("..", "is the home directory"),
    ("../..", "holds --data"),
    ("/", "is a filesystem root"),
])
def test_force_refuses_the_users_folders_in_one_line(capsys, layout, output, says):
    before = sorted(str(p.relative_to(layout)) for p in layout.rglob("*"))
    rc, err = force(capsys, layout, output)
    assert rc == 2 and err.startswith("yolox-tune: error: -o ") and "\n" not in err
    assert says in err and "--force would replace it whole" in err
    assert sorted(str(p.relative_to(layout)) for p in layout.rglob("*")) == before


def test_force_refuses_home_and_a_symlink_to_the_data(capsys, layout, tmp_path):
    os.symlink(layout / "images", tmp_path / "link")
    rc, err = force(capsys, layout, tmp_path / "link")
    assert rc == 2 and "is --data" in err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    rc, err = force(capsys, layout, Path.home())
    assert rc == 2 and "is the home directory" in err


def test_force_allows_a_dedicated_folder(capsys, layout, tmp_path):
    """A folder of its own (here beside the project) passes the check; the run then goes on
    to read --data (which holds no image this model can use here) and stops there."""
    target = tmp_path / "deploy"
    target.mkdir()
    (target / "old.txt").write_text("old")
    rc, err = force(capsys, layout, target)
    assert "--force would replace it whole" not in err
