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
import re
import warnings
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, first_line
from ..precision import DEPLOYED_PRECISIONS, RUNTIME_PRECISIONS
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
    spinning: bool | None = None  # ONNX Runtime: intra-op threads spin-wait between runs (None: not recorded)

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
        if self.spinning is not None and merged.get("stop_spinning") is None:
            merged["stop_spinning"] = not self.spinning
        return merged


_REQUIRED = ("model_file", "backend", "precision", "arithmetic", "threads", "batch", "detector", "machine")
# files that travel with a model file of these kinds (same stem): OpenVINO weights, ncnn weights + sidecar,
# TensorRT sidecar
COMPANIONS = {".xml": (".bin",), ".param": (".bin", ".json"), ".engine": (".json",), ".plan": (".json",)}
MAX_THREADS = 4096
MAX_BATCH = 4096
MAX_DETECTIONS = 100_000
MAX_SIDE = 16384


def read_deployment(folder: str | Path, check_machine: bool = True) -> Deployment:
    """The deployment in ``folder``, every field type- and range-checked (one-line
    :class:`ModelFileError` naming the field); its model file(s) must lie inside the folder.
    Warns (:class:`MachineMismatchWarning`, one line) when this machine differs from the one
    it was tuned on."""
    folder = Path(folder)
    path = folder / DEPLOY_FILE
    record = _load_record(folder, path)
    field = _FieldReader(path, record)
    model_file = field.bare_file_name("model_file")
    model = field.optional_object("model", "an object (name, input_size)")
    source = field.optional_object("source", "an object (path, sha256)")
    deployment = Deployment(
        folder=folder, model_file=model_file, backend=field.name("backend"),
        precision=field.choice("precision", DEPLOYED_PRECISIONS), arithmetic=field.choice("arithmetic",
                                                                                         RUNTIME_PRECISIONS),
        threads=field.integer("threads", 1, MAX_THREADS, optional=True),
        batch=field.integer("batch", 1, MAX_BATCH),
        detector=_detector_settings(field),
        input_size=_input_size(field, model.get("input_size")),
        source_sha256=field.text("source.sha256", source.get("sha256", "")), record=record,
        spinning=_spinning(field))
    field.require(isinstance(record["machine"], dict), "machine", "an object (the machine fingerprint)")
    check_files_inside(folder, model_file, path)
    if check_machine:
        warn_if_other_machine(deployment)
    return deployment


def _load_record(folder: Path, path: Path) -> dict[str, Any]:
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise ModelFileError(f"{path} is a link to a file outside the deployment folder; a deployment folder "
                             "holds its own files: copy it in")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{folder} has no {DEPLOY_FILE}: it is not a deployment folder (yolox-tune writes "
                             "them); pass a model file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({first_line(exc)}); re-run yolox-tune") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not isinstance(record, dict) or record.get("format") != DEPLOY_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ModelFileError(f"{path} is not a yolox_deploy deployment (format {found!r}, expected "
                             f"{DEPLOY_FORMAT!r})")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise ModelFileError(f"{path} lacks {', '.join(missing)}; re-run yolox-tune")
    return record


class _FieldReader:
    """Reads one ``deploy.json`` field at a time; a wrong type or value is a one-line
    :class:`ModelFileError` naming the field, what it holds and what it must be."""

    def __init__(self, path: Path, record: dict[str, Any]):
        self.path, self.record = path, record

    def require(self, ok: bool, name: str, must_be: str, value: Any = None) -> None:
        if not ok:
            shown = value if value is not None else self._get(name)
            raise ModelFileError(f"{self.path}: field {name!r} is {_short(shown)}, it must be {must_be}; "
                                 "re-run yolox-tune")

    def _get(self, name: str) -> Any:
        value: Any = self.record
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def optional_object(self, name: str, must_be: str) -> dict[str, Any]:
        """A top-level object that may be absent (then empty), never another type."""
        value = self.record.get(name, {})
        self.require(isinstance(value, dict), name, must_be, value)
        return value

    def text(self, name: str, value: Any = None) -> str:
        value = self._get(name) if value is None else value
        self.require(isinstance(value, str), name, "a string", value)
        return value

    def name(self, name: str) -> str:
        value = self.text(name)
        self.require(bool(re.fullmatch(r"[a-z][a-z0-9_]{0,31}", value)), name, "a backend name (onnxruntime, "
                     "openvino ...)")
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name)
        self.require(value in allowed, name, f"one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, low: int, high: int, optional: bool = False, value: Any = "unset") -> int | None:
        value = self._get(name) if value == "unset" else value
        if value is None and optional:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        self.require(ok, name, f"an integer in [{low}, {high}]{' or null' if optional else ''}", value)
        return value

    def fraction(self, name: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        self.require(ok, name, "a number in [0, 1]", value)
        return float(value)

    def bare_file_name(self, name: str) -> str:
        value = self.text(name)
        bare = value not in ("", ".", "..") and "/" not in value and "\\" not in value and "\0" not in value
        self.require(bare and Path(value).name == value and not Path(value).is_absolute(), name,
                     "the bare name of a file inside the deployment folder (no folders, no '..', not absolute)")
        return value


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _detector_settings(field: _FieldReader) -> dict[str, Any]:
    """conf, iou (numbers in [0, 1]), max_det (an integer or null), class_agnostic (a bool);
    each key optional (Detector's defaults apply), no other key."""
    detector = field.record["detector"]
    field.require(isinstance(detector, dict), "detector", "an object (conf, iou, max_det, class_agnostic)")
    unknown = sorted(set(detector) - {"conf", "iou", "max_det", "class_agnostic"})
    if unknown:
        raise ModelFileError(f"{field.path}: field 'detector' has an unknown key {unknown[0]!r}; the detector "
                             "settings are conf, iou, max_det and class_agnostic; re-run yolox-tune")
    settings: dict[str, Any] = {}
    for key in ("conf", "iou"):
        if key in detector:
            settings[key] = field.fraction(f"detector.{key}", detector[key])
    if "max_det" in detector:
        settings["max_det"] = field.integer("detector.max_det", 1, MAX_DETECTIONS, optional=True,
                                            value=detector["max_det"])
    if "class_agnostic" in detector:
        field.require(isinstance(detector["class_agnostic"], bool), "detector.class_agnostic", "true or false")
        settings["class_agnostic"] = detector["class_agnostic"]
    return settings


def _spinning(field: _FieldReader) -> bool | None:
    """The optional ``spinning`` flag (ONNX Runtime deployments), true or false."""
    value = field.record.get("spinning")
    if value is not None:
        field.require(isinstance(value, bool) and field.record.get("backend") == "onnxruntime", "spinning",
                      "true or false, on an onnxruntime deployment", value)
    return value


def _input_size(field: _FieldReader, size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    ok = (isinstance(size, list) and len(size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= MAX_SIDE and v % 32 == 0
                  for v in size))
    field.require(ok, "model.input_size", f"[height, width], multiples of 32 in [32, {MAX_SIDE}], or null", size)
    return (size[0], size[1])


def check_files_inside(folder: Path, model_file: str, deploy_json: Path) -> None:
    """The model file and its companions (same stem: .bin, .json) must exist and, symlinks
    resolved, lie inside ``folder``: a deployment folder never names a file elsewhere."""
    root = folder.resolve()
    model = folder / model_file
    if not model.is_file():
        raise ModelFileError(f"{folder} names {model_file} in {DEPLOY_FILE} but the file is missing; "
                             "re-run yolox-tune")
    files = [model, *(model.with_suffix(s) for s in COMPANIONS.get(model.suffix.lower(), ()))]
    for file in files:
        if (file.exists() or file.is_symlink()) and not file.resolve().is_relative_to(root):
            raise ModelFileError(f"{deploy_json}: field 'model_file' leads to {file.name}, which resolves outside "
                                 f"the deployment folder {folder} (a symlink?); a deployment folder holds its own "
                                 "files: copy the file in")


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
