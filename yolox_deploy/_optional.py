"""Lazy imports of optional dependencies, with an error that names the pip extra."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendNotInstalledError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise a one-line error: ``pip install 'yolox-deploy[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"{purpose} needs the '{module}' package, which is not installed ({exc.msg}): "
            f"pip install 'yolox-deploy[{extra}]'") from None
