"""The part of TensorRT's Python API that yolox_deploy calls, per major version, written from
the binding sources (not from our code), so the fake in this package can be checked against it.

Sources read (NVIDIA/TensorRT on GitHub, via the search tool's stored copies, 2026-11-29):
- ``python/src/infer/pyCore.cpp`` (10.x, the version with TensorRT-RTX guards, 100,074 chars):
  ``Builder`` (``create_network("flags"_a = 0U)``, ``create_builder_config``,
  ``create_optimization_profile``, ``build_serialized_network("network"_a, "config"_a)``),
  ``IBuilderConfig`` (``set_memory_pool_limit("pool", "pool_size")``, ``clear_flag("flag")``,
  ``set_flag``, ``get_flag``, ``add_optimization_profile("profile")``,
  ``create_timing_cache("serialized_timing_cache")``, ``set_timing_cache("cache",
  "ignore_mismatch")`` returning bool, ``get_timing_cache()``), ``ITimingCache.serialize``,
  ``IOptimizationProfile.set_shape("input", "min", "opt", "max")``, ``Runtime("logger")``,
  ``deserialize_cuda_engine("serialized_engine")``, ``ICudaEngine`` (``num_io_tensors``,
  ``get_tensor_name("index")``, ``get_tensor_mode("name")``, ``get_tensor_dtype("name")``,
  ``get_tensor_shape("name")``, ``create_execution_context``), ``IExecutionContext``
  (``set_input_shape("name", "shape")``, ``get_tensor_shape("name")``,
  ``set_tensor_address("name", "memory")``, ``execute_async_v3("stream_handle")``),
  ``TensorIOMode`` {NONE, INPUT, OUTPUT}, ``NetworkDefinitionCreationFlag`` {EXPLICIT_BATCH,
  STRONGLY_TYPED, PREFER_AOT_PYTHON_PLUGINS, PREFER_JIT_PYTHON_PLUGINS}.
- ``python/src/infer/pyPlugin.cpp``: ``init_libnvinfer_plugins("logger", "namespace")`` (returns
  bool; registers EfficientNMS_TRT and TensorRT's other plugins, which ``import tensorrt`` does not).
- ``include/NvInfer.h``, ``NvInferRuntimeBase.h``: the enum values (``ENUMS``);
  ``python/src/infer/pyFoundationalTypes.cpp``: ``DataType`` including ``E8M0``.
- ``python/src/parsers/pyOnnx.cpp``: ``OnnxParser("network", "logger")``,
  ``parse("model", "path" = None)``, ``num_errors``, ``get_error("index")``,
  ``ParserError.desc()``.
- 11.x: "Removed Python APIs and Replacements" (docs.nvidia.com, TensorRT 11.4 migration guide)
  and the 11.0 ``Builder`` page: ``BuilderFlag.FP16/INT8/FP8/BF16/INT4/FP4/
  OBEY_PRECISION_CONSTRAINTS/PREFER_PRECISION_CONSTRAINTS/DIRECT_IO``,
  ``IBuilderConfig.int8_calibrator``, ``set/get_calibration_profile``, the quantization flags,
  ``Builder.platform_has_fast_fp16/int8`` and ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``
  are gone; ``STRONGLY_TYPED`` stays (accepted, ignored: always strongly typed); ``TF32`` stays.
  ``DIRECT_IO`` is listed there but, per the 11.1 bindings as reviewed for issue 35, still bound
  (deprecated); the 11.x binding source itself is not among the stored copies read here.
"""
from __future__ import annotations

# class -> method -> positional parameter names (after self); None marks a read-only property
METHODS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "Logger": {"__init__": ("min_severity",)},
    "Builder": {"__init__": ("logger",), "create_network": ("flags",), "create_builder_config": (),
                "create_optimization_profile": (), "build_serialized_network": ("network", "config")},
    "INetworkDefinition": {"num_inputs": None, "num_outputs": None, "get_input": ("index",),
                           "get_output": ("index",)},
    "ITensor": {"name": None, "shape": None, "dtype": None},
    "OnnxParser": {"__init__": ("network", "logger"), "parse": ("model", "path"), "num_errors": None,
                   "get_error": ("index",)},
    "ParserError": {"desc": ()},
    "IBuilderConfig": {"set_memory_pool_limit": ("pool", "pool_size"), "clear_flag": ("flag",),
                       "set_flag": ("flag",), "get_flag": ("flag",), "add_optimization_profile": ("profile",),
                       "create_timing_cache": ("serialized_timing_cache",),
                       "set_timing_cache": ("cache", "ignore_mismatch"), "get_timing_cache": ()},
    "IOptimizationProfile": {"set_shape": ("input", "min", "opt", "max")},
    "ITimingCache": {"serialize": ()},
    "Runtime": {"__init__": ("logger",), "deserialize_cuda_engine": ("serialized_engine",)},
    "ICudaEngine": {"num_io_tensors": None, "get_tensor_name": ("index",), "get_tensor_mode": ("name",),
                    "get_tensor_dtype": ("name",), "get_tensor_shape": ("name",), "create_execution_context": ()},
    "IExecutionContext": {"set_input_shape": ("name", "shape"), "get_tensor_shape": ("name",),
                          "set_tensor_address": ("name", "memory"), "execute_async_v3": ("stream_handle",)},
}

# enum -> {member: value}, in the binding's order. Values from include/NvInfer.h /
# NvInferRuntimeBase.h (10.13): they are explicit there, so a member removed in 11.x leaves the
# others' values as they were (11.x NetworkDefinitionCreationFlag.STRONGLY_TYPED stays 1).
BUILDER_FLAGS_10 = {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5,
                    "EDITABLE_TIMING_CACHE": 27, "TF32": 6, "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8,
                    "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10, "DIRECT_IO": 11,
                    "REJECT_EMPTY_ALGORITHMS": 12, "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14, "FP8": 15,
                    "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18, "STRIP_PLAN": 19,
                    "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21, "INT4": 22, "REFIT_INDIVIDUAL": 23,
                    "STRICT_NANS": 24, "MONITOR_MEMORY": 25, "FP4": 26, "DISTRIBUTIVE_INDEPENDENCE": 28}
# gone in 11.x (the migration guide); DIRECT_IO is still bound in 11.1 (deprecated, not removed)
REMOVED_BUILDER_FLAGS_11 = ("FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                            "PREFER_PRECISION_CONSTRAINTS", "REJECT_EMPTY_ALGORITHMS")

ENUMS: dict[int, dict[str, dict[str, int]]] = {
    10: {"BuilderFlag": BUILDER_FLAGS_10,
         "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_AOT_PYTHON_PLUGINS": 3,
                                           "PREFER_JIT_PYTHON_PLUGINS": 2},
         "MemoryPoolType": {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2, "DLA_GLOBAL_DRAM": 3,
                            "TACTIC_DRAM": 4, "TACTIC_SHARED_MEMORY": 5},
         "DataType": {"FLOAT": 0, "HALF": 1, "BF16": 7, "INT8": 2, "INT32": 3, "INT64": 8, "BOOL": 4, "UINT8": 5,
                      "FP8": 6, "INT4": 9, "FP4": 10, "E8M0": 11},
         "TensorIOMode": {"NONE": 0, "INPUT": 1, "OUTPUT": 2}},
}
ENUMS[11] = {**ENUMS[10],
             "BuilderFlag": {k: v for k, v in BUILDER_FLAGS_10.items() if k not in REMOVED_BUILDER_FLAGS_11},
             "NetworkDefinitionCreationFlag": {k: v for k, v in ENUMS[10]["NetworkDefinitionCreationFlag"].items()
                                               if k != "EXPLICIT_BATCH"}}

# module-level functions -> parameter names (python/src/infer/pyPlugin.cpp)
FUNCTIONS: dict[str, tuple[str, ...]] = {"init_libnvinfer_plugins": ("logger", "namespace")}

# what exists in 10.x and is gone in 11.x, beyond the enum members above (class -> names)
REMOVED_IN_11 = {"IBuilderConfig": ("int8_calibrator", "set_calibration_profile", "get_calibration_profile",
                                    "set_quantization_flag"),
                 "Builder": ("platform_has_fast_fp16", "platform_has_fast_int8"),
                 "module": ("IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "IInt8Calibrator")}
