"""Merging the detections of overlapping slices: the C++ kernel (``merge``) or the NumPy
reference beside it (``merge_detections``), equal bit for bit.

``merge_detections`` reproduces the sahi package's postprocess (0.12.x): NMS or greedy NMM
(GREEDYNMM), matching by IoU or IOS (intersection over the smaller box), per class or
class-agnostic.

- Order: score descending, ties by x1, y1, x2, y2 (sahi's lexsort).
- Candidate matches: from a float32 metric matrix (sahi converts predictions to float32).
- Greedy NMM: each kept box absorbs the not yet suppressed lower ones that match it. Then the
  absorbed boxes are merged in order: union box, max score, class of the higher score. Ties go
  to the absorbed box.
- The sahi quirk: each absorbed box is re-checked, in float64, against the merged box
  *grown so far*. One that no longer matches is dropped, neither merged nor kept. This is
  ``recheck="sahi"``. ``recheck="none"`` merges every match of the original box, which is
  the fix offered.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError, YoloxDeployError

try:
    from . import _kernel
except ImportError:  # built by setup.py; missing only where no C++ compiler was found at install
    _kernel = None

MERGES = ("nms", "greedy_nmm")
MATCHES = ("iou", "ios")
RECHECKS = ("sahi", "none")


def slice_windows(height: int, width: int, slice_hw: tuple[int, int], overlap: float) -> list[tuple[int, int, int, int]]:
    """sahi's ``get_slice_bboxes``: (x1, y1, x2, y2) windows in image pixels, row by row; the
    last window of a row or column is moved back to end at the image edge."""
    slice_h, slice_w = slice_hw
    y_overlap, x_overlap = int(overlap * slice_h), int(overlap * slice_w)
    windows = []
    y_min = y_max = 0
    while y_max < height:
        x_min = x_max = 0
        y_max = y_min + slice_h
        while x_max < width:
            x_max = x_min + slice_w
            if y_max > height or x_max > width:  # moved back to end at the edge (y_min stays moved for the row)
                x_max, y_max = min(width, x_max), min(height, y_max)
                x_min, y_min = max(0, x_max - slice_w), max(0, y_max - slice_h)
            windows.append((x_min, y_min, x_max, y_max))
            x_min = x_max - x_overlap
        y_min = y_max - y_overlap
    return windows


def count_windows(height: int, width: int, slice_hw: tuple[int, int], overlap: float) -> int:
    """How many windows :func:`slice_windows` gives, counted per axis without listing them."""
    def along(length: int, size: int, step_back: int) -> int:
        count, start, end = 0, 0, 0
        while end < length:
            end = start + size
            count += 1
            if end >= length or size - step_back <= 0:
                break
            start = end - step_back
        return count

    return along(height, slice_hw[0], int(overlap * slice_hw[0])) * along(width, slice_hw[1], int(overlap * slice_hw[1]))


def _metric(box: np.ndarray, others: np.ndarray, match: str) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    denominator = np.minimum(area, areas) if match == "ios" else area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, inter / denominator, 0.0)


def matches_any(boxes: np.ndarray, class_ids: np.ndarray, reference: np.ndarray, reference_ids: np.ndarray,
                match: str, threshold: float, class_agnostic: bool = False) -> np.ndarray:
    """bool [N]: whether each box matches (metric >= ``threshold``) a ``reference`` box of its class
    (of any class when ``class_agnostic``). Boxes xyxy float64, [N, 4] and [M, 4]."""
    found = np.zeros(len(boxes), dtype=bool)
    for i, (box, cls) in enumerate(zip(boxes, class_ids)):
        same = reference if class_agnostic else reference[reference_ids == cls]
        found[i] = len(same) > 0 and bool((_metric(box, same, match) >= threshold).any())
    return found


def _order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))


def _groups(boxes32: np.ndarray, scores32: np.ndarray, merge: str, match: str, threshold: float
            ) -> dict[int, list[int]]:
    """keep index -> the indices it absorbs (NMS: always empty), in sahi's order."""
    order = _order(boxes32, scores32)
    suppressed = np.zeros(len(boxes32), dtype=bool)
    groups: dict[int, list[int]] = {}
    for i, idx in enumerate(order):
        if suppressed[idx]:
            continue
        rest = order[i + 1:]
        rest = rest[~suppressed[rest]]  # only the lower boxes still standing are measured
        if merge == "nms":
            groups[int(idx)] = []
            if len(rest):
                suppressed[rest[_metric(boxes32[idx], boxes32[rest], match).astype(np.float32) >= threshold]] = True
            continue
        taken = rest[_metric(boxes32[idx], boxes32[rest], match).astype(np.float32) >= threshold] \
            if len(rest) else rest
        suppressed[taken] = True
        groups[int(idx)] = [int(t) for t in taken]
    return groups


def merge_detections(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, merge: str = "greedy_nmm",
                     match: str = "ios", threshold: float = 0.5, class_agnostic: bool = False,
                     recheck: str = "sahi") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy float64 [M, 4], scores [M], class ids [M]) after the merge, in original-image
    pixels, kept boxes in score order (per class, classes in ascending id, unless agnostic)."""
    if merge not in MERGES or match not in MATCHES:
        raise ValueError(f"merge is one of {MERGES} and match one of {MATCHES}, got {merge!r}, {match!r}")
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if not len(xyxy) == len(scores) == len(class_ids):
        raise ValueError(f"merge takes as many boxes, scores and class ids, got {len(xyxy)}, {len(scores)}, "
                         f"{len(class_ids)}")
    if not (np.isfinite(xyxy).all() and np.isfinite(scores).all()):
        raise ValueError("merge takes finite boxes and scores (NaN or inf given)")
    boxes32, scores32 = xyxy.astype(np.float32), scores.astype(np.float32)
    parts = [np.arange(len(xyxy))] if class_agnostic else \
        [np.flatnonzero(class_ids == c) for c in np.unique(class_ids)]
    out_boxes, out_scores, out_classes = [], [], []
    for part in parts:
        for keep, absorbed in _groups(boxes32[part], scores32[part], merge, match, threshold).items():
            box, score, cls = xyxy[part[keep]].copy(), scores[part[keep]], class_ids[part[keep]]
            for local in absorbed:
                j = part[local]
                if recheck == "sahi" and _metric(box, xyxy[j][None], match)[0] < threshold:
                    continue
                box = np.concatenate([np.minimum(box[:2], xyxy[j][:2]), np.maximum(box[2:], xyxy[j][2:])])
                cls = cls if score > scores[j] else class_ids[j]
                score = max(score, scores[j])
            out_boxes.append(box)
            out_scores.append(score)
            out_classes.append(cls)
    if not out_boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    return np.array(out_boxes), np.array(out_scores), np.array(out_classes, dtype=np.int64)


def kernel_available() -> bool:
    """Whether the C++ kernel was built at install time (else "auto" runs the NumPy reference)."""
    return _kernel is not None


def merge(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, merge: str = "greedy_nmm",
          match: str = "ios", threshold: float = 0.5, class_agnostic: bool = False, recheck: str = "sahi",
          impl: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`merge_detections` on the C++ kernel (``impl="cpp"``, or ``"auto"`` when it is
    built) or the NumPy reference (``"numpy"``): the same numbers either way."""
    if merge not in MERGES or match not in MATCHES or recheck not in RECHECKS:
        raise InvalidInputError(f"merge is one of {MERGES}, match one of {MATCHES} and recheck one of {RECHECKS}, "
                                f"got {merge!r}, {match!r}, {recheck!r}")
    if impl == "cpp" and _kernel is None:
        raise YoloxDeployError("the C++ kernel is not built (no C++ compiler at install time): use impl='auto' "
                               "or 'numpy', or install g++ and reinstall with 'pip install .'")
    try:
        if impl == "numpy" or _kernel is None:
            return merge_detections(xyxy, scores, class_ids, merge, match, threshold, class_agnostic, recheck)
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        if not len(boxes) == np.size(scores) == np.size(class_ids):
            raise ValueError(f"merge takes as many boxes, scores and class ids, got {len(boxes)}, {np.size(scores)}, "
                             f"{np.size(class_ids)}")
        return _kernel.merge(boxes, np.asarray(scores, dtype=np.float64), np.asarray(class_ids, dtype=np.int64),
                             merge, match, float(threshold), bool(class_agnostic), recheck == "sahi")
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
