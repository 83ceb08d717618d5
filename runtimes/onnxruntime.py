"""ONNX Runtime backend (CPU by default; CUDA only when asked, never a silent fallback)."""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..artifacts.onnx_pixels import PIXEL_INPUT, with_pixel_input
from ..errors import BackendUnavailableError, ModelFileError, first_line
from ..processing.end_to_end import END_TO_END_OUTPUTS
from .base import Backend, InputShape
from .registry import register

log = logging.getLogger(__name__)


# ONNX Runtime's CPU provider computes in FP32 on every CPU; the one CPU-dependent switch that
# would lower it (bf16 fast-math GEMMs on ARM64) is set off explicitly rather than left to a default.
FP32_SESSION_CONFIG = {"mlas.enable_gemm_fastmath_arm64_bfloat16": "0"}


def fp32_session_options(ort: Any, threads: int | None = None) -> Any:
    """SessionOptions that state FP32 arithmetic (and ``threads`` intra-op threads if given)."""
    options = ort.SessionOptions()
    for key, value in FP32_SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


@register
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    suffixes = (".onnx",)
    extra = "onnxruntime"
    runtime_module = "onnxruntime"
    spin_option = True
    export_target = "onnx"

    @classmethod
    def runtime_errors(cls) -> tuple[type[BaseException], ...]:
        state = sys.modules.get("onnxruntime.capi.onnxruntime_pybind11_state")
        if state is None:
            return ()
        return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 stop_spinning: bool = True, pixel_input: bool = True, **options: Any):
        """``threads``: intra-op threads (default: one per core). ``stop_spinning``: the intra-op
        threads stop spin-waiting as soon as a run returns (ONNX Runtime's own default keeps
        them spinning on the cores, which halves the speed of the letterbox and decoding
        that come next on a 2-core machine, for no faster inference). ``pixel_input``: run
        a copy of the graph that takes uint8 NHWC pixels and casts them itself (bit-identical
        outputs; the cast runs multi-threaded and the first layer reads a hot input); float
        batches then go through a float-input session built on first use."""
        super().__init__(path, device, **options)
        self._ort = require("onnxruntime", extra=self.extra, purpose="the onnxruntime backend")
        self._providers = self._providers_for(self._ort, device)
        self._session_options = fp32_session_options(self._ort, threads)
        if stop_spinning:
            self._session_options.add_session_config_entry("session.force_spinning_stop", "1")
        self.session = self._float_session = self._open_float_session()
        self._input = self._single_input()
        self._outputs = self._checked_outputs()
        self._output_name = self._outputs[0]
        self._metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)
        self._lock = threading.Lock()
        pixel_session = self._open_pixel_session() if pixel_input else None
        if pixel_session is not None:  # the float session is rebuilt only if float batches come
            self.session, self._float_session, self.native_pixels = pixel_session, None, True

    def _open_float_session(self) -> Any:
        try:
            session = self._ort.InferenceSession(str(self.path), self._session_options, providers=self._providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelFileError(f"{self.path.name} is not a loadable ONNX model ({first_line(exc)})") from None
        if self._providers[0] != "CPUExecutionProvider" and session.get_providers()[0] != self._providers[0]:
            raise BackendUnavailableError(f"onnxruntime could not create {self._providers[0]} for "
                                          f"{self.path.name}; check the CUDA/cuDNN installation")
        return session

    def _open_pixel_session(self) -> Any | None:
        """A session on the graph with a uint8 pixel input, or None where the edit does not
        apply (e.g. external weight files); the float input is used then."""
        if self._input.type != "tensor(float)":
            return None
        try:
            model = with_pixel_input(self.path.read_bytes(), self._input.name, self._input.shape)
            session = self._ort.InferenceSession(model, self._session_options, providers=self._providers)
        except Exception as exc:  # anything: the float session is there and correct
            log.info("onnxruntime: %s keeps its float input (%s)", self.path.name, str(exc).strip()[:200])
            return None
        if [i.name for i in session.get_inputs()] != [PIXEL_INPUT] or \
                [o.name for o in session.get_outputs()] != list(self._outputs):
            return None
        return session

    @staticmethod
    def _providers_for(ort: Any, device: str) -> list[str]:
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

    def _checked_outputs(self) -> tuple[str, ...]:
        """One raw output [B, N, 5 + C], or the four end-to-end outputs."""
        outputs = self.session.get_outputs()
        names = tuple(o.name for o in outputs)
        if set(names) == set(END_TO_END_OUTPUTS):
            return names
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            shapes = [(o.name, o.shape) for o in outputs]
            raise ModelFileError(f"{self.path.name} is not a YOLOX export: expected one output [B, N, 5+C] or the "
                                 f"end-to-end {', '.join(END_TO_END_OUTPUTS)}, found {shapes}")
        return names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def input_shape(self) -> InputShape:
        b, _, h, w = self._input.shape
        return (_dim(b), 3, _dim(h), _dim(w))

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._float().run([self._output_name], {self._input.name: batch})[0]

    def _run_end_to_end(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(END_TO_END_OUTPUTS, self._float().run(list(END_TO_END_OUTPUTS), {self._input.name: batch})))

    def _run_end_to_end_pixels(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        if not self.native_pixels:
            return super()._run_end_to_end_pixels(pixels)
        return dict(zip(END_TO_END_OUTPUTS, self.session.run(list(END_TO_END_OUTPUTS), {PIXEL_INPUT: pixels})))

    def _run_pixels(self, pixels: np.ndarray) -> np.ndarray:
        if not self.native_pixels:
            return super()._run_pixels(pixels)
        return self.session.run([self._output_name], {PIXEL_INPUT: pixels})[0]

    def _float(self) -> Any:
        if self._float_session is None:
            with self._lock:
                if self._float_session is None:
                    self._float_session = self._open_float_session()
        return self._float_session
