"""Sidecar JSON files: the metadata that travels next to model formats without a place for
it (ncnn ``.param``/``.bin``, TensorRT engines). ``model.param`` -> ``model.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelFileError


def sidecar_path(model: str | Path) -> Path:
    return Path(model).with_suffix(".json")


def write_sidecar(model: Path, fmt: str, fields: dict[str, Any]) -> Path:
    """Write ``{"format": fmt, **fields}`` beside ``model``; returns the sidecar's path."""
    path = sidecar_path(model)
    path.write_text(json.dumps({"format": fmt, **fields}, indent=2) + "\n", encoding="utf-8")
    return path


def read_sidecar(model: Path, fmt: str, what: str, made_by: str) -> dict[str, Any]:
    """The sidecar of ``model``, checked to be JSON of format ``fmt``; ``what`` says what it
    holds and ``made_by`` which command writes it (both for the error messages)."""
    path = sidecar_path(model)
    if not path.is_file():
        raise ModelFileError(f"{model.name} has no sidecar {path.name} ({what}): {made_by}, which writes it")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path.name} is not valid JSON ({exc}); {made_by} again") from None
    found = sidecar.get("format") if isinstance(sidecar, dict) else None
    if found != fmt:
        raise ModelFileError(f"{path.name} is not a yolox_deploy {fmt.split('/')[0].split('.')[-1]} sidecar "
                             f"(format {found!r}, expected {fmt!r})")
    return sidecar
