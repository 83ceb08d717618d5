"""The detections of one image."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections of one image, sorted by score (descending).

    ``xyxy``: float32 [N, 4], corners in pixels of the original image;
    ``scores``: float32 [N] (objectness x class score); ``class_ids``: int64 [N];
    ``class_names``: one name per detection; ``image_size``: (height, width) of the image.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]

    @classmethod
    def from_arrays(cls, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                    names: Sequence[str], image_size: tuple[int, int]) -> "Detections":
        return cls(np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                   np.asarray(class_ids, np.int64), tuple(names[int(c)] for c in class_ids),
                   (int(image_size[0]), int(image_size[1])))

    def __len__(self) -> int:
        return len(self.scores)

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
                 "class_id": int(cid), "class_name": name}
                for box, score, cid, name in zip(self.xyxy, self.scores, self.class_ids, self.class_names)
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
