"""yolox-detect: detect on images, folders and videos; save annotated copies and a JSON."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from ..detections import Detections
from ..detector import Detector
from ..errors import InvalidInputError, YoloxDeployError
from ..images import IMAGE_SUFFIXES, read_image
from ..visualize import draw_detections
from .common import add_model_args, backend_options, run

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-detect", description="Run a YOLOX model on images, folders or videos.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders of images, video files")
    add_model_args(p)
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (objectness x class)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--save-dir", default="runs/detect", help="where annotated files and detections.json go")
    p.add_argument("--no-save", action="store_true", help="print detections only")
    return p


def expand_sources(sources: Sequence[str]) -> list[Path]:
    """Files as given; folders expanded to their images and videos (sorted)."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise InvalidInputError(f"no images or videos in folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInputError(f"source not found: {path}")
    return files


def describe(detections: Detections) -> str:
    counts = Counter(detections.class_names)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "no detections"


def video_frames(path: Path) -> tuple[Iterator[Any], cv2.VideoCapture]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InvalidInputError(f"cannot open video {path} (unsupported codec or not a video)")

    def frames() -> Iterator[Any]:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame

    return frames(), capture


def detect_video(detector: Detector, path: Path, save_dir: Path | None) -> list[dict[str, Any]]:
    frames, capture = video_frames(path)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    records = []
    try:
        for index, frame in enumerate(tqdm(frames, total=total, desc=path.name, unit="frame")):
            detections = detector(frame)
            records.append({"frame": index, **detections.to_dict()})
            if save_dir is not None:
                if writer is None:
                    out_path = save_dir / f"{path.stem}.mp4"
                    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(draw_detections(frame, detections))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not records:
        raise InvalidInputError(f"video {path} has no readable frames")
    return records


def detect_image(detector: Detector, path: Path, save_dir: Path | None) -> dict[str, Any]:
    image = read_image(path)
    detections = detector(image)
    if save_dir is not None:
        cv2.imwrite(str(save_dir / path.name), draw_detections(image, detections))
    return {**detections.to_dict(), "summary": describe(detections),
            "milliseconds": round(detector.timings.total_ms, 2)}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    files = expand_sources(args.sources)
    detector = Detector(args.model, backend=args.backend, device=args.device, conf=args.conf, iou=args.iou,
                        class_agnostic=args.agnostic, input_size=args.input_size, max_det=args.max_det,
                        postprocess_impl=args.impl, **backend_options(args))
    save_dir = None if args.no_save else Path(args.save_dir)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    images = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    results: dict[str, Any] = {}
    failures = 0
    show_bar = len(images) > 1
    for path in tqdm(images, desc="images", unit="img", disable=not show_bar):
        try:
            results[str(path)] = record = detect_image(detector, path, save_dir)
        except YoloxDeployError as exc:
            failures += 1
            tqdm.write(f"yolox-detect: error: {exc}", file=sys.stderr)
            continue
        if not show_bar:
            print(f"{path}: {record['summary']} ({record['milliseconds']} ms)")
    for path in videos:
        results[str(path)] = {"frames": detect_video(detector, path, save_dir)}
    if save_dir is not None:
        (save_dir / "detections.json").write_text(json.dumps(results, indent=1))
        print(f"saved {len(results)} annotated file(s) and detections.json to {save_dir}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-detect")


if __name__ == "__main__":
    sys.exit(main())
