"""TensorRT engines built on the target, on first use, and cached (as DeepStream does).

Engines only run on the TensorRT version and GPU generation that built them, so shipping
``.onnx`` and building where it runs avoids "version tag does not match" failures. An entry
is keyed by the ONNX's content, the TensorRT version, the GPU model and its compute capability,
the precision and the batch profile; one whose sidecar disagrees with the key (a copied or
half-replaced file) is rebuilt, never loaded.

Cache folder: ``engine_cache=`` argument, else ``$YOLOX_DEPLOY_CACHE/tensorrt``, else
``~/.cache/yolox_deploy/tensorrt``.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, YoloxDeployError
from .tensorrt_engines import (
    DEFAULT_WORKSPACE_GIB,
    Gpu,
    OnnxSource,
    Profile,
    build_engine_file,
    read_engine_record,
    sha256_of,
)

log = logging.getLogger(__name__)
DEFAULT_DYNAMIC_PROFILE = (1, 1, 8)


def default_cache_dir() -> Path:
    root = os.environ.get("YOLOX_DEPLOY_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "yolox_deploy") / "tensorrt"


def gpu_slug(gpu: Gpu) -> str:
    """'nvidia-a10-sm86': the GPU model and compute capability, file-name safe. Engines are
    tuned for one GPU model: two models of one SM (an A10 and an A40) get their own entries."""
    name = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-") or "gpu"
    return f"{name[:40]}-sm{gpu.capability.replace('.', '')}"


def cache_key(onnx_name: str, digest: str, trt_version: str, gpu: Gpu, precision: str, profile: Profile) -> str:
    return (f"{Path(onnx_name).stem}-{digest[:16]}-trt{trt_version}-{gpu_slug(gpu)}-{precision}"
            f"-b{profile.min}_{profile.opt}_{profile.max}.engine")


def _why_stale(path: Path, trt_version: str, gpu: Gpu, digest: str, precision: str, profile: Profile) -> str | None:
    """None when the cached ``path`` is the engine the key promises, else why not."""
    try:
        record = read_engine_record(path)
    except ModelFileError as exc:
        return str(exc)
    stale = record.stale_for(trt_version, gpu)
    if stale:
        return stale
    if (record.onnx_sha256, record.precision, record.profile) != (digest, precision, profile):
        return "its sidecar describes another ONNX, precision or profile"
    if record.gpu_name != gpu.name:
        return f"it was built on a {record.gpu_name}, this is a {gpu.name}"
    return None


def cached_engine(onnx_path: Path, trt: Any, gpu: Gpu, batch: int | Sequence[int] | None = None,
                  cache_dir: str | Path | None = None, workspace_gib: float = DEFAULT_WORKSPACE_GIB) -> Path:
    """The cached engine for ``onnx_path`` on ``gpu``, built now if missing or stale."""
    source = OnnxSource.read(onnx_path)
    source.check_buildable()
    if batch is None:
        batch = source.batch if source.batch is not None else DEFAULT_DYNAMIC_PROFILE
    profile = Profile.parse(batch, source.batch)
    digest = sha256_of(source.data)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / cache_key(onnx_path.name, digest, trt.__version__, gpu, source.precision, profile)
    if path.is_file():
        stale = _why_stale(path, trt.__version__, gpu, digest, source.precision, profile)
        if stale is None:
            return path
        log.warning("cached engine %s is stale (%s); rebuilding it", path.name, stale)
    log.warning("building a TensorRT engine for %s (%s, batch %d/%d/%d) on %s; cached in %s", onnx_path.name,
                source.precision, profile.min, profile.opt, profile.max, gpu.name, folder)
    timing = folder / f"timing-trt{trt.__version__}-{gpu_slug(gpu)}.cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise YoloxDeployError(f"cannot write the engine cache {folder} ({exc.strerror}); pass engine_cache= a "
                               "writable folder or set YOLOX_DEPLOY_CACHE") from None
    build_engine_file(trt, source, profile, gpu, path, workspace_gib, timing)
    return path
