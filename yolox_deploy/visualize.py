"""Drawing detections on images."""
from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of the BGR uint8 image with boxes and 'name score' labels drawn; tracked
    detections get '#id name score' and one colour per track (supervision's convention)."""
    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 400))
    font_scale = 0.4 * thickness + 0.1
    ids = detections.tracker_ids if detections.tracker_ids is not None else np.full(len(detections), -1)
    for box, score, cid, name, tid in zip(detections.xyxy, detections.scores, detections.class_ids,
                                          detections.class_names, ids):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = class_color(int(tid) + 1000 if tid >= 0 else int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = f"#{int(tid)} {name} {score:.2f}" if tid >= 0 else f"{name} {score:.2f}"
        (tw, th), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - th - baseline - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + baseline + 2), color, -1)
        cv2.putText(out, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
