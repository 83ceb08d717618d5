"""The exporter registry: each module of ``yolox_deploy.exporters`` registers one export
function under the ``--to`` targets it serves; the modules are imported on the first lookup
and import their heavy dependencies only when called."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import YoloxDeployError

Exporter = Callable[..., Any]
_REGISTRY: dict[str, Exporter] = {}
_SOURCES: dict[str, str] = {}  # target -> "checkpoint" or "onnx": what the exporter converts best
_discovered = False


def register(*targets: str, source: str = "checkpoint") -> Callable[[Exporter], Exporter]:
    """Decorator: serve ``yolox-export --to TARGET`` for each target name. ``source`` says
    which file the exporter wants as ``weights``: a ``"checkpoint"`` (.pth) or an ``"onnx"``."""
    def wrap(fn: Exporter) -> Exporter:
        for target in targets:
            _REGISTRY[target] = fn
            _SOURCES[target] = source
        return fn
    return wrap


def _discover() -> None:
    global _discovered
    if not _discovered:
        package = __name__.rpartition(".")[0]
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if info.name != "registry":
                importlib.import_module(f"{package}.{info.name}")
        _discovered = True


def export_targets() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_exporter(target: str) -> Exporter:
    _discover()
    if target not in _REGISTRY:
        raise YoloxDeployError(f"no exporter for --to {target!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[target]


def exporter_source(target: str) -> str:
    """"checkpoint" or "onnx": the kind of file ``get_exporter(target)`` converts."""
    get_exporter(target)
    return _SOURCES[target]
