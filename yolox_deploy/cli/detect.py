"""yolox-detect: detect on images, folders and videos; save annotated copies and a JSON."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from ..detections import Detections
from ..detector import Detector
from ..errors import InvalidInputError
from ..processing.images import IMAGE_SUFFIXES
from ..video.streaming import VIDEO_SUFFIXES
from ..visualize import draw_detections
from .common import add_model_args, add_slice_args, backend_options, run, slice_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-detect", description="Run a YOLOX model on images, folders or videos.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders of images, video files")
    add_model_args(p)
    p.add_argument("--conf", type=float, default=None,
                   help="score threshold, objectness x class (default: the model's stored one, else 0.25)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the model's, else 0.45)")
    p.add_argument("--agnostic", action="store_true", default=None,
                   help="class-agnostic NMS (with --slice: the merge of the slices too)")
    p.add_argument("--max-det", type=int, default=None, help="detections per image (default: the model's, else 300)")
    p.add_argument("--save-dir", default="runs/detect", help="where annotated files and detections.json go")
    p.add_argument("--no-save", action="store_true", help="print detections only")
    ray = p.add_argument_group("distributed (Ray Data; pip install 'yolox-deploy[ray]')")
    ray.add_argument("--ray", action="store_true", help="run on a Ray cluster: one Detector per worker actor; "
                                                        "SOURCE may be any path or URI Ray can read")
    ray.add_argument("--num-workers", type=int, default=2, help="Ray actors, each with its own Detector")
    ray.add_argument("--ray-address", default=None, help="cluster address (default: start a local cluster)")
    ray.add_argument("--output", default=None, help="--ray output folder (default: SAVE_DIR/detections.FORMAT)")
    ray.add_argument("--format", choices=("parquet", "jsonl"), default="parquet", help="--ray output format")
    p.add_argument("--track", nargs="?", const="bytetrack", default=None, metavar="TRACKER",
                   help="track objects through videos (bytetrack, the default; ocsort, sort, botsort): writes the "
                        "annotated video with ids and SAVE_DIR/VIDEO.tracks.jsonl (frame, track id, box, score, "
                        "class); needs the tracking extra")
    add_slice_args(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per inference call for dynamic-batch models (decoding, inference and "
                        "postprocessing always overlap)")
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


def detect_video(detector: Detector, path: Path, save_dir: Path | None, batch_size: int | None,
                 tracker: str | None = None) -> list[dict[str, Any]]:
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    writer = None
    records = []
    results = (detector.track(path, tracker, batch_size=batch_size) if tracker
               else detector.stream(path, batch_size=batch_size))
    tracks = open(save_dir / f"{path.stem}.tracks.jsonl", "w", encoding="utf-8") if tracker and save_dir else None
    try:
        for result in tqdm(results, total=total, desc=path.name, unit="frame"):
            records.append({"frame": result.index, **result.detections.to_dict()})
            if tracks is not None:
                write_track_lines(tracks, result.index, result.detections)
            if save_dir is not None:
                if writer is None:
                    writer = cv2.VideoWriter(str(save_dir / f"{path.stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps, (result.image.shape[1], result.image.shape[0]))
                writer.write(draw_detections(result.image, result.detections))
    finally:
        if writer is not None:
            writer.release()
        if tracks is not None:
            tracks.close()
    if not records:
        raise InvalidInputError(f"video {path} has no readable frames")
    return records


def write_track_lines(out: Any, frame: int, detections: Detections) -> None:
    """One JSON line per tracked detection (a confirmed track id): frame, track id, box
    (xyxy, video pixels), score, class id and name."""
    for box, score, cid, name, tid in zip(detections.xyxy, detections.scores, detections.class_ids,
                                          detections.class_names, detections.tracker_ids):
        if tid >= 0:
            out.write(json.dumps({"frame": frame, "track_id": int(tid), "box_xyxy": [round(float(v), 2) for v in box],
                                  "score": round(float(score), 4), "class_id": int(cid), "class_name": name}) + "\n")


def check_trackable(files: Sequence[Path], tracker: str) -> None:
    from ..video.tracking import check_tracker_name

    check_tracker_name(tracker)
    stills = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    if stills:
        raise InvalidInputError(f"--track needs videos (a sequence of frames), and {stills[0].name} is an image; "
                                "track a video, or run without --track")


def detect_images(detector: Detector, paths: list[Path], save_dir: Path | None,
                  batch_size: int | None) -> tuple[dict[str, Any], int]:
    """Pipelined over the files; a bad file among several is reported and skipped."""
    results: dict[str, Any] = {}
    failures = 0
    show_bar = len(paths) > 1
    stream = detector.stream(paths, batch_size=batch_size, errors="yield" if show_bar else "raise")
    for path, result in tqdm(zip(paths, stream), total=len(paths), desc="images", unit="img", disable=not show_bar):
        if result.error is not None:
            failures += 1
            tqdm.write(f"yolox-detect: error: {result.error}", file=sys.stderr)
            continue
        if save_dir is not None:
            cv2.imwrite(str(save_dir / path.name), draw_detections(result.image, result.detections))
        results[str(path)] = record = {**result.detections.to_dict(), "summary": describe(result.detections)}
        if not show_bar:
            print(f"{path}: {record['summary']}")
    return results, failures


def detector_options(args: argparse.Namespace) -> dict[str, Any]:
    """Detector keyword arguments from the command line (everything but the model)."""
    return dict(backend=args.backend, device=args.device, conf=args.conf, iou=args.iou,
                class_agnostic=args.agnostic, input_size=args.input_size,
                max_det="model" if args.max_det is None else args.max_det,
                postprocess_impl=args.impl, slices=slice_settings(args), **backend_options(args))


def detect_with_ray(args: argparse.Namespace) -> int:
    from ..integrations.ray import detect_dataset, init_ray, write_detections

    init_ray(args.ray_address)
    options = detector_options(args)
    sources = args.sources[0] if len(args.sources) == 1 else list(args.sources)
    dataset = detect_dataset(sources, args.model, num_workers=args.num_workers,
                             batch_size=args.batch_size or 32, **options)
    output = args.output or str(Path(args.save_dir) / f"detections.{args.format}")
    write_detections(dataset, output, args.format)
    print(f"wrote one row per image to {output}/ ({args.format}, {args.num_workers} worker(s))")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.ray:
        return detect_with_ray(args)
    if args.track:
        for source in args.sources:
            if Path(source).is_dir():
                raise InvalidInputError(f"--track needs videos (a sequence of frames), and {Path(source).name}/ is a "
                                        "folder; pass the video files")
    files = expand_sources(args.sources)
    if args.track:
        check_trackable(files, args.track)
    detector = Detector(args.model, **detector_options(args))
    save_dir = None if args.no_save else Path(args.save_dir)
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    images = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    results, failures = detect_images(detector, images, save_dir, args.batch_size) if images else ({}, 0)
    for path in videos:
        results[str(path)] = {"frames": detect_video(detector, path, save_dir, args.batch_size, args.track)}
    if save_dir is not None:
        (save_dir / "detections.json").write_text(json.dumps(results, indent=1))
        print(f"saved {len(results)} annotated file(s) and detections.json to {save_dir}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-detect")


if __name__ == "__main__":
    sys.exit(main())
