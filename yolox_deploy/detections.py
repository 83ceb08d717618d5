"""The detections of one image."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidInputError

if TYPE_CHECKING:
    import supervision as sv


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections of one image, sorted by score (descending).

    ``xyxy``: float32 [N, 4], corners in pixels of the original image;
    ``scores``: float32 [N] (objectness x class score); ``class_ids``: int64 [N];
    ``class_names``: one name per detection; ``image_size``: (height, width) of the image;
    ``tracker_ids``: int64 [N] from :meth:`Detector.track` (-1: no confirmed track), else None.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    tracker_ids: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                    names: Sequence[str], image_size: tuple[int, int]) -> "Detections":
        return cls(np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                   np.asarray(class_ids, np.int64), tuple(names[int(c)] for c in class_ids),
                   (int(image_size[0]), int(image_size[1])))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: Any) -> "Detections":
        """The detections selected by a boolean mask, an index array or a slice."""
        rows = np.arange(len(self))[index]
        rows = np.atleast_1d(rows)
        return Detections(self.xyxy[rows], self.scores[rows], self.class_ids[rows],
                          tuple(self.class_names[int(i)] for i in rows), self.image_size,
                          None if self.tracker_ids is None else self.tracker_ids[rows])

    def with_tracker_ids(self, tracker_ids: np.ndarray) -> "Detections":
        ids = np.asarray(tracker_ids, np.int64).reshape(-1)
        if len(ids) != len(self):
            raise ValueError(f"{len(ids)} tracker ids for {len(self)} detections")
        return dataclasses.replace(self, tracker_ids=ids)

    def to_supervision(self) -> "sv.Detections":
        """A ``supervision.Detections``: ``xyxy`` (original-image pixels), ``confidence``,
        ``class_id``, ``tracker_id`` (when tracked) and ``data["class_name"]``."""
        from ._optional import require

        sv = require("supervision", extra="supervision", purpose="Detections.to_supervision()")
        return sv.Detections(xyxy=self.xyxy.copy(), confidence=self.scores.copy(), class_id=self.class_ids.copy(),
                             tracker_id=None if self.tracker_ids is None else self.tracker_ids.copy(),
                             data={"class_name": np.array(self.class_names, dtype=str)})

    @classmethod
    def from_supervision(cls, detections: "sv.Detections", image_size: tuple[int, int],
                         class_names: Sequence[str] | None = None) -> "Detections":
        """From a ``supervision.Detections`` (boxes in pixels of an image of ``image_size``,
        (height, width)). Names come from ``data["class_name"]``, else ``class_names[class_id]``,
        else the class id; a missing confidence reads as 1 and a missing class id as 0."""
        n = len(detections)
        xyxy = np.asarray(detections.xyxy, np.float32)
        if xyxy.shape != (n, 4):
            raise InvalidInputError(f"supervision detections must have xyxy of shape [N, 4], got {xyxy.shape}")
        scores = np.ones(n, np.float32) if detections.confidence is None else np.asarray(detections.confidence,
                                                                                          np.float32)
        class_ids = np.zeros(n, np.int64) if detections.class_id is None else np.asarray(detections.class_id, np.int64)
        if "class_name" in detections.data:
            names = tuple(str(v) for v in detections.data["class_name"])
        elif class_names is not None:
            names = tuple(str(class_names[int(c)]) for c in class_ids)
        else:
            names = tuple(str(int(c)) for c in class_ids)
        tracker_ids = None if detections.tracker_id is None else np.asarray(detections.tracker_id, np.int64)
        return cls(xyxy, scores, class_ids, names, (int(image_size[0]), int(image_size[1])), tracker_ids)

    @property
    def xywh(self) -> np.ndarray:
        """float32 [N, 4]: top-left x, y, width, height (COCO box format)."""
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types, JSON-serialisable."""
        return {
            "image_size": list(self.image_size),
            "detections": [
                {"box_xyxy": [float(v) for v in box], "score": float(score),
                 "class_id": int(cid), "class_name": name,
                 **({} if self.tracker_ids is None else {"track_id": int(self.tracker_ids[i])})}
                for i, (box, score, cid, name) in enumerate(zip(self.xyxy, self.scores, self.class_ids,
                                                               self.class_names))
            ],
        }

    def to_coco(self, image_id: int, category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """COCO results entries; ``category_ids[class_id]`` maps to dataset ids (default: class id)."""
        return [
            {"image_id": int(image_id),
             "category_id": int(category_ids[int(cid)] if category_ids is not None else cid),
             "bbox": [float(v) for v in box], "score": float(score)}
            for box, score, cid in zip(self.xywh, self.scores, self.class_ids)
        ]
