"""PyTorch backend: the reference, loading official-format ``.pth`` checkpoints."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..coco import default_class_names
from ..errors import BackendUnavailableError
from .base import Backend, InputShape
from .registry import register

log = logging.getLogger(__name__)


def pin_ieee_fp32(torch: Any, on_cuda: bool) -> dict[str, str]:
    """Make this process's FP32 convolutions and matmuls IEEE FP32 and return what changed.

    PyTorch's own defaults: cuDNN convolutions run in TF32 on Ampere and later GPUs, and any
    code in the process may have lowered CPU (oneDNN) or CUDA FP32 math to bf16/TF32 (e.g.
    ``torch.set_float32_matmul_precision("medium")``). These switches are process-wide."""
    backends = torch.backends
    if hasattr(getattr(backends.mkldnn, "conv", None), "fp32_precision"):  # torch >= 2.9: per-op API
        leaves = {"mkldnn.conv": backends.mkldnn.conv, "mkldnn.matmul": backends.mkldnn.matmul}
        if on_cuda:
            leaves.update({"cudnn.conv": backends.cudnn.conv, "cuda.matmul": backends.cuda.matmul})
        changed = {name: leaf.fp32_precision for name, leaf in leaves.items() if leaf.fp32_precision != "ieee"}
        for leaf in leaves.values():
            leaf.fp32_precision = "ieee"
        return changed
    changed = {}  # older torch: the legacy switches (mixing both APIs is an error in new torch)
    if torch.get_float32_matmul_precision() != "highest":
        changed["float32_matmul_precision"] = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
    if on_cuda:
        for name, owner in (("cudnn.allow_tf32", backends.cudnn), ("cuda.matmul.allow_tf32", backends.cuda.matmul)):
            if owner.allow_tf32:
                changed[name] = "True"
                owner.allow_tf32 = False
    return changed


@register
class TorchBackend(Backend):
    """The PyTorch reference, in IEEE FP32 (TF32 and bf16 FP32 math switched off for the
    process, see :func:`pin_ieee_fp32`). On ``device="cuda"``: ``precision="fp16"`` (or
    ``half=True``) runs FP16, ``channels_last``
    uses the NHWC memory format (faster convolutions on tensor cores), ``cuda_graph``
    captures one CUDA graph per input shape and replays it (less launch overhead; shapes
    repeat when batches are fixed)."""

    name = "torch"
    suffixes = (".pth", ".pt")
    extra = "torch"
    runtime_module = "torch"
    export_target = None
    precisions = ("fp32", "fp16")

    @classmethod
    def runtime_errors(cls) -> tuple[type[BaseException], ...]:
        torch = sys.modules.get("torch")
        found = (getattr(torch, name, None) for name in ("OutOfMemoryError", "AcceleratorError"))
        return tuple(error for error in found if isinstance(error, type))

    def __init__(self, path: str | Path, device: str = "cpu", model_name: str | None = None,
                 threads: int | None = None, half: bool = False, channels_last: bool = False,
                 cuda_graph: bool = False, precision: str = "fp32", **options: Any):
        super().__init__(path, device, precision="fp16" if half else precision)
        half = self.precision == "fp16"
        self._torch = require("torch", extra=self.extra, purpose="the torch backend")
        from ..models import load_model

        on_cuda = device.startswith("cuda")
        if on_cuda and not self._torch.cuda.is_available():
            raise BackendUnavailableError("device='cuda' asked for, but this PyTorch has no CUDA device; "
                                          "install a CUDA build of torch or use device='cpu'")
        if (half or cuda_graph) and not on_cuda:
            raise BackendUnavailableError("precision='fp16' (half=True) and cuda_graph=True need device='cuda' "
                                          "(FP16 convolutions and CUDA graphs are GPU features)")
        if not half:
            changed = pin_ieee_fp32(self._torch, on_cuda)
            if changed:
                log.info("torch backend: FP32 math set to IEEE for this process (was %s)", changed)
        if threads:
            self._torch.set_num_threads(int(threads))
        model, spec = load_model(self.path, model_name=model_name)
        self.model = model.to(device)
        self._dtype = self._torch.float16 if half else self._torch.float32
        if half:
            self.model = self.model.half()
        self._memory_format = self._torch.channels_last if channels_last else self._torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=self._torch.channels_last)
        self._graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] | None = {} if cuda_graph else None
        self._graph_lock = threading.Lock()  # captured graphs share static input/output buffers
        self._metadata = ModelMetadata(model_name=spec.name, input_size=spec.input_size,
                                       class_names=default_class_names(model.head.num_classes))

    @property
    def input_shape(self) -> InputShape:
        return (None, 3, None, None)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _to_device(self, batch: np.ndarray) -> Any:
        x = self._torch.from_numpy(batch).to(self.device, non_blocking=True).to(self._dtype)
        return x.contiguous(memory_format=self._memory_format)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._graphs is not None:
            return self._run_graph(batch)
        with self._torch.inference_mode():
            out = self.model(self._to_device(batch))
        return out.float().cpu().numpy()

    def _run_graph(self, batch: np.ndarray) -> np.ndarray:
        """Capture a CUDA graph the first time a shape is seen (after warm-up on a side
        stream, as CUDA graph capture requires), then copy in, replay and copy out. One thread
        at a time: every call of a shape reuses that graph's static buffers."""
        with self._graph_lock:
            return self._replay_graph(batch)

    def _replay_graph(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        key = tuple(batch.shape)
        if key not in self._graphs:
            static_in = self._to_device(batch)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):
                    self.model(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        with torch.inference_mode():
            static_in.copy_(self._to_device(batch))
            graph.replay()
            return static_out.float().cpu().numpy()
