"""Greedy NMS with the official evaluator's semantics (NumPy reference).

IoU without the +1 of the demo code, a box is suppressed when IoU > threshold
(torchvision semantics), class-aware by default. Output order: score descending, ties by
candidate index ascending; the C++ kernel reproduces this order exactly.
"""
from __future__ import annotations

import numpy as np


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by ascending index."""
    return np.argsort(-scores, kind="stable")


def greedy_nms(boxes: np.ndarray, order: np.ndarray, iou_threshold: np.float32) -> list[int]:
    """Kept indices of ``boxes`` (xyxy float32 [K, 4]) visited in ``order``."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    keep = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        areas = (x2 - x1) * (y2 - y1)
        while order.size:
            i, rest = order[0], order[1:]
            keep.append(int(i))
            w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            order = rest[~(iou > iou_threshold)]  # NaN IoU (zero-area pairs) suppresses nothing
    return keep


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
        class_agnostic: bool = False) -> np.ndarray:
    """Indices of the kept boxes, score descending (ties: lower index first)."""
    thr = np.float32(iou_threshold)
    order = score_order(scores)
    if class_agnostic:
        keep = greedy_nms(boxes, order, thr)
    else:
        ordered_classes = class_ids[order]
        keep = []
        for c in np.unique(ordered_classes):
            keep.extend(greedy_nms(boxes, order[ordered_classes == c], thr))
    kept = np.sort(np.asarray(keep, dtype=np.int64))
    return kept[score_order(scores[kept])]
