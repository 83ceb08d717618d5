"""Runtime backends behind one protocol (:class:`~yolox_deploy.runtimes.base.Backend`), found by
name or by model-file suffix (:mod:`~yolox_deploy.runtimes.registry`).

A new backend is one module here: a ``Backend`` subclass decorated with
``@register`` (``from .registry import register``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts.deploy import is_deployment, read_deployment
from .base import Backend, InputShape
from .registry import (backend_for_path, backend_names, backends_offering, get_backend_class, register,
                       runtime_error_types)


def load_backend(model: str | Path, backend: str | None = None, device: str | None = None,
                 **options: Any) -> Backend:
    """Open ``model`` with the named backend, or the one its suffix implies, on ``device``
    (None: the backend's default, "cpu" for all but tensorrt's "cuda"). A deployment folder
    (``yolox-tune -o``) opens its model with its backend, threads and precision, unless
    given here; the opened backend's ``deployment`` holds the rest (thresholds, batch)."""
    deployment = read_deployment(model) if is_deployment(model) else None
    if deployment is not None:
        model, backend = deployment.model, backend or deployment.backend
        options = deployment.backend_options(options)
    name = backend or backend_for_path(model)
    opened = get_backend_class(name)(model, **({"device": device} if device else {}), **options)
    opened.deployment = deployment
    return opened


__all__ = ["Backend", "InputShape", "backend_for_path", "backend_names", "backends_offering", "get_backend_class",
           "load_backend", "register", "runtime_error_types"]
