"""Deployment folders (written by ``yolox-tune``): one model file plus ``deploy.json``, which
says how to run it (backend, precision, threads, batch, Detector thresholds), why it was
chosen (every candidate measured) and where it was measured (the machine fingerprint).

``Detector(folder)`` and every CLI's ``--model folder`` load it through
:func:`read_deployment`; on a machine whose fingerprint differs it warns once per load, in
one line, and still runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from .machine import fingerprint_differences, machine_fingerprint

DEPLOY_FILE = "deploy.json"
DEPLOY_FORMAT = "yolox_deploy.deployment/1"


class MachineMismatchWarning(UserWarning):
    """A deployment runs on another kind of machine than the one it was tuned on."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_deployment(path: str | Path) -> bool:
    """True for a folder holding a ``deploy.json``."""
    return Path(path).is_dir() and (Path(path) / DEPLOY_FILE).is_file()


@dataclasses.dataclass(frozen=True)
class Deployment:
    """The parts of ``deploy.json`` that decide how the model runs; ``record`` is all of it."""

    folder: Path
    model_file: str  # relative to the folder
    backend: str
    precision: str  # the candidate's precision: fp32, fp16, int8, int8-all, int8-nncf, bf16
    arithmetic: str  # what the runtime is asked to compute in (fp32, bf16)
    threads: int | None
    batch: int
    detector: dict[str, Any]  # conf, iou, max_det, class_agnostic
    input_size: tuple[int, int] | None  # (height, width) it was measured at
    source_sha256: str
    record: dict[str, Any]

    @property
    def model(self) -> Path:
        return self.folder / self.model_file

    def backend_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with the deployment's threads and precision where the caller left them unset."""
        merged = dict(options)
        if merged.get("threads") is None:
            merged["threads"] = self.threads
        if merged.get("precision") is None:
            merged["precision"] = self.arithmetic
        return merged


_REQUIRED = ("model_file", "backend", "precision", "arithmetic", "threads", "batch", "detector", "machine")


def read_deployment(folder: str | Path, check_machine: bool = True) -> Deployment:
    """The deployment in ``folder``; warns (:class:`MachineMismatchWarning`, one line) when this
    machine differs from the one it was tuned on."""
    folder = Path(folder)
    path = folder / DEPLOY_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{folder} has no {DEPLOY_FILE}: it is not a deployment folder (yolox-tune writes "
                             "them); pass a model file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); re-run yolox-tune") from None
    if not isinstance(record, dict) or record.get("format") != DEPLOY_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ModelFileError(f"{path} is not a yolox_deploy deployment (format {found!r}, expected "
                             f"{DEPLOY_FORMAT!r})")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}; re-run yolox-tune")
    deployment = Deployment(folder=folder, model_file=str(record["model_file"]), backend=str(record["backend"]),
                            precision=str(record["precision"]), arithmetic=str(record["arithmetic"]),
                            threads=record["threads"], batch=int(record["batch"]), detector=dict(record["detector"]),
                            input_size=_input_size(record),
                            source_sha256=str(record.get("source", {}).get("sha256", "")), record=record)
    if not deployment.model.is_file():
        raise ModelFileError(f"{folder} names {deployment.model_file} in {DEPLOY_FILE} but the file is missing; "
                             "re-run yolox-tune")
    if check_machine:
        warn_if_other_machine(deployment)
    return deployment


def _input_size(record: dict[str, Any]) -> tuple[int, int] | None:
    size = (record.get("model") or {}).get("input_size")
    return (int(size[0]), int(size[1])) if size else None


def warn_if_other_machine(deployment: Deployment) -> list[str]:
    """Warn in one line when this machine is not the kind the deployment was measured on."""
    notes = fingerprint_differences(deployment.record["machine"], machine_fingerprint(), deployment.backend)
    if notes:
        warnings.warn(f"{deployment.folder.name} was tuned on another machine ({'; '.join(notes)}): it runs, but "
                      "its choice may not be the fastest here; run yolox-tune on this machine to re-choose",
                      MachineMismatchWarning, stacklevel=3)
    return notes


def write_deployment(folder: Path, record: dict[str, Any]) -> Path:
    """Write ``deploy.json`` (with its format tag) into ``folder``; returns its path."""
    path = folder / DEPLOY_FILE
    path.write_text(json.dumps({"format": DEPLOY_FORMAT, **record}, indent=1, default=str) + "\n", encoding="utf-8")
    return path
