"""TensorRT backend (TensorRT 10.x and 11.x): name-based I/O checked against the sidecar,
buffers allocated once at the profile's largest batch, pinned host memory, one CUDA stream
on the asked device ("cuda", "cuda:1").

``Detector("m.engine")`` runs an engine built by ``yolox-export --to trt``;
``Detector("m.onnx", backend="tensorrt")`` builds the engine on first use and caches it,
keyed by the ONNX, TensorRT version, GPU model and compute capability, precision and batch profile
(see :mod:`yolox_deploy.artifacts.engine_cache`), as DeepStream does. Device and pinned host memory
are PyTorch tensors (torch is already an extra, no cuda-python needed).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.metadata import ModelMetadata
from ..artifacts.tensorrt_engines import (
    DEFAULT_WORKSPACE_GIB,
    check_model_io,
    cuda_gpu,
    deserialize,
    engine_io,
    import_tensorrt,
    on_gpu,
    read_engine_record,
)
from ..errors import BackendUnavailableError, ModelFileError
from .base import Backend, InputShape
from .registry import register


class CudaMemory:
    """Device buffers, pinned host buffers and one stream on CUDA device ``index`` (torch)."""

    def __init__(self, torch: Any, index: int):
        self.torch = torch
        self.device = torch.device("cuda", index)
        self.stream = torch.cuda.Stream(device=self.device)

    def device_empty(self, shape: Sequence[int], dtype: Any) -> Any:
        return self.torch.empty(tuple(shape), dtype=dtype, device=self.device)

    def host_empty(self, shape: Sequence[int], dtype: Any) -> Any:
        return self.torch.empty(tuple(shape), dtype=dtype, pin_memory=True)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with self.torch.cuda.device(self.device), self.torch.cuda.stream(self.stream):
            yield

    def synchronize(self) -> None:
        self.stream.synchronize()


def memory_for(torch: Any, index: int) -> CudaMemory:
    return CudaMemory(torch, index)


@register
class TensorRTBackend(Backend):
    name = "tensorrt"
    suffixes = (".engine", ".plan")
    extra = "tensorrt"
    runtime_module = "tensorrt"
    export_target = "trt"

    def __init__(self, path: str | Path, device: str = "cuda", batch: int | Sequence[int] | None = None,
                 engine_cache: str | Path | None = None, workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                 **options: Any):
        """``path``: an engine, or an ONNX to build one from (cached; ``batch`` N or MIN OPT MAX
        sets its profile, default the ONNX's static batch or 1/1/8 for a dynamic one;
        ``engine_cache`` overrides the cache folder)."""
        super().__init__(path, device, **options)
        if self.device == "cpu":
            raise BackendUnavailableError("the tensorrt backend runs on a GPU: use device='cuda' (or 'cuda:N')")
        trt = import_tensorrt("the tensorrt backend")
        gpu = cuda_gpu(self.device)
        if self.path.suffix.lower() == ".onnx":
            from ..artifacts.engine_cache import cached_engine

            self.path = cached_engine(self.path, trt, gpu, batch=batch, cache_dir=engine_cache,
                                      workspace_gib=workspace_gib)
        record = read_engine_record(self.path)
        stale = record.stale_for(trt.__version__, gpu)
        if stale:
            raise ModelFileError(f"{self.path.name} {stale}; rebuild it here with `yolox-export --to trt`")
        with on_gpu(gpu):  # deserialized, given a context and buffers on the requested device
            self._open_on_device(trt, gpu, record)

    def _open_on_device(self, trt: Any, gpu: Any, record: Any) -> None:
        self.engine, self._runtime = deserialize(trt, self.path.read_bytes(), self.path.name)
        inputs, outputs = engine_io(trt, self.engine)
        if (tuple(inputs), tuple(outputs)) != (record.inputs, record.outputs):
            raise ModelFileError(f"{self.path.name}'s I/O {[t.name for t in inputs + outputs]} differs from its sidecar's "
                                 f"{[t.name for t in record.inputs + record.outputs]}; rebuild the engine")
        self._end_to_end_io = check_model_io(inputs, outputs, self.path.name)
        self._input, self._outputs = inputs[0], list(outputs)
        self._profile = record.profile
        self._metadata = record.metadata
        self._hw = tuple(self._input.shape[2:])
        import torch

        self._torch = torch
        self._memory = memory_for(torch, gpu.index)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailableError(f"TensorRT could not create an execution context for {self.path.name} on "
                                          f"{self.device} (its log above says why)")
        self._lock = threading.Lock()  # one execution context, one set of buffers
        self._current_batch = 0
        self._allocate()

    def _allocate(self) -> None:
        """Buffers for the profile's largest batch, once; smaller batches use their leading rows."""
        torch, n = self._torch, self._profile.max
        with self._memory.active():
            self._set_batch(n)
            shape = (n, 3, *self._hw)
            dtype = getattr(torch, self._input.dtype)
            self._device_in, self._host_in = self._memory.device_empty(shape, dtype), self._memory.host_empty(shape, dtype)
            self._out_buffers: dict[str, tuple[Any, Any]] = {}
            for spec in self._outputs:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(spec.name))
                dtype = getattr(torch, spec.dtype)
                self._out_buffers[spec.name] = (self._memory.device_empty(shape, dtype),
                                                self._memory.host_empty(shape, dtype))
            addresses = [(self._input.name, self._device_in)] + [(k, v[0]) for k, v in self._out_buffers.items()]
            for name, tensor in addresses:
                if not self.context.set_tensor_address(name, int(tensor.data_ptr())):
                    raise BackendUnavailableError(f"TensorRT refused the buffer of {name!r} in {self.path.name}")

    def _set_batch(self, n: int) -> None:
        if n != self._current_batch:
            if not self.context.set_input_shape(self._input.name, (n, 3, *self._hw)):
                raise BackendUnavailableError(f"TensorRT refused batch {n} for {self.path.name}")
            self._current_batch = n

    @property
    def input_shape(self) -> InputShape:
        return (self._profile.max if self._profile.static else None, 3, *self._hw)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self._outputs)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._execute(batch)[self._outputs[0].name].astype(np.float32, copy=False)

    def _run_end_to_end(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._execute(batch)

    def _execute(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Copy in (through pinned memory, so the device copy is asynchronous), run, copy out;
        host copies of every output's first ``len(batch)`` rows."""
        n = batch.shape[0]
        if not self._profile.min <= n <= self._profile.max:
            raise BackendUnavailableError(f"{self.path.name} takes batches of {self._profile.min}..{self._profile.max} "
                                          f"(its optimisation profile), got {n}")
        with self._lock, self._memory.active():
            self._set_batch(n)
            self._host_in[:n].copy_(self._torch.from_numpy(batch))
            self._device_in[:n].copy_(self._host_in[:n], non_blocking=True)
            if not self.context.execute_async_v3(self._memory.stream_handle):
                raise BackendUnavailableError(f"TensorRT failed to run {self.path.name}")
            for device_out, host_out in self._out_buffers.values():
                host_out[:n].copy_(device_out[:n], non_blocking=True)
            self._memory.synchronize()
            return {name: host[:n].numpy().copy() for name, (_, host) in self._out_buffers.items()}
