"""A small stand-in for Triton in tests: serves a model repository over the KServe v2
HTTP/REST protocol with Triton's binary-tensor and model-configuration extensions.

It reads each ``config.pbtxt`` as Triton's ModelConfig, runs ``onnxruntime_onnx`` models
with ONNX Runtime, ``python`` models by loading their ``model.py`` with a minimal
``triton_python_backend_utils`` (the documented calls only), and ensembles step by step.
No dynamic batching across requests: each request runs as sent.

Kept beside the real server (tests/integrations/test_triton_server.py) only for what that
cannot cover: client tests that run without the server's own environment (a developer's
`pytest` without `.ci/triton-env`), and fast checks of the repository's Python model. CI runs both.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16}
HEADER = "Inference-Header-Content-Length"


def _pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name: str, array: np.ndarray):
            self._name, self._array = name, np.asarray(array)

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._array

    class TritonError(Exception):
        def message(self) -> str:
            return str(self)

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.output_tensors, self.error = list(output_tensors), error

    module.Tensor, module.TritonError, module.InferenceResponse = Tensor, TritonError, InferenceResponse
    module.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)
    return module


class StandInTriton:
    def __init__(self, repo: Path):
        import onnxruntime as ort
        import tritonclient.grpc.model_config_pb2 as mc
        from google.protobuf import json_format, text_format

        from yolox_deploy.runtimes.onnxruntime import fp32_session_options

        self.configs: dict[str, Any] = {}
        self.runners: dict[str, Any] = {}
        for folder in sorted(p for p in Path(repo).iterdir() if (p / "config.pbtxt").is_file()):
            config = text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())
            as_json = json_format.MessageToDict(config, preserving_proto_field_name=True)
            self.configs[config.name] = as_json
            if config.platform == "onnxruntime_onnx":
                session = ort.InferenceSession(str(folder / "1" / "model.onnx"), fp32_session_options(ort), providers=["CPUExecutionProvider"])
                self.runners[config.name] = lambda inputs, s=session: dict(
                    zip([o.name for o in s.get_outputs()], s.run(None, inputs)))
            elif config.backend == "python":
                self.runners[config.name] = self._python_model(folder / "1" / "model.py", as_json)
            elif config.platform == "ensemble":
                self.runners[config.name] = lambda inputs, c=as_json: self._ensemble(c, inputs)

    @staticmethod
    def _python_model(path: Path, config: dict[str, Any]):
        sys.modules["triton_python_backend_utils"] = _pb_utils()
        spec = importlib.util.spec_from_file_location(f"standin_{path.parent.parent.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        model.initialize({"model_config": json.dumps(config)})

        def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            request = types.SimpleNamespace(inputs={k: sys.modules["triton_python_backend_utils"].Tensor(k, v)
                                                    for k, v in inputs.items()})
            (response,) = model.execute([request])
            if response.error is not None:
                raise ValueError(str(response.error))
            return {t.name(): t.as_numpy() for t in response.output_tensors}
        return run

    def _ensemble(self, config: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = dict(inputs)
        for step in config["ensemble_scheduling"]["step"]:
            out = self.runners[step["model_name"]]({k: values[v] for k, v in step["input_map"].items()})
            values.update({v: out[k] for k, v in step["output_map"].items()})
        return {o["name"]: values[o["name"]] for o in config["output"]}

    def serve(self) -> tuple[str, ThreadingHTTPServer]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive connections, as the real server: clients reuse them

            def log_message(self, *args):
                pass

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if parts[:3] == ["v2", "health", "ready"]:
                    return self._json(200, {})
                if len(parts) >= 3 and parts[:2] == ["v2", "models"] and parts[2] in standin.configs:
                    if parts[-1] == "config":
                        return self._json(200, standin.configs[parts[2]])
                    return self._json(200, {"name": parts[2], "versions": ["1"], "platform": "standin"})
                return self._json(400, {"error": f"Request for unknown model: '{parts[2] if len(parts) > 2 else ''}'"
                                                  " is not found"})

            def do_POST(self):
                parts = self.path.strip("/").split("/")
                name = parts[2] if len(parts) > 3 and parts[3] == "infer" else None
                if name not in standin.runners:
                    return self._json(400, {"error": f"Request for unknown model: '{name}' is not found"})
                body = self.rfile.read(int(self.headers["Content-Length"]))
                split = int(self.headers.get(HEADER, len(body)))
                request, offset, inputs = json.loads(body[:split]), split, {}
                for spec in request["inputs"]:
                    size = spec.get("parameters", {}).get("binary_data_size")
                    dtype = DTYPES[spec["datatype"]]
                    if size is None:
                        array = np.asarray(spec["data"], dtype)
                    else:
                        array = np.frombuffer(body[offset:offset + size], dtype)
                        offset += size
                    inputs[spec["name"]] = array.reshape(spec["shape"])
                try:
                    outputs = standin.runners[name](inputs)
                except ValueError as exc:
                    return self._json(400, {"error": str(exc)})
                wanted = [o["name"] for o in request.get("outputs", [])] or list(outputs)
                header = {"model_name": name, "outputs": []}
                blobs = []
                for out in wanted:
                    array = np.ascontiguousarray(outputs[out])
                    datatype = next(k for k, v in DTYPES.items() if v == array.dtype)
                    header["outputs"].append({"name": out, "datatype": datatype, "shape": list(array.shape),
                                              "parameters": {"binary_data_size": array.nbytes}})
                    blobs.append(array.tobytes())
                head = json.dumps(header).encode()
                data = head + b"".join(blobs)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header(HEADER, str(len(head)))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"127.0.0.1:{server.server_address[1]}", server
