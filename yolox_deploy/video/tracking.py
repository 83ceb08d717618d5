"""Multi-object tracking on detection sequences, with Roboflow's maintained ``trackers``
(ByteTrack, OC-SORT, SORT, BoT-SORT), through ``supervision.Detections``.

Install: ``pip install "yolox-deploy[tracking]" && pip install --no-deps "trackers==2.6.1"``.
``trackers`` declares ``opencv-python``, which would install a second ``cv2`` over this SDK's
``opencv-python-headless``: the GUI build, which needs libGL and X libraries that servers lack,
and whose files the two wheels overwrite in each other. The ``tracking`` extra installs
trackers' other dependencies, and ``--no-deps`` keeps the one headless ``cv2``, which is all
trackers uses (it imports ``cv2`` for motion compensation and drawing).
"""
from __future__ import annotations

import dataclasses
import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..detections import Detections
from ..errors import BackendNotInstalledError, InvalidInputError
from ..pipeline import BatchPipeline
from ..processing.images import IMAGE_SUFFIXES
from .streaming import is_video, run_stream, video_fps

TRACKERS = {"bytetrack": "ByteTrackTracker", "ocsort": "OCSORTTracker", "sort": "SORTTracker",
            "botsort": "BoTSORTTracker"}
INSTALL = 'pip install "yolox-deploy[tracking]" && pip install --no-deps "trackers==2.6.1"'
# ByteTrack as its authors ran it on YOLOX (ByteTrack's demo: track_thresh 0.5, a new track
# needs 0.6, match_thresh 0.8 = IoU > 0.2, track_buffer 30 frames at 30 fps), where the trackers
# package's own defaults (0.6 / 0.7 / 0.1) are tuned for other detectors
DEFAULT_OPTIONS = {"bytetrack": {"high_conf_det_threshold": 0.5, "track_activation_threshold": 0.6,
                                 "minimum_iou_threshold": 0.2, "lost_track_buffer": 30}}
LOW_CONF = 0.1  # detections down to this score feed the tracker (ByteTrack's second association)


def check_tracker_name(name: str) -> str:
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in TRACKERS:
        raise InvalidInputError(f"unknown tracker {name!r}; available: {', '.join(TRACKERS)}")
    return key


def _import_trackers() -> Any:
    try:
        import trackers
    except ImportError as exc:
        raise BackendNotInstalledError(f"tracking needs the 'trackers' package, which is not installed ({exc.msg}): "
                                       f"{INSTALL}") from None
    return trackers


class Tracker:
    """One tracker state for one sequence of frames (``fps``: its frame rate)."""

    def __init__(self, name: str = "bytetrack", fps: float = 30.0, **options: Any):
        self.name = check_tracker_name(name)
        cls = getattr(_import_trackers(), TRACKERS[self.name])
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise InvalidInputError(f"{self.name} has no option {', '.join(unknown)}; its options: "
                                    f"{', '.join(sorted(accepted))}")
        import supervision  # trackers' own dependency: present once trackers imported

        self._sv = supervision
        settings = {**DEFAULT_OPTIONS.get(self.name, {}), **options}
        if "frame_rate" in accepted:
            settings.setdefault("frame_rate", float(fps) if fps and fps > 0 else 30.0)
        self.settings = settings
        self._impl = cls(**settings)
        self.seconds = 0.0  # CPU time of the calling thread spent in update(), for the overhead measurement
        self.frames = 0

    def update(self, detections: Detections) -> np.ndarray:
        """Track ids (int64 [N], -1: no confirmed track) for ``detections``, in their order."""
        start = time.thread_time()
        rows = np.arange(len(detections))
        # the fields the tracker reads, and our row numbers to put its (reordered) output back in order
        tracked_input = self._sv.Detections(xyxy=detections.xyxy, confidence=detections.scores,
                                      class_id=detections.class_ids, data={"_row": rows})
        out = self._impl.update(tracked_input)
        ids = np.full(len(detections), -1, np.int64)
        if len(out):
            ids[np.asarray(out.data["_row"], np.int64)] = np.asarray(out.tracker_id, np.int64)
        self.seconds += time.thread_time() - start
        self.frames += 1
        return ids


def check_sequence(source: Any) -> None:
    """Tracking needs frames in time order: refuse a single image and a folder (whose files
    are just sorted by name, and may be unrelated images)."""
    if isinstance(source, (str, Path)) and not is_video(source):
        path = Path(source)
        if not path.exists():
            raise InvalidInputError(f"source not found: {path}")
        if path.is_dir():
            raise InvalidInputError(f"tracking needs a sequence of frames, and {path.name}/ is a folder of images: pass "
                                    "a video, a camera index, or the frames as a list in time order")
        if path.suffix.lower() in IMAGE_SUFFIXES or path.is_file():
            raise InvalidInputError(f"tracking needs a sequence of frames, and {path.name} is a single image: pass a "
                                    "video, a camera index, or a list of frames in time order")
    if hasattr(source, "shape"):  # one decoded image
        raise InvalidInputError("tracking needs a sequence of frames, not one image array")


def tracking_pipeline(pipeline: BatchPipeline) -> BatchPipeline:
    """A view of ``pipeline`` (same backend) whose conf is low enough for the tracker's second
    association: min(conf, 0.1), or an end-to-end model's baked conf."""
    backend = pipeline.backend
    baked = (backend.metadata.end_to_end or {}).get("conf") if backend.end_to_end else None
    return pipeline.tracking_view(max(min(pipeline.conf, LOW_CONF), baked or 0.0),
                                  pipeline.max_det if backend.end_to_end else None)


def run_track(pipeline: BatchPipeline, source: Any, tracker: str = "bytetrack", fps: float | None = None,
              stream_options: dict[str, Any] | None = None, **tracker_options: Any) -> Any:
    """Generator behind :meth:`Detector.track`: ``stream()`` results whose detections carry
    ``tracker_ids``; the tracker sees detections down to the low conf, the results keep the
    detector's conf. A frame that failed (``errors="yield"``) leaves the tracker as it was."""
    check_sequence(source)  # refused here, before the first frame is read
    state = Tracker(tracker, fps or video_fps(source) or 30.0, **tracker_options)
    stream = run_stream(tracking_pipeline(pipeline), source, **(stream_options or {}))
    return TrackedStream(stream, state, np.float32(pipeline.conf), pipeline.answer_max_det)


class TrackedStream:
    """The iterator :meth:`Detector.track` returns; ``tracker`` is its :class:`Tracker`
    (``tracker.seconds`` / ``tracker.frames``: time spent tracking)."""

    def __init__(self, stream: Any, tracker: Tracker, keep_conf: np.float32, max_det: int | None):
        self._stream, self.tracker, self._keep_conf, self._max_det = stream, tracker, keep_conf, max_det

    def __iter__(self) -> "TrackedStream":
        return self

    def close(self) -> None:
        """Stop the stream's threads now (also done when the iterator is garbage-collected)."""
        self._stream.close()

    def __next__(self) -> Any:
        result = next(self._stream)
        if result.detections is None:
            return result
        found = result.detections
        tracked = found.with_tracker_ids(self.tracker.update(found))
        keep = np.flatnonzero(found.scores >= self._keep_conf)[:self._max_det]
        return dataclasses.replace(result, detections=tracked if len(keep) == len(found) else tracked[keep])
