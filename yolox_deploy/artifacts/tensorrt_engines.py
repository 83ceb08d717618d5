"""TensorRT engines: the version and GPU gates, the strongly typed build, the I/O table and
the sidecar. Shared by ``yolox-export --to trt``, the tensorrt runtime and its engine cache.

Every TensorRT call here exists, with these argument counts, in the Python bindings of
TensorRT 10.0 through 11.x (``tests/tensorrt_fake/surface.py`` lists them, written from
NVIDIA/TensorRT ``python/src/infer/pyCore.cpp``, ``pyGraph.cpp`` and
``python/src/parsers/pyOnnx.cpp``, and from the 10.x -> 11.x migration guide). Precision is
not a builder setting: the network is strongly typed, so the ONNX decides it (FP32, FP16
ONNX, or symmetric INT8 Q/DQ ONNX), exactly as ONNX Runtime ran it on the CPU.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, ModelFileError, YoloxDeployError
from .metadata import ModelMetadata
from .sidecar import read_sidecar, write_sidecar

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "yolox_deploy.tensorrt/2"
MIN_TENSORRT = (10, 0)  # strongly typed networks with Q/DQ INT8, name-based I/O (enqueueV3)
DEFAULT_WORKSPACE_GIB = 4.0
INSTALL_HINT = "pip install 'yolox-deploy[tensorrt]'"
# TensorRT DataType name -> numpy dtype name, for the I/O types we can feed and read
DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64", "INT8": "int8",
          "UINT8": "uint8", "BOOL": "bool", "BF16": "bfloat16"}
# ITopKLayer takes K <= 3840 (NvInfer.h); an end-to-end ONNX's TopK k is its --max-det
TRT_TOPK_LIMIT = 3840
_PLUGINS_REGISTERED: dict[int, Any] = {}  # id(tensorrt module) -> the module (kept alive), once registered


def version_tuple(version: str) -> tuple[int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return (numbers + [0, 0])[0], (numbers + [0, 0])[1]


def check_tensorrt_version(version: str, what: str = "building or running an engine") -> None:
    """Refuse a TensorRT older than 10.0 (no strongly typed build, no name-based I/O); 10.x and
    11.x share one code path."""
    if version_tuple(version) < MIN_TENSORRT:
        raise BackendUnavailableError(
            f"{what} needs TensorRT >= {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} (strongly typed networks, which an FP16 "
            f"or Q/DQ INT8 ONNX builds as), and TensorRT {version} is installed: pip install -U 'tensorrt>=10'")


def import_tensorrt(what: str) -> Any:
    from .._optional import require

    trt = require("tensorrt", extra="tensorrt", purpose=what)
    check_tensorrt_version(getattr(trt, "__version__", "0"), what)
    return trt


def register_plugins(trt: Any, logger: Any) -> None:
    """Register TensorRT's own plugins (EfficientNMS_TRT ...) once per process: ``import
    tensorrt`` does not, and the ONNX parser and the deserializer look plugin ops up in that
    registry (``initLibNvInferPlugins``, as NVIDIA's samples and Polygraphy call it)."""
    if id(trt) in _PLUGINS_REGISTERED:
        return
    if not trt.init_libnvinfer_plugins(logger, ""):
        raise BackendUnavailableError("TensorRT could not register its plugins (init_libnvinfer_plugins returned "
                                      "False): check that libnvinfer_plugin is installed with tensorrt")
    _PLUGINS_REGISTERED[id(trt)] = trt


@contextlib.contextmanager
def on_gpu(gpu: "Gpu") -> Iterator[None]:
    """Make ``gpu`` the current CUDA device: TensorRT builds, deserializes and creates
    execution contexts on the current device (as trtexec sets it first)."""
    import torch

    with torch.cuda.device(gpu.index):
        yield


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One CUDA device: its index, name and compute capability ("8.6", "9.0")."""

    index: int
    name: str
    capability: str


def parse_cuda_device(device: str) -> int:
    match = re.fullmatch(r"cuda(?::(\d+))?", device.strip())
    if match is None:
        raise BackendUnavailableError(f"TensorRT runs on a GPU: use device='cuda' or 'cuda:N', not {device!r}")
    return int(match.group(1) or 0)


def cuda_gpu(device: str = "cuda") -> Gpu:
    """The GPU ``device`` names ("cuda", "cuda:1"), or a one-line error when there is none."""
    index = parse_cuda_device(device)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        raise BackendUnavailableError("TensorRT needs an NVIDIA GPU with CUDA, and none is visible here (with a CUDA "
                                      f"build of torch: {INSTALL_HINT})")
    count = torch.cuda.device_count()
    if index >= count:
        raise BackendUnavailableError(f"device {device!r} asked for, and this machine has {count} GPU(s): use "
                                      f"cuda:0..cuda:{count - 1}")
    major, minor = torch.cuda.get_device_capability(index)
    return Gpu(index, torch.cuda.get_device_name(index), f"{major}.{minor}")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Batch sizes of the optimisation profile: TensorRT tunes for ``opt`` and accepts
    ``min``..``max``."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, batch: int | Sequence[int], onnx_batch: int | None = None) -> "Profile":
        """``--batch N`` (static) or ``--batch MIN OPT MAX`` (dynamic); ``onnx_batch`` is the
        ONNX input's batch dimension (None: dynamic, or not known yet)."""
        values = [int(batch)] if isinstance(batch, int) else [int(v) for v in batch]
        if len(values) == 1:
            values *= 3
        if len(values) != 3:
            raise YoloxDeployError(f"--batch takes N or MIN OPT MAX, got {values}")
        lo, opt, hi = values
        if not 1 <= lo <= opt <= hi:
            raise YoloxDeployError(f"batch profile needs 1 <= MIN <= OPT <= MAX, got {lo} {opt} {hi}")
        if onnx_batch is not None and (lo, opt, hi) != (onnx_batch,) * 3:
            raise YoloxDeployError(f"the ONNX has a static batch of {onnx_batch}; a profile of {lo} {opt} {hi} "
                                   f"needs an ONNX exported with --dynamic (or --batch {onnx_batch})")
        return cls(lo, opt, hi)

    @property
    def static(self) -> bool:
        return self.min == self.max

    def shapes(self, input_hw: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
        return tuple((b, 3, *input_hw) for b in (self.min, self.opt, self.max))


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor: name, numpy dtype name, shape (-1: dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorSpec":
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["shape"]))


def dtype_name(trt_dtype: Any) -> str:
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    return DTYPES.get(name, name.lower())


def engine_io(trt: Any, engine: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of a deserialized engine, in its I/O order."""
    inputs, outputs = [], []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        spec = TensorSpec(name, dtype_name(engine.get_tensor_dtype(name)),
                          tuple(int(d) for d in engine.get_tensor_shape(name)))
        mode = engine.get_tensor_mode(name)
        if mode == trt.TensorIOMode.INPUT:
            inputs.append(spec)
        elif mode == trt.TensorIOMode.OUTPUT:
            outputs.append(spec)
    return inputs, outputs


def check_model_io(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], name: str) -> bool:
    """One float image input [B, 3, H, W], and either one float output [B, N, 5 + C] (what the
    shared postprocess reads) or the four end-to-end outputs; returns True for the latter.
    Anything else is refused before it could be read as garbage."""
    from ..processing.end_to_end import END_TO_END_OUTPUTS

    floats = ("float32", "float16")
    problems = []
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].dtype not in floats:
        problems.append(f"inputs {[(t.name, t.dtype, t.shape) for t in inputs]} (expected one float [B, 3, H, W])")
    by_name = {t.name: t for t in outputs}
    end_to_end = set(by_name) == set(END_TO_END_OUTPUTS)
    if end_to_end:
        want = {"num_dets": ("int32", 2), "boxes": (floats, 3), "scores": (floats, 2), "class_ids": ("int32", 2)}
        for key, (dtypes, rank) in want.items():
            if by_name[key].dtype not in dtypes or len(by_name[key].shape) != rank:
                problems.append(f"output {key} is {by_name[key].dtype} {by_name[key].shape}")
    elif len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].dtype not in floats:
        problems.append(f"outputs {[(t.name, t.dtype, t.shape) for t in outputs]} (expected one float "
                        f"[B, N, 5 + C], or {', '.join(END_TO_END_OUTPUTS)})")
    if problems:
        raise ModelFileError(f"{name} is not a YOLOX detector engine: {'; '.join(problems)}")
    return end_to_end


@dataclasses.dataclass(frozen=True)
class OnnxSource:
    """The ONNX an engine is built from: its bytes, stored precision, input name, batch
    dimension (None: dynamic), input size and metadata."""

    data: bytes
    name: str
    precision: str
    input_name: str
    batch: int | None
    input_hw: tuple[int, int]
    metadata: ModelMetadata

    unbuildable_qdq: tuple[str, ...] = ()  # Q/DQ nodes TensorRT refuses (see check_buildable)
    topk_k: tuple[int, ...] = ()  # the constant k of each TopK node (an end-to-end graph's --max-det)

    @classmethod
    def read(cls, path: Path, name: str | None = None) -> "OnnxSource":
        from .onnx_inspect import asymmetric_qdq_nodes, load_onnx, stored_precision

        name = name or path.name
        if not path.is_file():
            raise ModelFileError(f"model file not found: {path}")
        data = path.read_bytes()
        model = load_onnx(data, name)
        dims = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[2] is None or dims[3] is None:
            raise YoloxDeployError(f"{name} has input dims {dims}; TensorRT needs a fixed height and "
                                   "width: export it with --input-size H W (without --dynamic-hw)")
        metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
        if metadata.input_size is None:
            metadata = dataclasses.replace(metadata, input_size=(dims[2], dims[3]))
        precision = stored_precision(model)
        return cls(data, name, precision, model.graph.input[0].name, dims[0], (dims[2], dims[3]), metadata,
                   tuple(asymmetric_qdq_nodes(model)) if precision == "int8" else (), topk_constants(model))

    def check_buildable(self) -> None:
        """Refuse what TensorRT cannot build or run: a Q/DQ ONNX it cannot build (asymmetric
        uint8 activations, int32 biases), a TopK over its 3840 limit (the engine would build,
        then fail at inference)."""
        over = [k for k in self.topk_k if k > TRT_TOPK_LIMIT]
        if over:
            raise YoloxDeployError(
                f"{self.name} has a TopK of k={max(over)} and TensorRT's TopK takes k <= {TRT_TOPK_LIMIT} (the engine "
                f"would fail at inference): re-export it with --nms and --max-det <= {TRT_TOPK_LIMIT}")
        if self.unbuildable_qdq:
            raise YoloxDeployError(
                f"{self.name} has {len(self.unbuildable_qdq)} Q/DQ nodes TensorRT cannot build (e.g. "
                f"{self.unbuildable_qdq[0]}: it takes signed INT8 with zero point 0 only): give --to trt the FP32 model "
                "with --int8, or make the ONNX with `yolox-export --to onnx --int8 --int8-symmetric`")


def topk_constants(model: Any) -> tuple[int, ...]:
    """The k of every TopK node whose k is an initializer or a Constant node."""
    from onnx import numpy_helper

    constants = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = node.attribute[0].t
    found = []
    for node in model.graph.node:
        if node.op_type == "TopK" and len(node.input) > 1 and node.input[1] in constants:
            found.extend(int(k) for k in numpy_helper.to_array(constants[node.input[1]]).ravel())
    return tuple(found)


def parse_onnx(trt: Any, network: Any, logger: Any, onnx_bytes: bytes, name: str) -> None:
    register_plugins(trt, logger)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise YoloxDeployError(f"TensorRT could not parse {name}: {errors[:300] or 'no error given'}")


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    """Attach the timing cache read from ``path`` (an empty one when missing or written by
    another TensorRT or GPU, which TensorRT refuses: then the build starts afresh)."""
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, False):
        return cache
    if data:
        log.warning("timing cache %s does not match this TensorRT/GPU; building with a new one", path)
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, False):
            return cache
    raise YoloxDeployError(f"TensorRT refused an empty timing cache for {path}; build without --timing-cache")


def _save_timing_cache(config: Any, path: Path | None) -> None:
    if path is None:
        return
    cache = config.get_timing_cache()
    if cache is None:
        log.warning("TensorRT returned no timing cache; %s is not updated", path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(bytes(cache.serialize()))
    os.replace(tmp.name, path)


def build_serialized_engine(trt: Any, onnx_bytes: bytes, name: str, profile: Profile, input_hw: tuple[int, int],
                            workspace_gib: float = DEFAULT_WORKSPACE_GIB, timing_cache: Path | None = None) -> bytes:
    """Parse ``onnx_bytes`` into a strongly typed network and build it for ``profile``.

    TF32 is cleared: it is on by default and would let FP32 convolutions round their inputs to
    10-bit mantissas on Ampere and later, so an "FP32" engine (or the float layers of an INT8
    one) would no longer match the ONNX it came from."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parse_onnx(trt, network, logger, onnx_bytes, name)
    if network.num_inputs != 1:
        raise YoloxDeployError(f"{name} has {network.num_inputs} inputs; a YOLOX ONNX has one (images)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.clear_flag(trt.BuilderFlag.TF32)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(network.get_input(0).name, *profile.shapes(input_hw))
    if config.add_optimization_profile(opt_profile) < 0:
        raise YoloxDeployError(f"TensorRT refused the batch profile {profile.min}/{profile.opt}/{profile.max} for {name}")
    _load_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise YoloxDeployError(f"TensorRT failed to build {name} (its log above says why)")
    _save_timing_cache(config, timing_cache)
    return bytes(serialized)


def deserialize(trt: Any, data: bytes, name: str) -> Any:
    """(engine, runtime) on the current device (see :func:`on_gpu`); plugins registered first."""
    logger = trt.Logger(trt.Logger.WARNING)
    register_plugins(trt, logger)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise ModelFileError(f"TensorRT could not deserialize {name} (corrupt, or built by another TensorRT or for "
                             "another GPU); rebuild it with `yolox-export --to trt`")
    return engine, runtime


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """What the sidecar of an engine says: how, where and from what it was built."""

    tensorrt_version: str
    precision: str  # of the ONNX it was built from: fp32, fp16 or int8
    profile: Profile
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    gpu_name: str
    compute_capability: str
    onnx_sha256: str
    metadata: ModelMetadata

    def to_json(self) -> dict[str, Any]:
        return {"tensorrt_version": self.tensorrt_version, "precision": self.precision,
                "profile": dataclasses.asdict(self.profile), "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs],
                "gpu": {"name": self.gpu_name, "compute_capability": self.compute_capability},
                "onnx_sha256": self.onnx_sha256, "metadata": self.metadata.to_props()}

    @classmethod
    def from_json(cls, data: dict[str, Any], name: str) -> "EngineRecord":
        try:
            return cls(str(data["tensorrt_version"]), str(data["precision"]), Profile(**data["profile"]),
                       tuple(TensorSpec.from_json(t) for t in data["inputs"]),
                       tuple(TensorSpec.from_json(t) for t in data["outputs"]), str(data["gpu"]["name"]),
                       str(data["gpu"]["compute_capability"]), str(data["onnx_sha256"]),
                       ModelMetadata.from_props(data.get("metadata", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"the sidecar of {name} lacks {exc}; rebuild the engine with `yolox-export --to trt`")\
                from None

    def stale_for(self, trt_version: str, gpu: Gpu) -> str | None:
        """Why this engine cannot run with ``trt_version`` on ``gpu``, or None when it can."""
        if self.tensorrt_version != trt_version:
            return (f"was built with TensorRT {self.tensorrt_version}, this is TensorRT {trt_version} (engines only run "
                    "on the version that built them)")
        if self.compute_capability != gpu.capability:
            return (f"was built for compute capability {self.compute_capability} ({self.gpu_name}), this GPU is "
                    f"{gpu.capability} ({gpu.name})")
        return None


def write_engine(path: Path, serialized: bytes, record: EngineRecord) -> None:
    """The engine and its sidecar, landing together or not at all."""
    from .staging import staged_into

    with staged_into(path.parent) as stage:
        staged = stage / path.name
        staged.write_bytes(serialized)
        write_sidecar(staged, SIDECAR_FORMAT, record.to_json())


def build_engine_file(trt: Any, source: OnnxSource, profile: Profile, gpu: Gpu, path: Path,
                      workspace_gib: float = DEFAULT_WORKSPACE_GIB, timing_cache: Path | None = None) -> EngineRecord:
    """Build ``source`` for ``profile``, check the engine's I/O, and write the engine and its
    sidecar at ``path`` (together or not at all); returns the sidecar's record."""
    source.check_buildable()
    with on_gpu(gpu):  # the build and the check read the requested GPU, not device 0
        serialized = build_serialized_engine(trt, source.data, source.name, profile, source.input_hw, workspace_gib,
                                             timing_cache)
        engine, _runtime = deserialize(trt, serialized, path.name)
    inputs, outputs = engine_io(trt, engine)
    check_model_io(inputs, outputs, path.name)
    record = EngineRecord(trt.__version__, source.precision, profile, tuple(inputs), tuple(outputs), gpu.name,
                          gpu.capability, sha256_of(source.data), source.metadata)
    write_engine(path, serialized, record)
    return record


def read_engine_record(engine: Path) -> EngineRecord:
    data = read_sidecar(engine, SIDECAR_FORMAT, "TensorRT version, GPU, profile, I/O, class names",
                        "build the engine with `yolox-export --to trt`")
    return EngineRecord.from_json(data, engine.name)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
