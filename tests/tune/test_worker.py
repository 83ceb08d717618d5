"""The export child: a step past its deadline is killed and leaves no half-written file in
the cache; the next request starts a new child; the child's errors come back as one line."""
from __future__ import annotations

import time

import pytest

from yolox_deploy.errors import YoloxDeployError
from yolox_deploy.measure.config import BenchConfig
from yolox_deploy.measure.models import ModelCache
from yolox_deploy.tune.worker import ExportWorker, StepCut


def cache_files(cache: ModelCache) -> set:
    return {p for p in cache.dir.rglob("*") if p.is_file()}


def test_a_cut_export_leaves_nothing_and_the_next_one_runs(nano_pth, tmp_path):
    cfg = BenchConfig(backends=(), weights=nano_pth, cache_dir=tmp_path, progress=False)
    cache = ModelCache(cfg)
    worker = ExportWorker(cfg, cache.dir)
    try:
        started = time.monotonic()
        with pytest.raises(StepCut) as cut:
            worker.model_for("onnxruntime", "fp32", deadline=time.monotonic() + 0.3)  # the export takes seconds
        assert time.monotonic() - started < 5 and cut.value.elapsed_s >= 0.3
        assert "cut after" in str(cut.value) and worker.process is None
        assert cache_files(cache) == set()
        path = worker.model_for("onnxruntime", "fp32", deadline=time.monotonic() + 300)
        assert path.is_file() and path.parent == cache.dir and cache_files(cache) == {path}
        with pytest.raises(YoloxDeployError) as failed:
            worker.model_for("torch", "int8", deadline=time.monotonic() + 60)
        assert "\n" not in str(failed.value) and "int8 is not offered" in str(failed.value)
    finally:
        worker.close()
    assert worker.process is None


def test_a_killed_export_removes_only_its_own_files(nano_pth, tmp_path):
    """The child dies mid-export (here: SIGKILL once its staging folder exists) while another run
    finishes an export into the same cache: the child's staging folder goes, the other run's file
    stays (every file that appeared meanwhile was deleted)."""
    import os
    import signal
    import threading

    cfg = BenchConfig(backends=(), weights=nano_pth, cache_dir=tmp_path, progress=False)
    cache = ModelCache(cfg)
    worker = ExportWorker(cfg, cache.dir)
    other = cache.dir / "another-run.onnx"

    def kill_mid_export() -> None:
        for _ in range(1200):
            if worker.process is not None and list(cache.dir.rglob(f".yolox-export-{worker.process.pid}-*")):
                other.write_bytes(b"finished by another yolox-bench")
                os.kill(worker.process.pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_export)
    killer.start()
    try:
        with pytest.raises(YoloxDeployError, match=r"^the export process died \(exit code -9\)$"):
            worker.model_for("onnxruntime", "fp32", deadline=time.monotonic() + 300)
    finally:
        killer.join()
        worker.close()
    assert other.is_file()
    assert not [p for p in cache.dir.rglob(".yolox-export-*")]
