"""Many video sources at once, their frames batched together into one backend call.

One reader thread per source decodes and letterboxes its frames into a small queue of its
own; the caller's thread gathers up to ``batch_size`` ready frames round-robin across the
sources (one per source per round, so no source starves another), runs one backend call for
all of them, postprocesses, tracks (one tracker per source) and yields the results.
Each source's results keep its frame order.

Bounded memory: each source holds at most ``queue_size`` letterboxed frames. When the
consumer is slower than a source, ``drop="oldest"`` (the default for cameras and stream URLs,
which cannot be paused) drops that source's oldest waiting frame and counts it;
``drop="wait"`` (the default for files) makes the reader wait. A source that ends or fails
yields one last result with ``finished=True`` (and ``error`` when it failed); the others go on.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..detections import Detections
from ..errors import InvalidInputError, YoloxDeployError, first_line
from ..pipeline import BatchPipeline
from .streaming import decode_and_letterbox, is_video, iter_source, video_fps
from .tracking import Tracker, check_sequence, tracking_pipeline

DROP_POLICIES = ("oldest", "wait")


@dataclasses.dataclass
class SourceResult:
    """One frame of one source: ``source`` (its index in the list), ``index`` (frame number
    within that source), ``name``, the BGR ``image`` and its ``detections`` (with
    ``tracker_ids`` when tracking). ``finished=True`` marks a source's end (no frame);
    ``error`` says why it failed, ``dropped`` how many frames were dropped for a slow consumer."""

    source: int
    index: int
    name: str
    image: np.ndarray | None
    detections: Detections | None
    error: str | None = None
    finished: bool = False
    dropped: int = 0


@dataclasses.dataclass
class _Frame:
    index: int
    name: str
    image: np.ndarray | None
    tensor: np.ndarray | None
    ratio: float
    error: str | None = None


@dataclasses.dataclass
class _End:
    frames: int
    error: str | None = None


class _Reader(threading.Thread):
    """Decodes and letterboxes one source into its queue under a drop policy."""

    def __init__(self, source: Any, pipeline: BatchPipeline, queue_size: int, drop: str, stop: threading.Event,
                 ready: threading.Condition):
        super().__init__(name="yolox-source", daemon=True)
        self.source, self.pipeline, self.drop, self.stop, self.ready = source, pipeline, drop, stop, ready
        self.frames: queue.Queue = queue.Queue(maxsize=queue_size)
        self.dropped = 0

    def run(self) -> None:
        count, error = 0, None
        try:
            for count, (name, item) in enumerate(iter_source(self.source), start=1):
                if self.stop.is_set():
                    return
                self._put(self._prepare(count - 1, name, item))
        except Exception as exc:  # a source that cannot be opened or breaks: reported, the others go on
            error = first_line(exc)
        self._put(_End(count, error), always=True)

    def _prepare(self, index: int, name: str, item: Any) -> _Frame:
        try:
            return _Frame(index, name, *decode_and_letterbox(self.pipeline, item))
        except YoloxDeployError as exc:
            return _Frame(index, name, None, None, 1.0, first_line(exc))

    def _put(self, entry: Any, always: bool = False) -> None:
        while not self.stop.is_set():
            try:
                self.frames.put(entry, timeout=0.05)
                break
            except queue.Full:
                if self.drop == "oldest" and not always:
                    try:
                        self.frames.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        with self.ready:
            self.ready.notify()


class MultiStream:
    """Iterate it for :class:`SourceResult` of every source, interleaved."""

    def __init__(self, pipeline: BatchPipeline, sources: Sequence[Any], batch_size: int | None = None,
                 queue_size: int = 4, drop: str | None = None, tracker: str | None = None,
                 tracker_options: dict[str, Any] | None = None):
        if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence) or not sources:
            raise InvalidInputError("stream_many takes a non-empty list of sources (videos, camera indices, URLs, "
                                    "or lists of frames)")
        if drop is not None and drop not in DROP_POLICIES:
            raise InvalidInputError(f"drop must be 'oldest', 'wait' or None (per source), got {drop!r}")
        if queue_size < 1:
            raise InvalidInputError(f"queue_size must be >= 1, got {queue_size}")
        self.pipeline = pipeline
        self.sources = list(sources)
        static = pipeline.static_batch
        self.batch_size = int(batch_size or static or max(pipeline.batch_size, len(self.sources)))
        if static is not None and self.batch_size != static:
            raise InvalidInputError(f"{pipeline.backend.path.name} has a static batch of {static}; batch_size="
                                    f"{self.batch_size} cannot be used")
        self.queue_size = queue_size
        self.drops = [drop or ("oldest" if is_video(s) and not _is_file(s) else "wait") for s in self.sources]
        self.trackers: list[Any] = [None] * len(self.sources)
        if tracker is not None:
            for source in self.sources:
                check_sequence(source)
            self.trackers = [Tracker(tracker, video_fps(s) or 30.0, **(tracker_options or {})) for s in self.sources]
            self.pipeline = tracking_pipeline(pipeline)
        self._keep_conf, self._max_det = np.float32(pipeline.conf), pipeline.answer_max_det

    def __iter__(self) -> Iterator[SourceResult]:
        stop, ready = threading.Event(), threading.Condition()
        readers = [_Reader(s, self.pipeline, self.queue_size, d, stop, ready) for s, d in zip(self.sources, self.drops)]
        for reader in readers:
            reader.start()
        active = list(range(len(readers)))
        turn = 0
        try:
            while active:
                batch, ended = self._gather(readers, active, turn)
                turn += 1
                yield from self._run(batch)
                for source in ended:
                    active.remove(source)
                    end = ended[source]
                    yield SourceResult(source, end.frames, f"source{source}", None, None, end.error, True,
                                       readers[source].dropped)
                if not batch and not ended:
                    with ready:
                        ready.wait(timeout=0.05)
        finally:
            stop.set()
            for reader in readers:
                reader.join()

    def _gather(self, readers: list[_Reader], active: list[int],
                turn: int) -> tuple[list[tuple[int, _Frame]], dict[int, _End]]:
        """Up to ``batch_size`` ready frames, one per source per round, starting from a
        rotating source; and the sources that ended."""
        batch: list[tuple[int, _Frame]] = []
        ended: dict[int, _End] = {}
        order = active[turn % len(active):] + active[:turn % len(active)]
        progress = True
        while len(batch) < self.batch_size and progress:
            progress = False
            for source in order:
                if source in ended or len(batch) >= self.batch_size:
                    continue
                try:
                    entry = readers[source].frames.get_nowait()
                except queue.Empty:
                    continue
                progress = True
                if isinstance(entry, _End):
                    ended[source] = entry
                else:
                    batch.append((source, entry))
        return batch, ended

    def _run(self, batch: list[tuple[int, _Frame]]) -> Iterator[SourceResult]:
        good = [(s, f) for s, f in batch if f.error is None]
        detections: dict[int, Detections] = {}
        if good:
            outputs = self.pipeline.infer(self.pipeline.stack([f.tensor for _, f in good]))
            per_frame = self.pipeline.postprocess(outputs, [f.ratio for _, f in good],
                                                  [f.image.shape[:2] for _, f in good])
            detections = {id(f): d for (_, f), d in zip(good, per_frame)}
        for source, frame in batch:
            if frame.error is not None:
                yield SourceResult(source, frame.index, frame.name, None, None, frame.error)
                continue
            found = detections[id(frame)]
            tracker = self.trackers[source]
            if tracker is not None:
                keep = np.flatnonzero(found.scores >= self._keep_conf)[:self._max_det]
                found = found.with_tracker_ids(tracker.update(found))
                found = found if len(keep) == len(found) else found[keep]
            yield SourceResult(source, frame.index, frame.name, frame.image, found)


def _is_file(source: Any) -> bool:
    return not isinstance(source, int) and "://" not in str(source)


def run_many(pipeline: BatchPipeline, sources: Sequence[Any], **options: Any) -> Iterator[SourceResult]:
    """:class:`SourceResult` of every source, interleaved (options: :class:`MultiStream`'s)."""
    return iter(MultiStream(pipeline, sources, **options))
