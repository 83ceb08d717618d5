"""Model metadata carried by exported files (ONNX ``metadata_props``, sidecar JSON)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .._version import __version__
from ..errors import ModelFileError
from ..processing.grids import DEFAULT_STRIDES

OUTPUT_LAYOUT = ("raw [B, N, 5+C]: x, y, log w, log h offsets (not decoded), sigmoid objectness, "
                 "sigmoid class scores; strides 8/16/32, row-major")


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What a runtime needs to know beside the graph. ``input_size`` is (height, width)."""

    model_name: str = "yolox"
    input_size: tuple[int, int] | None = None
    strides: tuple[int, ...] = DEFAULT_STRIDES
    class_names: tuple[str, ...] | None = None
    output_layout: str = OUTPUT_LAYOUT
    sdk_version: str = __version__
    precision: str = "fp32"  # what the model file stores: fp32, fp16 (weights and math), int8 (Q/DQ)
    quantization: Mapping[str, Any] | None = None  # how an int8 file was made: quantizer, calibration, float nodes
    # defaults a bare Detector uses: {"conf", "iou", "max_det"} (any subset); a caller's values win
    defaults: Mapping[str, Any] | None = None
    # end-to-end models (decode + NMS in the graph): layout and the baked conf, iou, max_det, agnostic
    end_to_end: Mapping[str, Any] | None = None

    def to_props(self) -> dict[str, str]:
        """String key/values (JSON-encoded where not plain strings)."""
        return {
            "model_name": self.model_name,
            "input_size": json.dumps(list(self.input_size) if self.input_size else None),
            "strides": json.dumps(list(self.strides)),
            "class_names": json.dumps(list(self.class_names) if self.class_names else None),
            "output_layout": self.output_layout,
            "sdk_version": self.sdk_version,
            "precision": self.precision,
            "quantization": json.dumps(dict(self.quantization) if self.quantization else None),
            "defaults": json.dumps(dict(self.defaults) if self.defaults else None),
            "end_to_end": json.dumps(dict(self.end_to_end) if self.end_to_end else None),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> "ModelMetadata":
        """Inverse of :meth:`to_props`; missing keys keep their defaults (files from other tools)."""
        def load(key: str):
            try:
                return json.loads(props[key]) if key in props else None
            except (json.JSONDecodeError, RecursionError):  # RecursionError: nested too deep to read
                return None

        input_size = load("input_size")
        strides = load("strides")
        names = load("class_names")
        quantization = load("quantization")
        defaults, end_to_end = load("defaults"), load("end_to_end")
        return cls(
            model_name=props.get("model_name", "yolox"),
            input_size=tuple(int(v) for v in input_size) if input_size else None,
            strides=_checked_strides(strides) if strides else DEFAULT_STRIDES,
            class_names=tuple(str(n) for n in names) if names else None,
            output_layout=props.get("output_layout", OUTPUT_LAYOUT),
            sdk_version=props.get("sdk_version", "unknown"),
            precision=props.get("precision", "fp32"),
            quantization=quantization if isinstance(quantization, dict) else None,
            defaults=defaults if isinstance(defaults, dict) else None,
            end_to_end=end_to_end if isinstance(end_to_end, dict) else None,
        )


MAX_STRIDE = 4096


def _checked_strides(strides: Any) -> tuple[int, ...]:
    """The metadata's strides, integers in [1, MAX_STRIDE] (a 0 would divide by zero later)."""
    ok = isinstance(strides, list) and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_STRIDE
                                           for v in strides)
    if not ok:
        shown = json.dumps(strides)
        raise ModelFileError(f"the model's metadata has strides {shown if len(shown) <= 60 else shown[:57] + '...'}; "
                             f"strides are integers in [1, {MAX_STRIDE}] (8, 16, 32 for YOLOX): re-export it with "
                             "yolox-export")
    return tuple(strides)
