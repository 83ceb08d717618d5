"""Triton backend: inference on a Triton Inference Server over HTTP/REST (KServe v2).

``Detector("yolox", backend="triton", url="host:8000")`` letterboxes here, sends float32
batches to the repository's raw ONNX model (named by the ensemble's ``raw_model``
parameter, or given directly) and postprocesses the raw output here with the shared
kernel, so results equal every other backend's. For server-side postprocessing use
:class:`yolox_deploy.integrations.triton.TritonDetectionClient` on the ensemble.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..integrations.triton import PARAM_PREFIX, TritonConnection, metadata_from_parameters
from ..metadata import END_TO_END_OUTPUTS, ModelMetadata
from . import register
from .base import Backend, InputShape


@register
class TritonBackend(Backend):
    """``path``: the model name on the server (the ensemble or its raw ONNX model);
    ``url``: host:port of Triton's HTTP (``protocol="http"``, port 8000) or gRPC
    (``protocol="grpc"``, port 8001) endpoint; ``timeout_s``: bound of every call. Safe to
    share between threads (a connection per thread); ``close()`` releases them."""

    name = "triton"
    suffixes = ()
    extra = "triton"
    export_target = "triton"
    loads_files = False

    def __init__(self, path: str | Path, device: str = "cpu", url: str = "localhost:8000",
                 timeout_s: float = 60.0, protocol: str = "http", **options: Any):
        super().__init__(path, device, **options)
        self.url = url
        self._connection = TritonConnection(url, timeout_s, protocol)
        config = self._connection.model_config(str(path))
        params = config.get("parameters", {})
        self._metadata = metadata_from_parameters(params)
        if config.get("platform") == "ensemble":
            raw = params.get(PARAM_PREFIX + "raw_model", {}).get("string_value")
            if not raw:
                raise ModelFileError(f"Triton ensemble {path!r} does not name its raw model (parameter "
                                     f"{PARAM_PREFIX}raw_model); pass the raw ONNX model's name instead")
            config = self._connection.model_config(raw)
        self.model_name = config["name"]
        self._check_io(config)

    def _check_io(self, config: dict[str, Any]) -> None:
        inputs, outputs = config.get("input", []), config.get("output", [])
        self._outputs = tuple(o["name"] for o in outputs)
        if len(inputs) != 1 or (len(outputs) != 1 and set(self._outputs) != set(END_TO_END_OUTPUTS)):
            raise ModelFileError(f"Triton model {config['name']!r} is not a YOLOX model: expected one input and one "
                                 f"raw output (or the end-to-end {', '.join(END_TO_END_OUTPUTS)}), found "
                                 f"{len(inputs)} and {list(self._outputs)}")
        self._input, self._output = inputs[0]["name"], outputs[0]["name"]
        dims = [int(d) for d in inputs[0]["dims"]]
        batched = int(config.get("max_batch_size", 0)) > 0
        shape = [None, *dims] if batched else dims
        if len(shape) != 4 or shape[1] != 3:
            raise ModelFileError(f"Triton model {config['name']!r} takes {dims}; expected [3, H, W]")
        self._shape = tuple(None if d is None or d < 0 else d for d in shape)

    def close(self) -> None:
        self._connection.close()

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
        return self._connection.infer(self.model_name, {self._input: batch}, [self._output])[self._output]

    def _run_end_to_end(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._connection.infer(self.model_name, {self._input: batch}, list(END_TO_END_OUTPUTS))
