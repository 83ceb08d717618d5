"""Baseline: the post/pre-processing semantics of the official YOLOX ONNX Runtime demo.

Re-implemented from its documented behaviour (``demo/ONNXRuntime/onnx_inference.py`` and
``yolox/utils/demo_utils.py``) so our pipeline can be timed against what users run today:
NumPy grids rebuilt on every call, every anchor decoded (``exp`` on all N), scores for all
N x C class pairs, then a Python loop over classes, each with its own greedy NMS (IoU with
the +1 pixel convention, ``score > thr``).
"""
from __future__ import annotations

import cv2
import numpy as np


def demo_preproc(img: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)),
                         interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def demo_decode(outputs: np.ndarray, input_size: tuple[int, int], strides=(8, 16, 32)) -> np.ndarray:
    grids, expanded = [], []
    for stride in strides:
        hsize, wsize = input_size[0] // stride, input_size[1] // stride
        xv, yv = np.meshgrid(np.arange(wsize), np.arange(hsize))
        grid = np.stack((xv, yv), 2).reshape(1, -1, 2)
        grids.append(grid)
        expanded.append(np.full((*grid.shape[:2], 1), stride))
    grids = np.concatenate(grids, 1)
    expanded = np.concatenate(expanded, 1)
    outputs = outputs.copy()
    outputs[..., :2] = (outputs[..., :2] + grids) * expanded
    outputs[..., 2:4] = np.exp(outputs[..., 2:4]) * expanded
    return outputs


def demo_nms(boxes: np.ndarray, scores: np.ndarray, nms_thr: float) -> list[int]:
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= nms_thr)[0] + 1]
    return keep


def demo_multiclass_nms(boxes: np.ndarray, scores: np.ndarray, nms_thr: float, score_thr: float):
    final = []
    for cls_ind in range(scores.shape[1]):
        cls_scores = scores[:, cls_ind]
        mask = cls_scores > score_thr
        if mask.sum() == 0:
            continue
        valid_scores, valid_boxes = cls_scores[mask], boxes[mask]
        keep = demo_nms(valid_boxes, valid_scores, nms_thr)
        if keep:
            cls_inds = np.ones((len(keep), 1)) * cls_ind
            final.append(np.concatenate([valid_boxes[keep], valid_scores[keep, None], cls_inds], 1))
    return np.concatenate(final, 0) if final else None


def demo_postprocess(raw: np.ndarray, input_size: tuple[int, int], ratio: float, conf: float, iou: float):
    """Raw [1, N, 5+C] of one image -> dets [K, 6] (x1, y1, x2, y2, score, class) or None."""
    predictions = demo_decode(raw, input_size)[0]
    boxes = predictions[:, :4]
    scores = predictions[:, 4:5] * predictions[:, 5:]
    boxes_xyxy = np.ones_like(boxes)
    boxes_xyxy[:, 0] = boxes[:, 0] - boxes[:, 2] / 2.0
    boxes_xyxy[:, 1] = boxes[:, 1] - boxes[:, 3] / 2.0
    boxes_xyxy[:, 2] = boxes[:, 0] + boxes[:, 2] / 2.0
    boxes_xyxy[:, 3] = boxes[:, 1] + boxes[:, 3] / 2.0
    boxes_xyxy /= ratio
    return demo_multiclass_nms(boxes_xyxy, scores, nms_thr=iou, score_thr=conf)
