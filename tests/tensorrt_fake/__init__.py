"""A stand-in ``tensorrt`` module (labelled: no TensorRT can be installed on these machines).

Its classes, methods, parameter names and enum members are exactly those of
``surface.py`` (written from the real 10.x/11.x binding sources), so code that runs against it
calls nothing the real bindings lack; ``make_tensorrt("11.4.0")`` has none of the APIs 11.x
removed. It records every call in ``module.calls``.

What it emulates, and what it cannot:
- "building" keeps the ONNX, the network flags, the builder flags and the profile in the
  serialized bytes; "running" runs that ONNX with ONNX Runtime (FP32, CPU) on the memory the
  context's tensor addresses point at (host memory here, where a GPU would have device memory);
- the parser refuses asymmetric Q/DQ as TensorRT's does ("zeroPt must be all zeros");
- plugins: an op outside the ONNX domain (EfficientNMS_TRT, domain TRT) parses only after
  ``init_libnvinfer_plugins``, and an engine holding one deserializes only after it (TensorRT
  returns null and logs "getPluginCreator could not find plugin"); EfficientNMS_TRT's attribute
  checks (``iou_threshold > 0``, ``score_threshold >= 0``, ``max_output_boxes > 0``,
  efficientNMSPlugin.cpp) fail the parse. Running EfficientNMS itself is not emulated: an
  engine holding it builds and loads, and its execution context refuses to run;
- the current CUDA device (``torch.cuda.device``/``set_device``/``current_device`` are patched
  by :func:`install`): an engine belongs to the device current when it was deserialized;
  ``create_execution_context`` on another device returns None and ``execute_async_v3`` there
  returns False (TensorRT fails with invalid-resource-handle errors);
- ITopKLayer's limit: a TopK with k > 3840 builds, and ``execute_async_v3`` returns False, as a
  real engine fails at inference;
- ``deserialize_cuda_engine`` returns None for bytes from another (fake) version, as TensorRT does;
- ``set_timing_cache`` returns False for a cache from another (fake) GPU, and
  ``get_timing_cache`` is then None;
- ``get_tensor_shape`` of an unknown name returns empty dims.
Unverified until a GPU runs it: kernels, FP16/INT8 numerics, TF32, CUDA streams and copies.
"""
from __future__ import annotations

import ctypes
import enum
import json
import types
from typing import Any

import numpy as np

from .surface import ENUMS, REMOVED_IN_11

MAGIC = b"FAKETRT1"
TOPK_LIMIT = 3840  # ITopKLayer (NvInfer.h)
ONNX_DTYPES = {1: "FLOAT", 10: "HALF", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
         "UINT8": np.uint8, "BOOL": np.bool_}


def make_tensorrt(version: str = "10.13.0", gpu_key: str = "sm90") -> types.ModuleType:
    major = int(version.split(".")[0])
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    module.calls = []
    module.gpu_key = gpu_key  # which (fake) GPU timing caches belong to
    module.plugins_registered = False
    module.current_device = 0  # what torch.cuda.current_device() reports once install() patched it
    enums = ENUMS[min(max(major, 10), 11)]  # older versions: only their version string is looked at
    for name, members in enums.items():
        setattr(module, name, enum.IntEnum(name, dict(members)))

    def record(name: str, *args: Any) -> None:
        module.calls.append((name, args))

    def init_libnvinfer_plugins(logger, namespace):
        record("init_libnvinfer_plugins", namespace)
        module.plugins_registered = True
        return True

    module.init_libnvinfer_plugins = init_libnvinfer_plugins

    class Logger:
        WARNING, ERROR, INFO, VERBOSE = 2, 1, 3, 4

        def __init__(self, min_severity=2):
            record("Logger", min_severity)

    class ITensor:
        def __init__(self, name, shape, dtype):
            self._fields = (name, shape, dtype)

        name = property(lambda self: self._fields[0])
        shape = property(lambda self: self._fields[1])
        dtype = property(lambda self: self._fields[2])

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags = flags
            self.model = None

        @property
        def num_inputs(self):
            return len(self.model.graph.input)

        @property
        def num_outputs(self):
            return len(self.model.graph.output)

        def _tensor(self, value):
            dims = tuple(d.dim_value or -1 for d in value.type.tensor_type.shape.dim)
            return ITensor(value.name, dims, module.DataType[ONNX_DTYPES[value.type.tensor_type.elem_type]])

        def get_input(self, index):
            return self._tensor(self.model.graph.input[index])

        def get_output(self, index):
            return self._tensor(self.model.graph.output[index])

    class ParserError:
        def __init__(self, text):
            self._text = text

        def desc(self):
            return self._text

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, model, path=None):
            import onnx
            from onnx import numpy_helper

            record("OnnxParser.parse", len(model))
            try:
                parsed = onnx.load_from_string(bytes(model))
            except Exception as exc:
                self.errors.append(ParserError(f"ModelImporter: failed to parse the ONNX ({exc})"))
                return False
            inits = {i.name: i for i in parsed.graph.initializer}
            for node in parsed.graph.node:
                problem = _plugin_problem(node, module.plugins_registered)
                if problem:
                    self.errors.append(ParserError(problem))
                    return False
                if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
                    zero = inits.get(node.input[2])
                    if zero is not None and numpy_helper.to_array(zero).any():
                        self.errors.append(ParserError(f"{node.name}: Assertion failed: shiftIsAllZeros(zeroPoint) "
                                                       "&& TRT only supports symmetric quantization"))
                        return False
            self.network.model = parsed
            self.network.onnx = bytes(model)
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class IOptimizationProfile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, input, min, opt, max):  # noqa: A002 (the binding's parameter names)
            record("IOptimizationProfile.set_shape", input, tuple(min), tuple(opt), tuple(max))
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache:
        def __init__(self, key):
            self.key = key

        def serialize(self):
            return f"FAKECACHE:{self.key}".encode()

    class IBuilderConfig:
        def __init__(self):
            self.flags = {module.BuilderFlag.TF32}  # on by default, as in TensorRT
            self.profiles, self.pools, self._cache = [], {}, None

        def set_memory_pool_limit(self, pool, pool_size):
            self.pools[pool] = pool_size

        def clear_flag(self, flag):
            record("IBuilderConfig.clear_flag", flag.name)
            self.flags.discard(flag)

        def set_flag(self, flag):
            record("IBuilderConfig.set_flag", flag.name)
            self.flags.add(flag)

        def get_flag(self, flag):
            return flag in self.flags

        def add_optimization_profile(self, profile):
            for lo, opt, hi in profile.shapes.values():
                if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
                    return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(serialized_timing_cache)
            record("IBuilderConfig.create_timing_cache", len(data))
            return ITimingCache(data.decode().split(":", 1)[1] if data else module.gpu_key)

        def set_timing_cache(self, cache, ignore_mismatch):
            record("IBuilderConfig.set_timing_cache", cache.key, ignore_mismatch)
            if cache.key != module.gpu_key and not ignore_mismatch:
                return False
            self._cache = cache
            return True

        def get_timing_cache(self):
            return self._cache

    class Builder:
        def __init__(self, logger):
            record("Builder", logger)

        def create_network(self, flags=0):
            record("Builder.create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            record("Builder.build_serialized_network")
            if not config.profiles:
                return None
            plugins = sorted({n.op_type for n in network.model.graph.node if n.domain not in ("", "ai.onnx")})
            header = {"version": module.__version__, "flags": int(network.flags),
                      "builder_flags": sorted(f.name for f in config.flags),
                      "profile": {k: v for k, v in config.profiles[0].shapes.items()},
                      "plugins": plugins,
                      "built_on_device": module.current_device}
            return MAGIC + json.dumps(header).encode() + b"\n" + network.onnx

    class IExecutionContext:
        def __init__(self, engine):
            self.engine = engine
            self._session = None
            self.shapes, self.addresses = {}, {}

        def _onnxruntime(self):
            import onnxruntime as ort

            if self._session is None:
                options = ort.SessionOptions()
                options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
                self._session = ort.InferenceSession(self.engine.onnx, options, providers=["CPUExecutionProvider"])
            return self._session

        def set_input_shape(self, name, shape):
            lo, _, hi = self.engine.profile.get(name, (None, None, None))
            shape = tuple(int(d) for d in shape)
            if lo is None or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, name):
            if name in self.shapes:
                return self.shapes[name]
            if name not in self.engine.tensors:
                return ()
            batch = next(iter(self.shapes.values()), (-1,))[0]
            return (batch, *self.engine.tensors[name][2][1:])

        def set_tensor_address(self, name, memory):
            if name not in self.engine.tensors:
                return False
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle):
            record("IExecutionContext.execute_async_v3", stream_handle)
            if module.current_device != self.engine.device:
                record("error", f"engine of device {self.engine.device} run on device {module.current_device}")
                return False  # cudaErrorInvalidResourceHandle
            if any(k > TOPK_LIMIT for k in self.engine.topk):
                record("error", "ITopKLayer: K exceeds the maximum value allowed (3840)")
                return False
            if self.engine.header.get("plugins"):
                raise NotImplementedError("the stand-in tensorrt cannot run plugin layers "
                                          f"({', '.join(self.engine.header['plugins'])})")
            feeds = {}
            for name, (mode, dtype, _) in self.engine.tensors.items():
                if mode == "INPUT":
                    feeds[name] = _view(self.addresses[name], self.shapes[name], NUMPY[dtype]).copy()
            outputs = self._onnxruntime().run(None, feeds)
            for out, name in zip(outputs, (n for n, t in self.engine.tensors.items() if t[0] == "OUTPUT")):
                _view(self.addresses[name], out.shape, out.dtype)[...] = out
            return True

    class ICudaEngine:
        def __init__(self, header, onnx_bytes):
            import onnx

            self.header, self.onnx = header, onnx_bytes
            self.device = module.current_device  # deserialized onto the current device
            self.profile = {k: tuple(map(tuple, v)) for k, v in header["profile"].items()}
            model = onnx.load_from_string(onnx_bytes)
            self.topk = _topk_constants(model)
            self.tensors = {}
            for mode, values in (("INPUT", model.graph.input), ("OUTPUT", model.graph.output)):
                for v in values:
                    dims = tuple(d.dim_value or -1 for d in v.type.tensor_type.shape.dim)
                    self.tensors[v.name] = (mode, ONNX_DTYPES[v.type.tensor_type.elem_type], dims)

        @property
        def num_io_tensors(self):
            return len(self.tensors)

        def get_tensor_name(self, index):
            return list(self.tensors)[index]

        def get_tensor_mode(self, name):
            return module.TensorIOMode[self.tensors[name][0]] if name in self.tensors else module.TensorIOMode.NONE

        def get_tensor_dtype(self, name):
            return module.DataType[self.tensors[name][1]] if name in self.tensors else module.DataType.FLOAT

        def get_tensor_shape(self, name):
            return self.tensors[name][2] if name in self.tensors else ()

        def create_execution_context(self):
            if module.current_device != self.device:
                record("error", f"engine of device {self.device} given a context on device {module.current_device}")
                return None
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger):
            record("Runtime", logger)

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(MAGIC):
                return None
            header, onnx_bytes = data[len(MAGIC):].split(b"\n", 1)
            header = json.loads(header)
            if header["version"] != module.__version__:
                return None  # TensorRT logs "version tag does not match" and returns null
            if header.get("plugins") and not module.plugins_registered:
                record("error", f"getPluginCreator could not find plugin {header['plugins'][0]} version 1")
                return None
            return ICudaEngine(header, onnx_bytes)

    for cls in (Logger, Builder, INetworkDefinition, ITensor, OnnxParser, ParserError, IBuilderConfig,
                IOptimizationProfile, ITimingCache, Runtime, ICudaEngine, IExecutionContext):
        setattr(module, cls.__name__, cls)
    if major < 11:  # present in 10.x, unused by yolox_deploy, removed in 11.x
        for name in REMOVED_IN_11["module"]:
            setattr(module, name, type(name, (), {}))
        IBuilderConfig.int8_calibrator = None
        IBuilderConfig.set_calibration_profile = lambda self, profile: None
    return module


def _plugin_problem(node: Any, registered: bool) -> str | None:
    """Why the ONNX parser (onnx-tensorrt) would refuse ``node``, for ops outside the ONNX
    domain: not registered yet, or EfficientNMS_TRT attributes its creator refuses."""
    if node.domain in ("", "ai.onnx"):
        return None
    if not registered:
        return (f"{node.name}: No importer registered for op: {node.op_type}. Attempting to import as plugin. "
                "Plugin not found, are the plugin name, version, and namespace correct?")
    if node.op_type == "EfficientNMS_TRT":
        from onnx import helper

        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name, ok in (("iou_threshold", lambda v: v > 0), ("score_threshold", lambda v: v >= 0),
                         ("max_output_boxes", lambda v: v > 0)):
            if name not in attrs or not ok(attrs[name]):
                return f"{node.name}: EfficientNMS_TRT: PLUGIN_VALIDATE failed on {name} = {attrs.get(name)}"
    return None


def _topk_constants(model: Any) -> tuple[int, ...]:
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    return tuple(int(k) for n in model.graph.node if n.op_type == "TopK" and len(n.input) > 1 and n.input[1] in inits
                 for k in numpy_helper.to_array(inits[n.input[1]]).ravel())


def _view(address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A writable array over ``address`` (what a device pointer would be)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape)) * dtype.itemsize
    return np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(address)).view(dtype).reshape(shape)


class HostMemory:
    """Stand-in for the backend's CudaMemory: host tensors where device ones would be, no stream."""

    def __init__(self, torch: Any, index: int):
        self.torch, self.index = torch, index

    def device_empty(self, shape, dtype):
        return self.torch.empty(tuple(shape), dtype=dtype)

    host_empty = device_empty
    stream_handle = 0

    def active(self):
        return self.torch.cuda.device(self.index)  # the stand-in's current device (see install)

    def synchronize(self) -> None:
        pass


def install(monkeypatch: Any, version: str = "10.13.0", capability: tuple[int, int] = (9, 0),
            gpus: int = 1, name: str | None = None) -> types.ModuleType:
    """Make ``import tensorrt`` give the fake, torch report ``gpus`` CUDA devices of
    ``capability`` (named ``name``, default "Stand-in GPU smXY"; device N > 0 gets " #N"), and
    the tensorrt backend use host memory."""
    import sys

    import torch

    module = make_tensorrt(version, gpu_key=f"sm{capability[0]}{capability[1]}")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    base_name = name or f"Stand-in GPU sm{capability[0]}{capability[1]}"
    monkeypatch.setattr(torch.cuda, "get_device_name",
                        lambda index=0: base_name if not index else f"{base_name} #{index}")

    def set_device(index):
        index = int(getattr(index, "index", index) or 0)
        if not 0 <= index < gpus:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        module.current_device = index

    class device:  # noqa: N801 (torch.cuda.device's name)
        def __init__(self, index):
            self.index = int(getattr(index, "index", index) or 0)

        def __enter__(self):
            self.previous = module.current_device
            set_device(self.index)

        def __exit__(self, *exc):
            module.current_device = self.previous
            return False

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: module.current_device)
    monkeypatch.setattr(torch.cuda, "device", device)
    import yolox_deploy.runtimes.tensorrt as backend

    monkeypatch.setattr(backend, "memory_for", HostMemory)
    return module
