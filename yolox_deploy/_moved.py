"""Module paths from before the core was grouped into ``processing``, ``video`` and
``artifacts`` keep importing: ``yolox_deploy.streaming`` is ``yolox_deploy.video.streaming``
(the same module object, so patching one patches the other), with a DeprecationWarning that
names the new path."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

_GROUPS = {
    "processing": ("images", "imagesize", "preprocess", "grids", "nms", "postprocess", "end_to_end", "_kernel"),
    "video": ("streaming", "multistream", "tracking"),
    "artifacts": ("metadata", "sidecar", "staging", "onnx_inspect", "onnx_pixels", "calibration", "tensorrt_engines",
                  "engine_cache"),
}
MOVED = {f"yolox_deploy.{name}": f"yolox_deploy.{group}.{name}" for group, names in _GROUPS.items() for name in names}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and hands back the module at its new one."""

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system has just set the old path's spec on the shared module: give it back its own
        module.__spec__ = self._own_specs.pop(module.__spec__.name)


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
