"""Precision names and the CPU features that decide which precisions run natively."""
from __future__ import annotations

import pytest

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.precision import ARM_FEATURES, X86_FEATURES, cpu_features, normalize_precision


@pytest.mark.parametrize("spelling,name", [("fp32", "fp32"), ("F32", "fp32"), ("float32", "fp32"),
                                           ("bf16", "bf16"), ("bfloat16", "bf16"), ("f16", "fp16"),
                                           ("half", "fp16")])
def test_common_spellings_normalize(spelling, name):
    assert normalize_precision(spelling) == name


def test_unknown_precision_is_a_one_line_error():
    with pytest.raises(InvalidInputError, match="unknown precision 'int4'; use one of fp32, bf16, fp16"):
        normalize_precision("int4")


def test_cpu_features_come_from_proc_cpuinfo():
    features = cpu_features()
    assert set(features) <= set(X86_FEATURES) | set(ARM_FEATURES)
    flags = set()
    for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    assert {f for f in X86_FEATURES + ARM_FEATURES if f in flags} >= set(features)
    assert ("avx2" in features) == ("avx2" in flags)
