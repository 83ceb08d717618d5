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
_discovered = False


def register(*targets: str) -> Callable[[Exporter], Exporter]:
    """Decorator: serve ``yolox-export --to TARGET`` for each target name."""
    def wrap(fn: Exporter) -> Exporter:
        for target in targets:
            _REGISTRY[target] = fn
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


__all__ = ["export_targets", "get_exporter", "register"]
