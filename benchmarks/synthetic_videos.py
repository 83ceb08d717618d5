"""Short videos made of real COCO pixels (the shared images), with the ground-truth boxes of
the people in every frame, written with OpenCV's real mp4v encoder: for the tracking tests
and the video benchmarks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FPS = 25.0
PAN_IMAGE = "000000491008.jpg"  # two people side by side, 640x427
PAN_PEOPLE = [(216, 174, 126, 251), (353, 147, 122, 280)]  # COCO xywh
CROSSING_SOURCES = [("000000261888.jpg", (362, 143, 97, 250)), ("000000343937.jpg", (275, 15, 135, 394))]


def _write(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def pan_video(coco_dir: Path, out: Path, frames: int = 40, step: int = 4,
              image_name: str = PAN_IMAGE) -> tuple[Path, list[list[tuple]]]:
    """A camera panning across a photo (default: two people in a street): a 480x360 window
    moving right ``step`` px per frame. Returns the video and, per frame, the two people's
    boxes (xyxy, frame pixels; meaningful for the default photo)."""
    image = cv2.imread(str(coco_dir / "images" / image_name))
    if image.shape[0] < 427 or image.shape[1] < 480 + step * (frames - 1):
        image = cv2.resize(image, (max(640, 480 + step * (frames - 1)), 427))
    y0 = 67
    clips, truth = [], []
    for i in range(frames):
        x0 = i * step
        clips.append(np.ascontiguousarray(image[y0:y0 + 360, x0:x0 + 480]))
        truth.append([(x - x0, y - y0, x - x0 + w, y - y0 + h) for x, y, w, h in PAN_PEOPLE])
    return _write(out, clips), truth


def crossing_video(coco_dir: Path, out: Path, frames: int = 40) -> tuple[Path, list[list[tuple]]]:
    """Two people cut from COCO photos walking past each other on a plain backdrop: one
    walks right in front, the other left, farther back (smaller, higher), so while they cross
    the front one hides the lower half of the other. Per frame: [front xyxy, back xyxy]."""
    backdrop = np.zeros((360, 640, 3), np.uint8)
    backdrop[:] = np.linspace(90, 160, 640, dtype=np.uint8)[None, :, None]  # a soft gradient, no objects
    people = []
    for name, (x, y, w, h) in CROSSING_SOURCES:
        photo = cv2.imread(str(coco_dir / "images" / name))
        people.append(photo[y:y + h, x:x + w])
    front = cv2.resize(people[0], (100, 260))
    back = cv2.resize(people[1], (70, 190))
    clips, truth = [], []
    for i in range(frames):
        fx, bx = 40 + 12 * i, 520 - 11 * i
        frame = backdrop.copy()
        frame[20:210, bx:bx + 70] = back
        frame[100:360, fx:fx + 100] = front
        clips.append(frame)
        truth.append([(fx, 100, fx + 100, 360), (bx, 20, bx + 70, 210)])
    return _write(out, clips), truth


def iou(a: tuple, b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float32).reshape(-1, 4)
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


def ids_per_person(results, truth, min_iou: float = 0.5) -> list[list[int]]:
    """For each ground-truth person, the confirmed track id of the detection that matches it
    (IoU >= ``min_iou``) in each frame where one does."""
    seen: list[list[int]] = [[] for _ in truth[0]]
    for result, boxes in zip(results, truth):
        dets = result.detections
        if dets is None or not len(dets):
            continue
        for person, box in enumerate(boxes):
            overlaps = iou(box, dets.xyxy)
            best = int(np.argmax(overlaps))
            if overlaps[best] >= min_iou and dets.tracker_ids[best] >= 0:
                seen[person].append(int(dets.tracker_ids[best]))
    return seen




def mosaic_pan_video(mosaic: Path, ann_file: Path, out: Path, frames: int = 40, step: int = 8,
                     window: tuple[int, int] = (960, 1280), min_side: int = 16) -> tuple[Path, list[list[tuple]]]:
    """A high-resolution camera panning across a mosaic (benchmarks/mosaic.py): a ``window``
    (height, width) moving right ``step`` px per frame from the mosaic's top-left. Returns the
    video and, per frame, the boxes (xyxy, frame pixels) of the annotated objects, not crowds,
    that stay inside the window in every frame and are at least ``min_side`` px each way."""
    import json

    image = cv2.imread(str(mosaic))
    dataset = json.loads(Path(ann_file).read_text())
    image_id = next(i["id"] for i in dataset["images"] if i["file_name"] == Path(mosaic).name)
    height, width = window
    last_x = step * (frames - 1)
    if image.shape[0] < height or image.shape[1] < width + last_x:
        raise ValueError(f"{Path(mosaic).name} is too small for a {width}x{height} window panning {last_x} px")
    objects = [a["bbox"] for a in dataset["annotations"] if a["image_id"] == image_id and not a.get("iscrowd")
               and min(a["bbox"][2:]) >= min_side and a["bbox"][0] >= last_x
               and a["bbox"][0] + a["bbox"][2] <= width and a["bbox"][1] + a["bbox"][3] <= height]
    clips, truth = [], []
    for i in range(frames):
        x0 = i * step
        clips.append(np.ascontiguousarray(image[:height, x0:x0 + width]))
        truth.append([(x - x0, y, x - x0 + w, y + h) for x, y, w, h in objects])
    return _write(out, clips), truth
