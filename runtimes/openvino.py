"""OpenVINO backend (2024+ API): IR files, performance hints, concurrent infer requests."""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..errors import BackendUnavailableError, ModelFileError, first_line
from ..processing.end_to_end import END_TO_END_OUTPUTS
from .base import Backend, InputShape
from .registry import register

log = logging.getLogger(__name__)

RT_INFO_SECTION = "yolox_deploy"  # where the IR's rt_info keeps our ModelMetadata
PRECISION_HINT = "INFERENCE_PRECISION_HINT"
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # ours -> OpenVINO's element type names
CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}  # the OPTIMIZATION_CAPABILITIES entry each needs
CPU_NEEDS = {"bf16": "avx512_bf16 or AMX", "fp16": "avx512_fp16 or AMX-FP16 (x86), or FP16 arithmetic (ARM)"}


def compile_config(precision: str = "fp32", hint: str | None = None, threads: int | None = None,
                   streams: int | None = None) -> dict[str, Any]:
    """The properties every compile of ours passes: the inference precision always stated."""
    config: dict[str, Any] = {PRECISION_HINT: OV_PRECISIONS[precision]}
    if hint:
        config["PERFORMANCE_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if streams:
        config["NUM_STREAMS"] = int(streams)
    return config


def check_device_precision(core: Any, device_name: str, precision: str) -> None:
    """Refuse a precision the device cannot run natively (OpenVINO would silently run f32)."""
    if precision == "fp32":
        return
    devices = core.available_devices if device_name == "AUTO" else [device_name]
    for device in devices:
        capabilities = [str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")]
        if CAPABILITY[precision] not in capabilities:
            raise BackendUnavailableError(
                f"precision='{precision}' needs {CAPABILITY[precision]} support, but OpenVINO's {device} lists "
                f"only {', '.join(capabilities)} (a CPU needs {CPU_NEEDS[precision]}); use precision='fp32'")


def compiled_precision(compiled: Any) -> str:
    """The inference precision a CompiledModel reports ('f32', 'bf16' ...), '' if it has none."""
    try:
        value = compiled.get_property(PRECISION_HINT)
    except Exception:  # devices without the property (e.g. some AUTO set-ups)
        return ""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def write_metadata(model: Any, metadata: ModelMetadata) -> None:
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key])


def read_metadata(model: Any, section: str = RT_INFO_SECTION) -> ModelMetadata:
    """Our ModelMetadata from an IR's rt_info, or from an ONNX's metadata_props (which OpenVINO's ONNX
    reader puts under rt_info's "framework" section)."""
    props = {key: model.get_rt_info([section, key]).astype(str)
             for key in ModelMetadata().to_props() if model.has_rt_info([section, key])}
    return ModelMetadata.from_props(props)


@register
class OpenVinoBackend(Backend):
    """``hint``: 'LATENCY' (default) or 'THROUGHPUT'; ``threads``: inference threads;
    ``streams``: parallel streams (THROUGHPUT picks its own when None); ``precision``: the
    arithmetic, stated to the plugin as INFERENCE_PRECISION_HINT on every compile: 'fp32'
    (default; the CPU plugin's own default is bf16 on CPUs with bf16 units), 'bf16' (refused
    on CPUs whose OPTIMIZATION_CAPABILITIES lack BF16) or 'fp16'; ``pixel_input``: compile
    the model with a uint8 NHWC input (OpenVINO's PrePostProcessor does the cast and
    transpose, bit-identical outputs); float batches then use a float-input compile made on
    first use."""

    name = "openvino"
    suffixes = (".xml",)  # and .onnx, read directly, with --backend openvino / backend="openvino"
    extra = "openvino"
    runtime_module = "openvino"
    export_target = "openvino"
    precisions = ("fp32", "bf16", "fp16")

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 hint: str = "LATENCY", streams: int | None = None, precision: str = "fp32",
                 pixel_input: bool = True, **options: Any):
        super().__init__(path, device, precision=precision)
        ov = require("openvino", extra=self.extra, purpose="the openvino backend")
        is_onnx = self.path.suffix.lower() == ".onnx"  # OpenVINO reads ONNX as it is, no conversion step
        if not is_onnx and not self.path.with_suffix(".bin").is_file():
            raise ModelFileError(f"{self.path.name} has no weights file: expected "
                                 f"{self.path.with_suffix('.bin').name} beside it")
        hint = hint.upper()
        if hint not in ("LATENCY", "THROUGHPUT"):
            raise BackendUnavailableError(f"openvino hint must be LATENCY or THROUGHPUT, got {hint!r}")
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line details
            kind = "ONNX model" if is_onnx else "OpenVINO IR"
            raise ModelFileError(f"{self.path.name} is not a loadable {kind} ({first_line(exc)})") from None
        self._outputs = tuple(o.get_any_name() for o in model.outputs)
        end_to_end = set(self._outputs) == set(END_TO_END_OUTPUTS)
        if len(model.inputs) != 1 or (len(model.outputs) != 1 and not end_to_end) or \
                model.inputs[0].partial_shape.rank.get_length() != 4:
            raise ModelFileError(f"{self.path.name} is not a YOLOX detector: expected one [B, 3, H, W] input "
                                 f"and one [B, N, 5+C] output (or the end-to-end {', '.join(END_TO_END_OUTPUTS)})")
        self._shape = tuple(None if d.is_dynamic else d.get_length() for d in model.inputs[0].partial_shape)
        self._metadata = read_metadata(model, "framework" if is_onnx else RT_INFO_SECTION)
        device_name = {"cpu": "CPU", "gpu": "GPU", "auto": "AUTO"}.get(device.lower(), device)
        if device_name not in core.available_devices and device_name != "AUTO":
            raise BackendUnavailableError(f"OpenVINO device {device_name!r} is not available here "
                                          f"(available: {', '.join(core.available_devices)})")
        check_device_precision(core, device_name, self.precision)
        config = compile_config(self.precision, hint, threads, streams)
        self._ov, self._core, self._device_name, self._config = ov, core, device_name, config
        self._lock = threading.Lock()
        self._compiled: dict[bool, Any] = {}  # pixels? -> CompiledModel
        # idle InferRequests per input kind (one request is not reentrant)
        self._requests: dict[bool, queue.LifoQueue] = {True: queue.LifoQueue(), False: queue.LifoQueue()}
        if pixel_input:
            try:
                self._compiled[True] = core.compile_model(self._with_pixel_input(model), device_name, config)
                self.native_pixels = True
            except Exception as exc:  # the float-input compile below is always correct
                log.info("openvino: %s keeps its float input (%s)", self.path.name, str(exc).strip()[:200])
        if not self.native_pixels:
            self._compiled[False] = core.compile_model(model, device_name, config)
        self._check_compiled_precision(next(iter(self._compiled.values())))

    def _check_compiled_precision(self, compiled: Any) -> None:
        got, want = compiled_precision(compiled), OV_PRECISIONS[self.precision]
        if got and got != want:
            raise BackendUnavailableError(f"OpenVINO compiled {self.path.name} for {got} arithmetic although "
                                          f"{want} was asked for; use precision='fp32'")

    def _with_pixel_input(self, model: Any) -> Any:
        from openvino.preprocess import PrePostProcessor

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(self._ov.Type.u8).set_layout(self._ov.Layout("NHWC"))
        ppp.input().model().set_layout(self._ov.Layout("NCHW"))
        return ppp.build()

    def _compiled_for(self, pixels: bool) -> Any:
        """The CompiledModel for uint8 pixel (True, only with ``native_pixels``) or float32
        NCHW (False) batches; the float one is compiled on first use."""
        if pixels not in self._compiled:
            with self._lock:
                if pixels not in self._compiled:
                    model = self._core.read_model(str(self.path))
                    self._compiled[pixels] = self._core.compile_model(model, self._device_name, self._config)
        return self._compiled[pixels]

    @property
    def input_shape(self) -> InputShape:
        b, _, h, w = self._shape
        return (b, 3, h, w)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._infer_sync(batch, pixels=False)

    def _run_end_to_end(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._infer_outputs(batch, pixels=False)

    def _run_end_to_end_pixels(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        if not self.native_pixels:
            return super()._run_end_to_end_pixels(pixels)
        return self._infer_outputs(pixels, pixels=True)

    def _infer_outputs(self, batch: np.ndarray, pixels: bool) -> dict[str, np.ndarray]:
        """Every end-to-end output of one synchronous inference (an InferRequest per caller)."""
        request = self._idle_request(pixels, self._compiled_for(pixels))
        try:
            results = request.infer({0: batch})
            return {name: results[name].copy() for name in END_TO_END_OUTPUTS}
        finally:
            self._requests[pixels].put(request)

    def _run_pixels(self, pixels: np.ndarray) -> np.ndarray:
        if not self.native_pixels:
            return super()._run_pixels(pixels)
        return self._infer_sync(pixels, pixels=True)

    def _infer_sync(self, batch: np.ndarray, pixels: bool) -> np.ndarray:
        """Concurrent callers each get their own InferRequest (created on demand, then reused),
        so threads share one compiled model and run in parallel streams."""
        request = self._idle_request(pixels, self._compiled_for(pixels))
        try:
            return request.infer({0: batch})[0].copy()
        finally:
            self._requests[pixels].put(request)

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run batches concurrently on as many infer requests as the device finds optimal;
        results in input order.

        No Python callback is given to OpenVINO (no AsyncInferQueue): its stream threads then
        never take the GIL, which a CompiledModel's destructor (run holding the GIL) would wait
        for forever; that hang was seen with AsyncInferQueue callbacks."""
        kinds = {self.check_batch(batch) for batch in batches}
        if len(kinds) != 1 or kinds == {True} and not self.native_pixels:  # mixed, or pixels to convert
            return [self.infer(b) for b in batches]
        pixels = kinds.pop()
        compiled = self._compiled_for(pixels)
        jobs = min(len(batches), max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))))
        if jobs < 2:
            return [self.infer(b) for b in batches]
        requests = [self._idle_request(pixels, compiled) for _ in range(jobs)]
        results: list[np.ndarray | None] = [None] * len(batches)
        running: dict[int, int] = {}  # request slot -> batch index
        try:
            for index, batch in enumerate(batches):
                slot = index % jobs
                if slot in running:
                    results[running.pop(slot)] = self._finish(requests[slot])
                requests[slot].start_async({0: batch})
                running[slot] = index
            for slot, index in sorted(running.items(), key=lambda item: item[1]):
                results[index] = self._finish(requests[slot])
            running.clear()
        finally:
            for slot, request in enumerate(requests):
                if slot in running:  # an error above: let it finish before reuse
                    request.wait()
                self._requests[pixels].put(request)
        return [self.check_output(b, r) for b, r in zip(batches, results)]

    def _idle_request(self, pixels: bool, compiled: Any) -> Any:
        try:
            return self._requests[pixels].get_nowait()
        except queue.Empty:
            return compiled.create_infer_request()

    @staticmethod
    def _finish(request: Any) -> np.ndarray:
        request.wait()
        return request.get_output_tensor(0).data.copy()
