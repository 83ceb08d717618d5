"""Exports (and INT8 calibration, NNCF included) in a child process with a deadline, so a
step that cannot finish within the budget is cut instead of overrunning it.

One child (``spawn``: no runtime threads are forked) serves every export of a run; a child
past its deadline is killed, the files it left half-written in the cache are removed, and
the next export starts a new one.
"""
from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

from ..artifacts.staging import export_stage_prefix
from ..errors import YoloxDeployError
from ..measure.config import BenchConfig


class StepCut(Exception):
    """A step ran past its deadline and was stopped after ``elapsed_s``."""

    def __init__(self, elapsed_s: float):
        super().__init__(f"cut after {elapsed_s:.1f} s (budget)")
        self.elapsed_s = elapsed_s


def _serve(connection: Any, cfg: BenchConfig) -> None:
    from ..errors import first_line
    from ..measure.models import ModelCache

    cache = ModelCache(cfg)
    while True:
        request = connection.recv()
        if request is None:
            return
        try:
            kind, args = request
            if kind == "harm":
                from .mixed_int8 import group_harm

                connection.send(("ok", group_harm(cache.onnx(), Path(cache.cfg.data), cache.input_size)))
                continue
            path = cache.mixed_int8_onnx(*args) if kind == "mixed" else cache.model_for(*args)
            connection.send(("ok", str(path)))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as one line
            connection.send(("error", f"{type(exc).__name__}: {first_line(exc)}"
                             if not isinstance(exc, (YoloxDeployError, ImportError)) else first_line(exc)))


class ExportWorker:
    """``model_for(backend, precision, deadline)`` of a :class:`ModelCache` built from ``cfg``,
    run in the child."""

    def __init__(self, cfg: BenchConfig, cache_dir: Path):
        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.process: Any = None
        self.connection: Any = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.cfg), daemon=True)
        self.process.start()
        child.close()

    def model_for(self, backend: str, precision: str, deadline: float) -> Path:
        """The model file, or :class:`StepCut` at ``deadline`` (time.monotonic), or the
        child's one-line error as :class:`YoloxDeployError`."""
        return Path(self._request(("model", (backend, precision)), deadline))

    def mixed_int8(self, float_convs: list[str], deadline: float) -> Path:
        """The Q/DQ INT8 ONNX with ``float_convs`` kept float (see :meth:`model_for`)."""
        return Path(self._request(("mixed", (list(float_convs),)), deadline))

    def group_harm(self, deadline: float) -> list[tuple[list[str], float]]:
        """:func:`~yolox_deploy.tune.mixed_int8.group_harm` on the cache's FP32 ONNX and
        calibration images (quantizations: in the child, with the deadline)."""
        return self._request(("harm", ()), deadline)

    def _request(self, request: tuple, deadline: float) -> Any:
        started = time.monotonic()
        if self.process is None or not self.process.is_alive():
            self._start()
        self.connection.send(request)
        if not self.connection.poll(max(0.0, deadline - time.monotonic())):
            self.kill()
            raise StepCut(time.monotonic() - started)
        try:
            status, value = self.connection.recv()
        except EOFError:
            self.process.join(timeout=5)  # the pipe can close before the child is reaped: wait for its code
            code = self.process.exitcode
            self.kill()
            raise YoloxDeployError(f"the export process died (exit code {code})") from None
        if status != "ok":
            raise YoloxDeployError(value)
        return value

    def kill(self) -> None:
        """Stop the child and remove the staging folders it left in the cache: only its own (named
        after its PID), so that files another yolox-bench or yolox-tune wrote there meanwhile stay."""
        if self.process is not None:
            pid = self.process.pid
            self.process.kill()
            self.process.join()
            self.process = None
            for stage in self.cache_dir.rglob(f"{export_stage_prefix(pid)}*"):
                shutil.rmtree(stage, ignore_errors=True)

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            try:
                self.connection.send(None)
                self.process.join(timeout=5)
            except (BrokenPipeError, OSError):
                pass
        self.kill()
