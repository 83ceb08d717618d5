"""The backend registry: each module of ``yolox_deploy.runtimes`` defines one :class:`Backend`
subclass and registers it here with :func:`register`. The modules are imported on the first
lookup (by name, by file suffix, by precision) and import their heavy dependencies (torch,
onnxruntime ...) only when a model is loaded."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts.deploy import DEPLOY_FILE, is_deployment, read_deployment
from ..errors import ModelFileError

if TYPE_CHECKING:
    from .base import Backend

_REGISTRY: dict[str, type[Backend]] = {}
_NOT_BACKENDS = {"base", "registry"}
_discovered = False


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if not _discovered:
        package = __name__.rpartition(".")[0]
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if info.name not in _NOT_BACKENDS:
                importlib.import_module(f"{package}.{info.name}")
        _discovered = True


def backend_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def backends_offering(precision: str) -> list[str]:
    """Names of the backends that can be asked to compute in ``precision`` ('bf16' ...)."""
    _discover()
    return sorted(name for name, cls in _REGISTRY.items() if precision in cls.precisions)


def runtime_error_types() -> tuple[type[BaseException], ...]:
    """The typed exceptions of every backend's runtime that is imported in this process."""
    _discover()
    return tuple(dict.fromkeys(e for cls in _REGISTRY.values() for e in cls.runtime_errors()))


def get_backend_class(name: str) -> type[Backend]:
    _discover()
    if name not in _REGISTRY:
        raise ModelFileError(f"unknown backend {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def backend_for_path(path: str | Path) -> str:
    """The backend that loads files with this suffix."""
    _discover()
    if Path(path).is_dir():
        if is_deployment(path):
            return read_deployment(path, check_machine=False).backend
        raise ModelFileError(f"{Path(path).name}/ is a folder without {DEPLOY_FILE}: give a model file, or a "
                             "deployment folder that yolox-tune wrote")
    suffix = Path(path).suffix.lower()
    for name, cls in sorted(_REGISTRY.items()):
        if suffix in cls.suffixes:
            return name
    known = sorted(s for cls in _REGISTRY.values() for s in cls.suffixes)
    raise ModelFileError(f"cannot tell which backend loads {Path(path).name!r}: unknown model file kind "
                         f"{suffix or '(no suffix)'}; known: {', '.join(known)}, or pass backend=")
