"""Arithmetic precisions a runtime can be asked for, and the CPU features that decide them.

Every backend computes in FP32 unless the caller asks for another precision by name; no
result depends on a runtime's CPU-dependent default (OpenVINO's CPU plugin defaults to
bf16 on CPUs with bf16 units, ncnn turns on fp16 arithmetic on ARM CPUs that have it).
"""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

RUNTIME_PRECISIONS = ("fp32", "bf16", "fp16")  # what a backend computes in (artifact precisions are separate)
# what yolox-bench rows and yolox-tune candidates (and so deploy.json) name: the artifact's precision, or bf16
# arithmetic on the FP32 model; int8-nncf-bf16: the NNCF INT8 IR whose float remainder computes in bf16;
# int8-mixed: yolox-tune's Q/DQ INT8 with the convs it measured most harmful kept float
DEPLOYED_PRECISIONS = ("fp32", "fp16", "int8", "int8-all", "int8-nncf", "bf16", "int8-nncf-bf16", "int8-mixed")
_ALIASES = {"fp32": "fp32", "f32": "fp32", "float32": "fp32",
            "bf16": "bf16", "bfloat16": "bf16",
            "fp16": "fp16", "f16": "fp16", "float16": "fp16", "half": "fp16"}

# /proc/cpuinfo flags that decide which precisions run natively (x86 'flags', ARM 'Features')
X86_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
ARM_FEATURES = ("asimd", "fphp", "asimdhp", "asimddp", "bf16", "i8mm", "sve")


def normalize_precision(name: str) -> str:
    """'fp32', 'bf16' or 'fp16' for any common spelling ('f32', 'float16', 'half' ...)."""
    from .errors import InvalidInputError

    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise InvalidInputError(f"unknown precision {name!r}; use one of {', '.join(RUNTIME_PRECISIONS)}")
    return _ALIASES[key]


@lru_cache(maxsize=1)
def cpu_features() -> tuple[str, ...]:
    """The precision-relevant features of this CPU, from /proc/cpuinfo (empty where unreadable).

    On ARM, 'asimd' is NEON and 'fphp'/'asimdhp' are FP16 arithmetic."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    wanted = ARM_FEATURES if platform.machine().lower() in ("aarch64", "arm64") else X86_FEATURES
    return tuple(f for f in wanted if f in flags)
