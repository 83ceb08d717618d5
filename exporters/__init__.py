"""Exporters: PyTorch -> ONNX (FP32, FP16, Q/DQ INT8, end-to-end), then ONNX -> TensorRT,
OpenVINO, ncnn and a Triton repository.

A new exporter is one module here: a function decorated with ``@register("target")``
(``from .registry import register``); :func:`get_exporter` finds it by its ``--to`` name.
"""
from __future__ import annotations

from .registry import Exporter, export_targets, exporter_source, get_exporter, register

__all__ = ["Exporter", "export_targets", "exporter_source", "get_exporter", "register"]
