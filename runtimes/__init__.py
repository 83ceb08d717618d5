"""Runtime backends behind one protocol (:class:`~yolox_deploy.runtimes.base.Backend`), found by
name or by model-file suffix (:mod:`~yolox_deploy.runtimes.registry`).

A new backend is one module here: a ``Backend`` subclass decorated with
``@register`` (``from .registry import register``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Backend, InputShape
from .registry import backend_for_path, backend_names, backends_offering, get_backend_class, register


def load_backend(model: str | Path, backend: str | None = None, device: str | None = None,
                 **options: Any) -> Backend:
    """Open ``model`` with the named backend, or the one its suffix implies, on ``device``
    (None: the backend's default, "cpu" for all but tensorrt's "cuda")."""
    name = backend or backend_for_path(model)
    return get_backend_class(name)(model, **({"device": device} if device else {}), **options)


__all__ = ["Backend", "InputShape", "backend_for_path", "backend_names", "backends_offering", "get_backend_class",
           "load_backend", "register"]
