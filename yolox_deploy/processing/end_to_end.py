"""End-to-end models (decode + NMS inside the graph, ``yolox-export --nms``): their outputs
and what is left for the host to do (ratio scaling and clipping).

Layout (TensorRT EfficientNMS / DeepStream): ``num_dets`` int32 [B, 1], ``boxes`` float32
[B, M, 4] xyxy in letterboxed-input pixels, ``scores`` float32 [B, M], ``class_ids`` int32
[B, M], zero-padded past ``num_dets``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import InvalidInputError, ModelFileError

try:
    from . import _kernel
except ImportError:  # built by setup.py; missing only where no C++ compiler was found at install
    _kernel = None

END_TO_END_OUTPUTS = ("num_dets", "boxes", "scores", "class_ids")  # TensorRT EfficientNMS / DeepStream layout


class EndToEndOutputs(NamedTuple):
    num_dets: np.ndarray  # int32 [B, 1]
    boxes: np.ndarray  # float32 [B, M, 4], xyxy letterboxed-input pixels
    scores: np.ndarray  # float32 [B, M]
    class_ids: np.ndarray  # int32 [B, M]

    @classmethod
    def checked(cls, outputs: Mapping[str, np.ndarray] | Sequence[np.ndarray], batch: int,
                name: str) -> "EndToEndOutputs":
        """The four outputs (by name, or in layout order), checked for shape and count."""
        arrays = [outputs[k] for k in END_TO_END_OUTPUTS] if isinstance(outputs, Mapping) else list(outputs)
        num, boxes, scores, classes = (np.asarray(a) for a in arrays)
        m = boxes.shape[1] if boxes.ndim == 3 else -1
        if (num.shape != (batch, 1) or boxes.shape != (batch, m, 4) or scores.shape != (batch, m)
                or classes.shape != (batch, m)):
            raise ModelFileError(f"{name} returned end-to-end outputs of shapes {[a.shape for a in arrays]} for a batch "
                                 f"of {batch}; expected [{batch}, 1], [{batch}, M, 4], [{batch}, M], [{batch}, M]")
        if ((num < 0) | (num > m)).any():
            raise ModelFileError(f"{name} reported num_dets {num.ravel().tolist()} outside 0..{m}")
        return cls(num.astype(np.int32, copy=False), boxes.astype(np.float32, copy=False),
                   scores.astype(np.float32, copy=False), classes.astype(np.int32, copy=False))

    def image(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = int(self.num_dets[b, 0])
        return self.boxes[b, :k], self.scores[b, :k], self.class_ids[b, :k]


def to_image_pixels(boxes: np.ndarray, ratio: float, image_hw: tuple[int, int] | None) -> np.ndarray:
    """Letterboxed-input xyxy -> original-image pixels (divided by the ratio, clipped if
    ``image_hw`` is given): the same arithmetic as the shared postprocess."""
    out = boxes / np.float32(ratio)
    if image_hw is not None:
        np.clip(out[:, 0::2], 0, np.float32(image_hw[1]), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, np.float32(image_hw[0]), out=out[:, 1::2])
    return out.astype(np.float32, copy=False)


def end_to_end_detections(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, conf: float,
                          max_det: int | None, ratio: float, image_hw: tuple[int, int] | None,
                          impl: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's end-to-end detections (letterboxed-input xyxy) -> those with score >= conf, at
    most ``max_det`` (None: all), as (xyxy float32 [K, 4] in original-image pixels, scores
    float32 [K], class ids int64 [K]); the shared C++ core does it when built (``impl``)."""
    if impl != "numpy" and _kernel is not None:
        return _kernel.end_to_end(boxes, scores, class_ids.astype(np.int32, copy=False), float(conf),
                                  -1 if max_det is None else int(max_det), float(ratio),
                                  [] if image_hw is None else [int(image_hw[0]), int(image_hw[1])])
    keep = np.flatnonzero(scores >= np.float32(conf))[:max_det]
    return (to_image_pixels(boxes[keep], ratio, image_hw), scores[keep].astype(np.float32, copy=False),
            class_ids[keep].astype(np.int64))


def check_settings_against_baked(baked: Mapping[str, Any], conf: float, iou: float | None, max_det: int | None,
                                 agnostic: bool | None, name: str) -> None:
    """Refuse settings an end-to-end graph cannot honour: it already dropped boxes below its
    conf, ran its NMS at its iou and kept at most its max_det."""
    b_conf, b_iou, b_max, b_agnostic = (baked.get(k) for k in ("conf", "iou", "max_det", "agnostic"))
    if b_conf is not None and conf < b_conf:
        raise InvalidInputError(f"{name} has conf {b_conf} baked into its graph and cannot return boxes below it "
                                f"(asked conf={conf}); re-export with `yolox-export --nms --conf {conf}`")
    if iou is not None and b_iou is not None and abs(iou - b_iou) > 1e-9:
        raise InvalidInputError(f"{name} runs NMS at iou {b_iou} inside its graph (asked iou={iou}); re-export with "
                                f"`yolox-export --nms --iou {iou}`")
    if max_det is not None and b_max is not None and max_det > b_max:
        raise InvalidInputError(f"{name} keeps at most {b_max} detections (asked max_det={max_det}); re-export with "
                                f"`yolox-export --nms --max-det {max_det}`")
    if max_det is None and b_max is not None:
        raise InvalidInputError(f"{name} keeps at most {b_max} detections and cannot return all (max_det=None); "
                                "pass max_det <= that, or re-export with a larger --max-det")
    if agnostic is not None and b_agnostic is not None and bool(agnostic) != bool(b_agnostic):
        raise InvalidInputError(f"{name} runs {'class-agnostic' if b_agnostic else 'class-aware'} NMS inside its "
                                f"graph (asked class_agnostic={agnostic}); re-export with{'out' if b_agnostic else ''} "
                                "--agnostic")
