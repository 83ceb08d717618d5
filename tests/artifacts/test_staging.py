"""Exports land whole or not at all: nothing of a failed export is left where a user or a cache
would pick it up, and an earlier export at the same path stays as it was."""
from __future__ import annotations

import pytest

from yolox_deploy.artifacts.staging import staged_into
from yolox_deploy.errors import YoloxDeployError


def test_files_move_into_place_only_when_the_block_succeeds(tmp_path):
    (tmp_path / "m.param").write_text("old")
    (tmp_path / "other.txt").write_text("untouched")
    with staged_into(tmp_path) as stage:
        (stage / "m.param").write_text("new")
        (stage / "m.bin").write_bytes(b"\0")
        (stage / "model_dir" / "1").mkdir(parents=True)
        assert not (tmp_path / "m.bin").exists()  # nothing visible before the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.param", "model_dir", "other.txt"]
    assert (tmp_path / "m.param").read_text() == "new" and (tmp_path / "model_dir" / "1").is_dir()
    with staged_into(tmp_path) as stage:  # a folder replaces its namesake whole
        (stage / "model_dir").mkdir()
        (stage / "model_dir" / "config.pbtxt").write_text("x")
    assert [p.name for p in (tmp_path / "model_dir").iterdir()] == ["config.pbtxt"]


def test_a_failing_block_leaves_the_destination_as_it_was(tmp_path):
    (tmp_path / "m.param").write_text("old")
    with pytest.raises(YoloxDeployError, match="check failed"):
        with staged_into(tmp_path) as stage:
            (stage / "m.param").write_text("half-written")
            (stage / "m.bin").write_bytes(b"\0")
            raise YoloxDeployError("check failed")
    assert [p.name for p in tmp_path.iterdir()] == ["m.param"] and (tmp_path / "m.param").read_text() == "old"


def test_a_failed_onnx_export_leaves_nothing_behind(tmp_path, tiny_checkpoint, monkeypatch):
    pytest.importorskip("torch")
    import yolox_deploy.exporters.onnx as onnx_export

    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(YoloxDeployError, match="exported ONNX differs from PyTorch"):
        onnx_export.export_onnx(tmp_path / "t.onnx", weights=tiny_checkpoint, input_size=(64, 96))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_triton_export_leaves_the_repository_as_it_was(tmp_path, tiny_onnx, monkeypatch):
    pytest.importorskip("tritonclient.grpc")
    import yolox_deploy.exporters.triton as triton_export

    repo = tmp_path / "repo"
    (repo / "someone_elses_model" / "1").mkdir(parents=True)

    def broken(*args, **kwargs):
        raise YoloxDeployError("ensemble config failed")

    monkeypatch.setattr(triton_export, "ensemble_config", broken)  # fails after two of three models are written
    with pytest.raises(YoloxDeployError, match="ensemble config failed"):
        triton_export.export_triton(repo, weights=tiny_onnx, max_batch=4)
    assert [p.name for p in repo.iterdir()] == ["someone_elses_model"]


KILLED_AT = """
import os, shutil, signal, sys
from pathlib import Path
from yolox_deploy.artifacts import staging
mode, step, destination = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
events = [0]

def gate():
    events[0] += 1
    if events[0] == step:
        os.kill(os.getpid(), signal.SIGKILL)

real_exchange, real_replace, real_rmtree = staging._exchange, os.replace, shutil.rmtree
staging._exchange = (lambda a, b: gate() or real_exchange(a, b)) if mode == "exchange" else (lambda a, b: False)
os.replace = lambda *a, **k: gate() or real_replace(*a, **k)
shutil.rmtree = lambda *a, **k: gate() or real_rmtree(*a, **k)
with staging.staged_folder(destination) as stage:
    (stage / "model.onnx").write_text("new")
    (stage / "deploy.json").write_text("new")
"""


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_a_process_killed_at_any_step_of_the_swap_leaves_one_whole_folder(tmp_path, mode, step):
    """SIGKILL before each step of the swap (exchange / the fallback's two renames, then the
    clean-up): the folder is the old one or the new one, whole; with the atomic exchange it is
    never missing; the next run (recover_folder) clears every staging or old folder and puts the
    old folder back if the kill fell between the fallback's two renames."""
    import signal
    import subprocess
    import sys

    from yolox_deploy.artifacts.staging import _exchange, recover_folder

    probes = [tmp_path / "probe-a", tmp_path / "probe-b"]
    for probe in probes:
        probe.mkdir()
    exchanges = _exchange(*probes)
    for probe in probes:
        probe.rmdir()
    if mode == "exchange" and not exchanges:
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this kernel or file system")
    destination = tmp_path / "deploy"
    destination.mkdir()
    (destination / "model.xml").write_text("old")
    done = subprocess.run([sys.executable, "-c", KILLED_AT, mode, str(step), str(destination)], timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr

    def content() -> list[str]:
        return sorted(p.name for p in destination.iterdir())

    old, new = ["model.xml"], ["deploy.json", "model.onnx"]
    if mode == "fallback" and step == 2:
        assert not destination.exists()  # the fallback's window: old folder aside, new one not yet in
    else:
        assert content() == (old if step == 1 else new)
    recover_folder(destination)
    assert content() == (old if step == 1 or (mode == "fallback" and step == 2) else new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]  # no staging or old folder left
