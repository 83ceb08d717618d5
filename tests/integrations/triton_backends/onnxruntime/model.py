"""TEST STAND-IN for NVIDIA's C++ onnxruntime backend, which the nvidia-pytriton wheel does not ship.

A Python-based Triton backend named ``onnxruntime``: models with ``platform: "onnxruntime_onnx"``
(our exported ``yolox_onnx``) load unchanged and run ``model.onnx`` with the onnxruntime
package, requests of one execution concatenated into one batch. Everything else in the
tests (server, HTTP protocol, dynamic batching, the python backend, the ensemble) is Triton's own.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()  # FP32 stated, as everywhere in yolox_deploy (fp32_session_options)
        options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        sizes = [f[self.inputs[0]].shape[0] for f in feeds]
        merged = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
        results = self.session.run(self.outputs, merged)
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(n, r[start:start + size]) for n, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
