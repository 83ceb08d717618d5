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
- ``python/src/parsers/pyOnnx.cpp``: ``OnnxParser("network", "logger")``,
  ``parse("model", "path" = None)``, ``num_errors``, ``get_error("index")``,
  ``ParserError.desc()``.
- 11.x: "Removed Python APIs and Replacements" (docs.nvidia.com, TensorRT 11.4 migration guide)
  and the 11.0 ``Builder`` page: ``BuilderFlag.FP16/INT8/FP8/BF16/INT4/FP4/
  OBEY_PRECISION_CONSTRAINTS/PREFER_PRECISION_CONSTRAINTS/DIRECT_IO``,
  ``IBuilderConfig.int8_calibrator``, ``set/get_calibration_profile``, the quantization flags,
  ``Builder.platform_has_fast_fp16/int8`` and ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``
  are gone; ``STRONGLY_TYPED`` stays (accepted, ignored: always strongly typed); ``TF32`` stays.
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

BUILDER_FLAGS_10 = ("FP16", "BF16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
                    "SPARSE_WEIGHTS", "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
                    "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "FP8",
                    "ERROR_ON_TIMING_CACHE_MISS", "DISABLE_COMPILATION_CACHE", "STRIP_PLAN", "REFIT_IDENTICAL",
                    "WEIGHT_STREAMING", "INT4", "REFIT_INDIVIDUAL", "STRICT_NANS", "MONITOR_MEMORY", "FP4",
                    "EDITABLE_TIMING_CACHE", "DISTRIBUTIVE_INDEPENDENCE")
REMOVED_BUILDER_FLAGS_11 = ("FP16", "INT8", "FP8", "BF16", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                            "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS")

ENUMS: dict[int, dict[str, tuple[str, ...]]] = {
    10: {"BuilderFlag": BUILDER_FLAGS_10,
         "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS",
                                           "PREFER_JIT_PYTHON_PLUGINS"),
         "MemoryPoolType": ("WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM", "TACTIC_DRAM",
                            "TACTIC_SHARED_MEMORY"),
         "DataType": ("FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64", "INT4", "FP4"),
         "TensorIOMode": ("NONE", "INPUT", "OUTPUT")},
}
ENUMS[11] = {**ENUMS[10],
             "BuilderFlag": tuple(f for f in BUILDER_FLAGS_10 if f not in REMOVED_BUILDER_FLAGS_11),
             "NetworkDefinitionCreationFlag": ("STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS",
                                               "PREFER_JIT_PYTHON_PLUGINS")}

# what exists in 10.x and is gone in 11.x, beyond the enum members above (class -> names)
REMOVED_IN_11 = {"IBuilderConfig": ("int8_calibrator", "set_calibration_profile", "get_calibration_profile",
                                    "set_quantization_flag"),
                 "Builder": ("platform_has_fast_fp16", "platform_has_fast_int8"),
                 "module": ("IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "IInt8Calibrator")}
