"""Runtime backends behind one protocol, found by name or by model-file suffix.

Each module in this package defines one :class:`Backend` subclass and registers it with
:func:`register`; the modules are imported on first use, and import their heavy
dependencies (torch, onnxruntime ...) only when a model is loaded.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from .base import Backend, InputShape

_REGISTRY: dict[str, type[Backend]] = {}
_discovered = False


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base":
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True


def backend_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def backends_offering(precision: str) -> list[str]:
    """Names of the backends that can be asked to compute in ``precision`` ('bf16' ...)."""
    _discover()
    return sorted(name for name, cls in _REGISTRY.items() if precision in cls.precisions)


def get_backend_class(name: str) -> type[Backend]:
    _discover()
    if name not in _REGISTRY:
        raise ModelFileError(f"unknown backend {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def backend_for_path(path: str | Path) -> str:
    """The backend that loads files with this suffix."""
    _discover()
    suffix = Path(path).suffix.lower()
    for name, cls in sorted(_REGISTRY.items()):
        if suffix in cls.suffixes:
            return name
    known = sorted(s for cls in _REGISTRY.values() for s in cls.suffixes)
    raise ModelFileError(f"cannot tell which backend loads {Path(path).name!r}: unknown model file kind "
                         f"{suffix or '(no suffix)'}; known: {', '.join(known)}, or pass backend=")


def load_backend(model: str | Path, backend: str | None = None, device: str | None = None,
                 **options: Any) -> Backend:
    """Open ``model`` with the named backend, or the one its suffix implies, on ``device``
    (None: the backend's default, "cpu" for all but tensorrt's "cuda")."""
    name = backend or backend_for_path(model)
    return get_backend_class(name)(model, **({"device": device} if device else {}), **options)


__all__ = ["Backend", "InputShape", "backend_for_path", "backend_names", "backends_offering", "get_backend_class",
           "load_backend", "register"]
