"""ncnn backend: ``.param`` + ``.bin`` with a sidecar ``.json`` (metadata, blob names, checksums).

ncnn crashes the process when asked to run a graph that failed to load, so everything is
checked before a Net is built: both files present and the ones the sidecar describes
(SHA-256), every layer type known to this ncnn build, and both load calls' return codes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..artifacts.sidecar import read_sidecar, sidecar_path, write_sidecar
from ..errors import BackendUnavailableError, ModelFileError
from .base import Backend, InputShape
from .registry import register

SIDECAR_FORMAT = "yolox_deploy.ncnn/1"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def param_layer_types(param: Path) -> set[str]:
    """Layer types named in an ncnn ``.param`` (text format: magic, counts, one layer per line)."""
    lines = param.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise ModelFileError(f"{param.name} is not an ncnn text .param (its first line is not the "
                             "magic 7767517)")
    return {line.split()[0] for line in lines[2:] if line.strip()}


def unsupported_layers(ncnn: Any, param: Path) -> list[str]:
    """Layer types this ncnn build does not know (pnnx writes ops it could not map under their
    PyTorch names, e.g. ``Tensor.slice``, and the official export needs a custom Focus layer)."""
    return sorted(t for t in param_layer_types(param) if ncnn.layer_to_index(t) < 0)


def write_ncnn_sidecar(param: Path, metadata: ModelMetadata, input_blob: str, output_blob: str,
                       weights_fp16: bool, converter: str) -> Path:
    ncnn = require("ncnn", extra="ncnn", purpose="the ncnn backend")
    h, w = metadata.input_size
    return write_sidecar(param, SIDECAR_FORMAT, {
        "input_blob": input_blob, "output_blob": output_blob, "input_shape": [3, h, w],
        "weights_fp16": weights_fp16,
        "param_sha256": file_sha256(param), "bin_sha256": file_sha256(param.with_suffix(".bin")),
        "converter": converter, "ncnn_version": getattr(ncnn, "__version__", "unknown"),
        "metadata": metadata.to_props()})


def check_files_match(param: Path, sidecar: dict[str, Any]) -> None:
    for path, key in ((param, "param_sha256"), (param.with_suffix(".bin"), "bin_sha256")):
        if sidecar.get(key) and file_sha256(path) != sidecar[key]:
            raise ModelFileError(f"{path.name} is not the file {sidecar_path(param).name} describes (SHA-256 "
                                 "differs): a mismatched or corrupted copy; re-export or copy the three "
                                 "files together")


def default_threads(ncnn: Any) -> int:
    """ncnn's threads when none are asked for: half the physical big cores, at least one (ncnn's own
    default is every core). ncnn's OpenMP workers (the wheel's libgomp) spin while they wait, so
    with any other busy thread (decoding, the application, another detector) they lose their turn:
    on 2 cores with one other busy process, nano@416 with 2 threads went from p50 16.8 / p90 18.8 ms
    to 41.5 / 163 ms, while 1 thread stayed at 19.8 -> 20.1 ms (ONNX Runtime, 2 threads: 8.4 -> 15.8
    ms). openmp_blocktime has no effect with libgomp, and OMP_WAIT_POLICY=passive made 2 threads no
    faster than 1. yolox-tune measures the other thread counts (docs/backends.md)."""
    return max(1, int(ncnn.get_physical_big_cpu_count()) // 2)


@register
class NcnnBackend(Backend):
    """``threads``: CPU threads (default: half the physical big cores, at least 1, see
    :func:`default_threads`); ``precision``: 'fp32' (default)
    or 'fp16' (FP16 storage and arithmetic where the CPU has them; ``fp16=True`` says the
    same). ncnn's own Option defaults turn FP16 storage, packing and arithmetic on wherever
    the CPU (e.g. ARMv8.2) or GPU has them; every precision switch is set here explicitly;
    ``light_mode``: recycle intermediate blobs (less memory); ``device='vulkan'`` runs on a
    Vulkan GPU when this ncnn build has one."""

    name = "ncnn"
    suffixes = (".param",)
    extra = "ncnn"
    runtime_module = "ncnn"
    export_target = "ncnn"
    precisions = ("fp32", "fp16")
    # Option switches that lower the arithmetic or storage below FP32 where the hardware has them
    LOW_PRECISION_SWITCHES = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                              "use_bf16_storage", "use_bf16_packed")

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 fp16: bool = False, light_mode: bool = True, precision: str = "fp32", **options: Any):
        super().__init__(path, device, precision="fp16" if fp16 else precision)
        fp16 = self.precision == "fp16"
        ncnn = require("ncnn", extra=self.extra, purpose="the ncnn backend")
        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise ModelFileError(f"{self.path.name} has no weights file: expected {weights.name} beside it")
        sidecar = read_sidecar(self.path, SIDECAR_FORMAT, "blob names, input size, class names",
                               "export with `yolox-export --to ncnn`")
        check_files_match(self.path, sidecar)
        unknown = unsupported_layers(ncnn, self.path)
        if unknown:
            raise ModelFileError(f"{self.path.name} uses layers this ncnn does not have: {', '.join(unknown)} "
                                 "(a custom layer from another converter?); export with `yolox-export --to ncnn`")
        self._input_blob, self._output_blob = sidecar["input_blob"], sidecar["output_blob"]
        _, h, w = sidecar["input_shape"]
        self._hw = (int(h), int(w))
        self._metadata = ModelMetadata.from_props(sidecar.get("metadata", {}))
        self.net = self._load_net(ncnn, weights, device, threads, fp16, light_mode)
        self._ncnn = ncnn

    def _load_net(self, ncnn: Any, weights: Path, device: str, threads: int | None, fp16: bool,
                  light_mode: bool) -> Any:
        net = ncnn.Net()
        opt = net.opt
        opt.lightmode = bool(light_mode)
        opt.num_threads = int(threads) if threads else default_threads(ncnn)
        for flag in self.LOW_PRECISION_SWITCHES:
            if hasattr(opt, flag):  # use_bf16_packed is newer than some ncnn builds
                setattr(opt, flag, bool(fp16) and "fp16" in flag)
        if device in ("vulkan", "gpu"):
            if ncnn.get_gpu_count() < 1:
                raise BackendUnavailableError("device='vulkan' asked for, but ncnn finds no Vulkan GPU here; "
                                              "use device='cpu'")
            opt.use_vulkan_compute = True
        elif device != "cpu":
            raise BackendUnavailableError(f"ncnn backend: unknown device {device!r}; use 'cpu' or 'vulkan'")
        if net.load_param(str(self.path)) != 0:
            raise ModelFileError(f"ncnn could not parse {self.path.name}; re-export with `yolox-export --to ncnn`")
        if net.load_model(str(weights)) != 0:
            raise ModelFileError(f"ncnn could not read the weights {weights.name} (truncated, or not this "
                                 f"model's); re-export with `yolox-export --to ncnn`")
        if self._input_blob not in net.input_names() or self._output_blob not in net.output_names():
            raise ModelFileError(f"{self.path.name} has inputs {net.input_names()} and outputs "
                                 f"{net.output_names()}, but its sidecar names {self._input_blob!r} and "
                                 f"{self._output_blob!r}")
        return net

    @property
    def input_shape(self) -> InputShape:
        return (None, 3, *self._hw)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image)  # the Mat borrows this buffer: keep it alive until extract
        extractor = self.net.create_extractor()
        extractor.input(self._input_blob, self._ncnn.Mat(image))
        status, out = extractor.extract(self._output_blob)
        if status != 0:
            raise BackendUnavailableError(f"ncnn failed to run {self.path.name} (extract returned {status})")
        return np.array(out, dtype=np.float32)  # a copy: the Mat's memory belongs to the extractor

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self._run_one(image) for image in batch])
