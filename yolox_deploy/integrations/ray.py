"""Batch detection on Ray Data: one Detector per actor, one output row per image.

    import ray
    from yolox_deploy.integrations.ray import detect_dataset
    ds = detect_dataset("s3://bucket/images/", "yolox_s.onnx", num_workers=8)
    ds.write_parquet("s3://bucket/detections/")

The same code runs on a local cluster (``ray.init()``) and on a real one by address
(``ray.init("ray://head:10001")`` or ``--ray-address`` on the CLI). Local paths (which every
node must see, as with any Ray job) are listed here and read by the actors; URIs
(``s3://``, ``gs://`` ...) are read as bytes by Ray's own readers. Either way the actors
decode exactly like :func:`yolox_deploy.processing.images.read_image`, so results equal a
single-process Detector's.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import YoloxDeployError
from ..processing.images import IMAGE_SUFFIXES, decode_image, read_image

OUTPUT_COLUMNS = ("path", "image_height", "image_width", "boxes", "scores", "class_ids", "class_names", "error")


class DetectorPredictor:
    """Callable class for ``Dataset.map_batches``: loads the Detector once per actor and turns
    a batch with ``bytes`` and ``path`` columns into one row per image (boxes xyxy in
    original-image pixels, as nested lists; ``error`` holds a one-line message for an
    unreadable image, whose other columns are empty)."""

    def __init__(self, model: str, **detector_options: Any):
        from ..detector import Detector

        self.detector = Detector(model, **detector_options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {column: [] for column in OUTPUT_COLUMNS}
        names, images = [], []
        contents = batch["bytes"] if "bytes" in batch else [None] * len(batch["path"])
        for data, path in zip(contents, batch["path"]):
            try:
                images.append(read_image(path) if data is None else decode_image(bytes(data), str(path)))
                names.append(str(path))
            except YoloxDeployError as exc:
                self._append(out, str(path), None, str(exc))
        for path, detections in zip(names, self.detector(images) if images else []):
            self._append(out, path, detections, "")
        return out

    @staticmethod
    def _append(out: dict[str, list[Any]], path: str, detections: Any, error: str) -> None:
        out["path"].append(path)
        out["error"].append(error)
        if detections is None:
            for column in ("boxes", "scores", "class_ids", "class_names"):
                out[column].append([])
            out["image_height"].append(0)
            out["image_width"].append(0)
            return
        out["image_height"].append(detections.image_size[0])
        out["image_width"].append(detections.image_size[1])
        out["boxes"].append(detections.xyxy.tolist())
        out["scores"].append(detections.scores.tolist())
        out["class_ids"].append(detections.class_ids.tolist())
        out["class_names"].append(list(detections.class_names))


def detect_dataset(source: str | Sequence[str], model: str, num_workers: int = 2, batch_size: int = 32,
                   cpus_per_worker: float = 1.0, **detector_options: Any) -> Any:
    """A lazy Ray Dataset of detections for the images under ``source`` (a folder, file(s)
    or any URI Ray can read). ``num_workers`` actors each hold one Detector."""
    ray = require("ray", extra="ray", purpose="yolox-detect --ray")
    if num_workers < 1:
        raise YoloxDeployError(f"num_workers must be >= 1, got {num_workers}")
    model = str(Path(model).resolve()) if Path(model).exists() else str(model)  # actors may run elsewhere
    sources = [str(source)] if isinstance(source, (str, Path)) else [str(s) for s in source]
    if any("://" in s for s in sources):
        # Reading bytes is I/O: its tasks reserve no CPU, so they can run beside actors that
        # hold every CPU (otherwise a small cluster deadlocks, the readers waiting for a CPU).
        files = ray.data.read_binary_files(sources, include_paths=True, num_cpus=0,
                                           file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES])
    else:  # one tiny row per path: far less scheduling than a read task per file
        files = ray.data.from_items([{"path": path} for path in list_images(sources)])
    return files.map_batches(DetectorPredictor, fn_constructor_kwargs={"model": model, **detector_options},
                             batch_size=batch_size, concurrency=num_workers, num_cpus=cpus_per_worker)


def list_images(sources: Sequence[str]) -> list[str]:
    """Absolute paths of the image files among ``sources`` (files, or folders: sorted)."""
    paths: list[str] = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += sorted(str(p.resolve()) for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif source.is_file():
            paths.append(str(source.resolve()))
        else:
            raise YoloxDeployError(f"source not found: {source}")
    if not paths:
        raise YoloxDeployError(f"no images in {', '.join(sources)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


def write_detections(dataset: Any, output: str | Path, fmt: str = "parquet") -> None:
    """Write the rows with Ray's writers (a folder of files, one row per image)."""
    if fmt == "parquet":
        dataset.write_parquet(str(output))
    elif fmt == "jsonl":
        dataset.write_json(str(output))
    else:
        raise YoloxDeployError(f"unknown output format {fmt!r}; use parquet or jsonl")


LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's loopback-only local mode (as on macOS/Windows)
LOOPBACK_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def init_ray(address: str | None = None, num_cpus: int | None = None, loopback: bool = True) -> Any:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one.

    A local cluster binds its GCS, raylet, object manager and workers to 127.0.0.1 only
    (``loopback=False`` gives Ray's default, the machine's interface address): nothing off
    this machine needs to reach it, and Ray's ports have no authentication. A real cluster
    is joined by its address, which is the machine's network address, unchanged."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray = require("ray", extra="ray", purpose="yolox-detect --ray")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            if loopback:
                _use_loopback_only()
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            if loopback:
                check_loopback_only(ray)
    return ray


def _use_loopback_only() -> None:
    """Ray's local mode that binds every listener to 127.0.0.1: the switch in the environment
    for the raylet and workers Ray starts, and the constant Ray derived from it at import (a
    private name; check_loopback_only refuses the cluster if a Ray version ignores it)."""
    os.environ[LOOPBACK_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False


def check_loopback_only(ray: Any) -> None:
    """Refuse (and stop) a local cluster whose nodes or GCS are not on 127.0.0.1."""
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    gcs_host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
    outside = sorted(a for a in addresses | {gcs_host} if a not in LOOPBACK_ADDRESSES)
    if outside:
        ray.shutdown()
        raise YoloxDeployError(f"the local Ray cluster came up on {', '.join(outside)}, not 127.0.0.1 (this Ray "
                               f"ignores {LOOPBACK_SWITCH}=0); start one with `ray start --head "
                               "--node-ip-address=127.0.0.1` and pass its address")
