"""ONNX Runtime backend (CPU by default; CUDA only when asked, never a silent fallback)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import BackendUnavailableError, ModelFileError
from ..metadata import ModelMetadata
from . import register
from .base import Backend, InputShape


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


@register
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    suffixes = (".onnx",)
    extra = "onnxruntime"
    export_target = "onnx"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 stop_spinning: bool = True, **options: Any):
        """``threads``: intra-op threads (default: one per core). ``stop_spinning``: the intra-op
        threads stop spin-waiting as soon as a run returns (ONNX Runtime's own default keeps
        them spinning on the cores, which halves the speed of the letterbox and decoding
        that come next on a 2-core machine, for no faster inference)."""
        super().__init__(path, device)
        ort = require("onnxruntime", extra=self.extra, purpose="the onnxruntime backend")
        providers = self._providers(ort, device)
        session_options = ort.SessionOptions()
        if threads:
            session_options.intra_op_num_threads = int(threads)
        if stop_spinning:
            session_options.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{self.path.name} is not a loadable ONNX model ({first[:300]})") from None
        if providers[0] != "CPUExecutionProvider" and self.session.get_providers()[0] != providers[0]:
            raise BackendUnavailableError(f"onnxruntime could not create {providers[0]} for {self.path.name}; "
                                          "check the CUDA/cuDNN installation")
        self._input = self._single_input()
        self._output_name = self._single_output()
        self._metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)

    @staticmethod
    def _providers(ort: Any, device: str) -> list[str]:
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailableError(
                    "device='cuda' asked for, but this onnxruntime has no CUDAExecutionProvider: "
                    "pip uninstall onnxruntime && pip install onnxruntime-gpu")
            return ["CUDAExecutionProvider"]
        raise BackendUnavailableError(f"onnxruntime backend: unknown device {device!r}; use 'cpu' or 'cuda'")

    def _single_input(self) -> Any:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or _dim(inputs[0].shape[1]) not in (None, 3):
            shapes = [(i.name, i.shape) for i in inputs]
            raise ModelFileError(f"{self.path.name} is not a YOLOX detector: expected one input [B, 3, H, W], "
                                 f"found {shapes}")
        return inputs[0]

    def _single_output(self) -> str:
        outputs = self.session.get_outputs()
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            shapes = [(o.name, o.shape) for o in outputs]
            raise ModelFileError(f"{self.path.name} is not a raw YOLOX export: expected one output "
                                 f"[B, N, 5+C], found {shapes}")
        return outputs[0].name

    @property
    def input_shape(self) -> InputShape:
        b, _, h, w = self._input.shape
        return (_dim(b), 3, _dim(h), _dim(w))

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output_name], {self._input.name: batch})[0]
