"""Exporters: PyTorch -> ONNX (and later ONNX -> TensorRT, OpenVINO, ncnn).

Each module registers one export function under the ``--to`` name it serves; the modules
import their heavy dependencies only when called.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
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
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
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


__all__ = ["export_targets", "exporter_source", "get_exporter", "register"]
