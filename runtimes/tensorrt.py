"""TensorRT backend (TensorRT 10+): name-based I/O, buffers allocated once, one CUDA stream.

Device and pinned host memory are PyTorch tensors (torch is already an extra). The engine's
TensorRT version (from its sidecar) must equal the installed one: engines are not portable
across versions, and a mismatch is refused with the fix instead of failing inside TensorRT.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import ModelMetadata
from . import register
from .base import Backend, InputShape


@register
class TensorRTBackend(Backend):
    name = "tensorrt"
    suffixes = (".engine", ".plan")
    extra = "tensorrt"
    export_target = "trt"

    def __init__(self, path: str | Path, device: str = "cuda", **options: Any):
        super().__init__(path, device, **options)
        from ..exporters.tensorrt import cuda_device_name, read_engine_sidecar

        sidecar = read_engine_sidecar(self.path)
        trt = require("tensorrt", extra=self.extra, purpose="the tensorrt backend")
        if sidecar["tensorrt_version"] != trt.__version__:
            raise ModelFileError(f"{self.path.name} was built with TensorRT {sidecar['tensorrt_version']}, this is "
                                 f"TensorRT {trt.__version__}: engines only run on the version that built them; "
                                 "rebuild it here with `yolox-export --to trt`")
        if device == "cpu":
            raise BackendUnavailableError("the tensorrt backend runs on a GPU: use device='cuda'")
        cuda_device_name()
        import torch

        self._torch = torch
        self._metadata = ModelMetadata.from_props(sidecar.get("metadata", {}))
        self._input_name, self._output_name = sidecar["input_name"], sidecar["output_name"]
        self._max_batch = int(sidecar["profile"]["max"])
        self._min_batch = int(sidecar["profile"]["min"])
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelFileError(f"TensorRT could not deserialize {self.path.name} (corrupt, or built for another "
                                 "GPU); rebuild it with `yolox-export --to trt`")
        self.context = self.engine.create_execution_context()
        self._hw = tuple(int(d) for d in self.engine.get_tensor_shape(self._input_name)[2:])
        self._stream = torch.cuda.Stream()
        self._buffers: dict[int, tuple[Any, Any, Any]] = {}  # batch -> (device in, device out, pinned out)
        self._lock = threading.Lock()  # one execution context

    @property
    def input_shape(self) -> InputShape:
        batch = None if self._min_batch != self._max_batch else self._max_batch
        return (batch, 3, *self._hw)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _buffers_for(self, batch: int) -> tuple[Any, Any, Any]:
        """Device input/output and pinned host output for this batch size, allocated once."""
        if batch not in self._buffers:
            torch = self._torch
            self.context.set_input_shape(self._input_name, (batch, 3, *self._hw))
            out_shape = tuple(self.context.get_tensor_shape(self._output_name))
            self._buffers[batch] = (torch.empty((batch, 3, *self._hw), dtype=torch.float32, device="cuda"),
                                    torch.empty(out_shape, dtype=torch.float32, device="cuda"),
                                    torch.empty(out_shape, dtype=torch.float32, pin_memory=True))
        return self._buffers[batch]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if not self._min_batch <= n <= self._max_batch:
            raise BackendUnavailableError(f"{self.path.name} takes batches of {self._min_batch}..{self._max_batch} "
                                          f"(its optimisation profile), got {n}")
        torch = self._torch
        with self._lock, torch.cuda.stream(self._stream):
            device_in, device_out, host_out = self._buffers_for(n)
            self.context.set_input_shape(self._input_name, tuple(device_in.shape))
            device_in.copy_(torch.from_numpy(batch), non_blocking=True)
            self.context.set_tensor_address(self._input_name, int(device_in.data_ptr()))
            self.context.set_tensor_address(self._output_name, int(device_out.data_ptr()))
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise BackendUnavailableError(f"TensorRT failed to run {self.path.name}")
            host_out.copy_(device_out, non_blocking=True)
            self._stream.synchronize()
            return host_out.numpy().copy()
