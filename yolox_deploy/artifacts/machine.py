"""The machine a measurement was made on: CPU model and precision features, cores, OS and
library versions. ``yolox-bench`` records it with its tables; ``yolox-tune`` records it in
``deploy.json`` and compares it when the deployment is loaded elsewhere."""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from ..precision import cpu_features
from ..processing.postprocess import kernel_available

VERSIONED_PACKAGES = ("yolox-deploy", "numpy", "opencv-python-headless", "onnxruntime", "openvino", "nncf", "torch",
                      "ncnn", "tensorrt")
# the package whose version decides a backend's speed and arithmetic (compared on load)
BACKEND_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "ncnn": "ncnn", "torch": "torch",
                    "tensorrt": "tensorrt"}


def cpu_model() -> str:
    """'AMD EPYC 9B14', 'Neoverse-N1' ...: /proc/cpuinfo's model name, else what platform says."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def machine_fingerprint() -> dict[str, Any]:
    """What decides which configuration is fastest and what it computes: CPU model, its
    precision features (avx512_bf16, amx, asimdhp ...), logical cores, architecture, OS,
    Python and library versions, and whether the C++ postprocess kernel is built (else the
    NumPy reference runs: same answers, slower)."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "cpu_features": list(cpu_features()), "os": platform.platform(), "python": platform.python_version(),
            "versions": package_versions(), "postprocess_kernel": kernel_available()}


def fingerprint_differences(recorded: dict[str, Any], here: dict[str, Any], backend: str) -> list[str]:
    """Short 'what: recorded -> here' notes for what differs between the machine a
    deployment was tuned on and this one (CPU, features, cores, architecture, the backend's
    library version); empty when it is the same kind of machine."""
    notes = []
    for key, label in (("cpu", "CPU"), ("machine", "architecture"), ("cores", "cores"),
                       ("postprocess_kernel", "C++ postprocess kernel built")):
        if key in recorded and recorded.get(key) != here.get(key):
            notes.append(f"{label} {recorded.get(key)!r} -> {here.get(key)!r}")
    lost = sorted(_features(recorded) - _features(here))
    gained = sorted(_features(here) - _features(recorded))
    if lost or gained:
        notes.append("CPU features " + ", ".join([*(f"-{f}" for f in lost), *(f"+{f}" for f in gained)]))
    package = BACKEND_PACKAGES.get(backend)
    if package:
        before = _versions(recorded).get(package)
        now = _versions(here).get(package)
        if before != now:
            notes.append(f"{package} {before} -> {now}")
    return notes


def _features(fingerprint: dict[str, Any]) -> set[str]:
    features = fingerprint.get("cpu_features")
    return {str(f) for f in features} if isinstance(features, list) else set()


def _versions(fingerprint: dict[str, Any]) -> dict[str, Any]:
    versions = fingerprint.get("versions")
    return versions if isinstance(versions, dict) else {}
