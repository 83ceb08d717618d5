"""Triton backend: inference on a Triton Inference Server over HTTP/REST (KServe v2).

``Detector("yolox", backend="triton", url="host:8000")`` letterboxes here, sends float32
batches to the repository's raw ONNX model (named by the ensemble's ``raw_model``
parameter, or given directly) and postprocesses the raw output here with the shared
kernel, so results equal every other backend's. For server-side postprocessing use
:class:`yolox_deploy.integrations.triton.TritonDetectionClient` on the ensemble.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..errors import BackendUnavailableError, ModelFileError, YoloxDeployError, first_line
from ..processing.end_to_end import END_TO_END_OUTPUTS
from .base import Backend, InputShape
from .registry import register

PARAM_PREFIX = "yolox_deploy."  # config.pbtxt parameters carrying our ModelMetadata
PROTOCOLS = ("http", "grpc")
_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}


class TritonConnection:
    """Triton clients for ``url`` over ``protocol`` ("http": KServe v2 REST, e.g. port 8000;
    "grpc": e.g. port 8001), one per calling thread: tritonclient's HTTP client (gevent) may
    only be used from the thread that made it ("Cannot switch to a different thread" once the
    server keeps the connection alive, as Triton does). Every call is bounded by ``timeout_s``
    and fails with a one-line error; ``close()`` closes every client made."""

    def __init__(self, url: str, timeout_s: float = 60.0, protocol: str = "http"):
        if protocol not in PROTOCOLS:
            raise YoloxDeployError(f"Triton protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.module = require(f"tritonclient.{protocol}", extra="triton", purpose="the Triton client")
        self.url, self.timeout_s, self.protocol = url, timeout_s, protocol
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[Any] = []
        self._closed = False

    def client(self) -> Any:
        """This thread's client (made on first use)."""
        client = getattr(self._local, "client", None)
        with self._lock:
            if self._closed:
                raise BackendUnavailableError(f"the Triton client for {self.url} is closed")
            if client is None:
                client = (self.module.InferenceServerClient(self.url, network_timeout=self.timeout_s,
                                                            connection_timeout=self.timeout_s)
                          if self.protocol == "http" else self.module.InferenceServerClient(self.url))
                self._made.append(client)
        self._local.client = client
        return client

    def _timeout(self) -> dict[str, float]:
        return {} if self.protocol == "http" else {"client_timeout": self.timeout_s}

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration (JSON form), or a one-line error naming the server."""
        try:
            if self.protocol == "http":
                return self.client().get_model_config(model)
            return self.client().get_model_config(model, as_json=True, **self._timeout())["config"]
        except YoloxDeployError:
            raise
        except Exception as exc:  # tritonclient's InferenceServerException, or socket/gRPC errors
            raise BackendUnavailableError(f"cannot get model {model!r} from Triton at {self.url}: "
                                          f"{first_line(exc)}") from None

    def infer(self, model: str, arrays: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Named float32/int32 inputs -> the named outputs, or a one-line error."""
        binary = {"binary_data": True} if self.protocol == "http" else {}
        inputs = []
        for name, array in arrays.items():
            tensor = self.module.InferInput(name, list(array.shape), _DATATYPES[array.dtype])
            tensor.set_data_from_numpy(array, **binary)
            inputs.append(tensor)
        requested = [self.module.InferRequestedOutput(name, **binary) for name in outputs]
        try:
            result = self.client().infer(model, inputs, outputs=requested, **self._timeout())
        except YoloxDeployError:
            raise
        except Exception as exc:
            raise BackendUnavailableError(f"Triton inference on {model!r} at {self.url} failed: "
                                          f"{first_line(exc)}") from None
        return {name: result.as_numpy(name) for name in outputs}

    def close(self) -> None:
        with self._lock:
            made, self._made, self._closed = self._made, [], True
        for client in made:
            try:
                client.close()
            except Exception:  # a client made by another thread may refuse to close from this one
                pass


def metadata_from_parameters(params: dict[str, Any]) -> ModelMetadata:
    """ModelMetadata from a model config's ``parameters`` (JSON or protobuf form)."""
    props = {}
    for key, value in params.items():
        if key.startswith(PARAM_PREFIX):
            props[key[len(PARAM_PREFIX):]] = value["string_value"] if isinstance(value, dict) else value.string_value
    return ModelMetadata.from_props(props)



@register
class TritonBackend(Backend):
    """``path``: the model name on the server (the ensemble or its raw ONNX model);
    ``url``: host:port of Triton's HTTP (``protocol="http"``, port 8000) or gRPC
    (``protocol="grpc"``, port 8001) endpoint; ``timeout_s``: bound of every call. Safe to
    share between threads (a connection per thread); ``close()`` releases them."""

    name = "triton"
    suffixes = ()
    extra = "triton"
    runtime_module = "tritonclient"
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
