"""The video service: streams added and removed while it runs, one inference thread batching the
frames of all live streams into the Detector's calls, results to callbacks and an iterator.

    service = VideoService(Detector("yolox_nano.onnx"), on_result=print)
    service.add("rtsp://127.0.0.1:8554/cam0", name="cam0", stall_s=5)
    ...
    service.remove("cam0"); service.close()

Adding or removing a stream never pauses the others: each stream is its own decoder process and
supervisor thread (:mod:`.stream`); the inference thread takes whatever frames are pending
(per stream: the latest, or a queue, by its drop policy) and runs them as one batch.
"""
from __future__ import annotations

import dataclasses
import itertools
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError, first_line
from .stream import Frame, Stream, StreamEvent, StreamOptions, StreamStatus, close_pipes, start_decoder

if TYPE_CHECKING:
    from ..detections import Detections
    from ..detector import Detector
    from .sinks import Sink

LATENCY_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds, decode to result
RESULT_QUEUE = 256  # results kept for the iterator; beyond, the oldest are dropped (and counted)


@dataclasses.dataclass(frozen=True)
class StreamSnapshot:
    """A stream's counters read together: ``decoded == inferred + dropped + failed + in_flight``
    (``failed``: frames of a backend call that raised, see VideoService.last_error)."""

    name: str
    state: Any
    reconnects: int
    decoded: int
    inferred: int
    dropped: int
    in_flight: int
    failed: int = 0


@dataclasses.dataclass
class StreamResult:
    """One inferred frame of stream ``name``: its ``index`` within the current decoder run,
    ``reconnects`` (the stream's reconnect count then: ids from before and after one never mix),
    ``pts_ms`` (None when the source has none), ``received`` (time.monotonic() at decode) and
    ``wall_time`` (time.time() then), ``latency_s`` (decode to result), the BGR ``image`` and its
    ``detections`` (xyxy in that image's pixels)."""

    name: str
    index: int
    reconnects: int
    pts_ms: float | None
    received: float
    wall_time: float
    latency_s: float
    image: np.ndarray
    detections: Detections


class _StreamTracking:
    """A stream's tracker, reset across a reconnect unless the gap was at most ``keep_s``."""

    def __init__(self, name: str, keep_s: float):
        from ..video.tracking import Tracker

        self.name, self.keep_s = name, keep_s
        self.tracker = Tracker(name)
        self.reconnects = 0
        self.last_received: float | None = None

    def update(self, frame: Frame, detections: Detections) -> Detections:
        from ..video.tracking import Tracker

        gap = None if self.last_received is None else frame.received - self.last_received
        if frame.reconnects != self.reconnects and (gap is None or gap > self.keep_s):
            self.tracker = Tracker(self.name)
        self.reconnects, self.last_received = frame.reconnects, frame.received
        return detections.with_tracker_ids(self.tracker.update(detections))


class VideoService:
    """Streams over one Detector. ``on_result`` / ``on_event`` are called on the service's
    threads (keep them quick: a slow callback delays inference); :meth:`results` iterates
    over results instead. ``batch_size``: frames per backend call (default: the Detector's).
    ``sinks`` (:mod:`.sinks`) get every result without blocking inference; close() closes them."""

    def __init__(self, detector: Detector, *, on_result: Callable[[StreamResult], Any] | None = None,
                 on_event: Callable[[StreamEvent], Any] | None = None, batch_size: int | None = None,
                 sinks: Sequence[Sink] = ()):
        self.detector = detector
        self.sinks = list(sinks)
        # a Detector's pipeline: frames are letterboxed on their stream's reader thread and run as one
        # stacked batch, as stream_many runs them; any other callable (images -> detections) is called
        pipeline = getattr(detector, "pipeline", None)
        parts = ("prepare", "stack", "infer", "postprocess")
        self._pipeline = pipeline if pipeline is not None and all(hasattr(pipeline, p) for p in parts) else None
        self.batch_size = batch_size or max(1, int(getattr(detector, "batch_size", 1) or 1))
        self._on_result, self._on_event = on_result, on_event
        self._streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._results: queue.Queue[StreamResult] = queue.Queue(RESULT_QUEUE)
        self.results_dropped = 0
        self.failed_batches = 0  # backend calls that raised; their frames are counted per stream in `failed`
        self.failed: dict[str, int] = {}
        self.last_error: str | None = None
        self.inferred: dict[str, int] = {}
        self._latency: dict[str, tuple[list[int], float]] = {}  # per stream: counts per bucket, sum
        self._latest: dict[str, StreamResult] = {}  # per stream: its last result (the status page shows it)
        self._tracking: dict[str, _StreamTracking] = {}
        self._spare: subprocess.Popen | None = None  # the next stream's decoder, started ahead
        self.events: list[StreamEvent] = []  # every event so far (bounded: the last 1000)
        self._names = itertools.count()
        self._worker = threading.Thread(target=self._infer_loop, name="yolox-serve-inference", daemon=True)
        self._worker.start()

    # -- streams -----------------------------------------------------------------------------
    def add(self, source: str, name: str | None = None, *, track: str | None = None, keep_tracks_s: float = 0.0,
            **options: Any) -> str:
        """Starts a stream of ``source`` (a file path or an rtsp:// / http(s):// URL) with
        :class:`StreamOptions` ``options``; returns its name (default: stream0, stream1 ...).
        ``track``: a tracker name ('bytetrack' ...: results get tracker ids). Across a reconnect
        the tracker is reset (ids start over; ``reconnects`` tells them apart), unless the gap
        without frames was at most ``keep_tracks_s`` seconds."""
        if self._closed.is_set():
            raise InvalidInputError("the service is closed")
        if keep_tracks_s < 0:
            raise InvalidInputError(f"keep_tracks_s must be >= 0, got {keep_tracks_s}")
        stream_options = StreamOptions(**options)
        tracking = _StreamTracking(track, keep_tracks_s) if track else None
        with self._lock:
            name = name if name is not None else next(n for n in (f"stream{i}" for i in self._names)
                                                      if n not in self._streams)
            if name in self._streams:
                raise InvalidInputError(f"a stream named {name!r} already exists; remove it first or pick another name")
            stream = Stream(name, str(source), stream_options, self._event, self._wake.set,
                            self._pipeline.prepare if self._pipeline is not None else None, self._next_decoder())
            self._streams[name] = stream
            self.inferred.setdefault(name, 0)
            if tracking is not None:
                self._tracking[name] = tracking
        stream.start()
        return name

    def _next_decoder(self) -> subprocess.Popen | None:
        """The decoder started ahead for the next stream (a new stream's first frame does not wait for
        Python's and OpenCV's start-up), and another one started for the stream after it. Under _lock."""
        spare = self._spare if self._spare is not None and self._spare.poll() is None else None
        try:
            self._spare = start_decoder()
        except OSError:
            self._spare = None
        return spare

    def remove(self, name: str) -> None:
        """Stops stream ``name`` (its decoder killed, its threads joined); the others go on."""
        with self._lock:
            stream = self._streams.pop(name, None)
            for per_stream in (self._latest, self._tracking, self.inferred, self.failed, self._latency):
                per_stream.pop(name, None)  # a service that runs for months sees many names come and go
        if stream is None:
            raise InvalidInputError(f"no stream named {name!r}")
        stream.stop()

    def streams(self) -> list[StreamStatus]:
        with self._lock:
            streams = list(self._streams.values())
        return [s.status() for s in streams]

    def status(self, name: str) -> StreamStatus:
        with self._lock:
            stream = self._streams.get(name)
        if stream is None:
            raise InvalidInputError(f"no stream named {name!r}")
        return stream.status()

    def snapshots(self) -> list[StreamSnapshot]:
        """Every stream's counters, each read in one snapshot (inferred first: it only grows, and
        never past what was taken, so in_flight is never negative)."""
        with self._lock:
            streams = list(self._streams.values())
            inferred, failed = dict(self.inferred), dict(self.failed)
        found = []
        for stream in streams:
            status = stream.status()
            done, lost = inferred.get(stream.name, 0), failed.get(stream.name, 0)
            found.append(StreamSnapshot(stream.name, status.state, status.reconnects, status.decoded, done,
                                        status.dropped, status.decoded - status.dropped - done - lost, lost))
        return found

    def latency_histograms(self, buckets: tuple[float, ...]) -> dict[str, tuple[list[tuple[str, int]], float]]:
        """Per stream: cumulative (upper bound, count) pairs ending with +Inf, and the sum of seconds."""
        with self._lock:
            latencies = {name: (list(counts), total) for name, (counts, total) in self._latency.items()
                         if name in self._streams}
        histograms = {}
        for name, (counts, total) in latencies.items():
            cumulative, running = [], 0
            for bound, count in zip([*(f"{b:g}" for b in buckets), "+Inf"], counts):
                running += count
                cumulative.append((bound, running))
            histograms[name] = (cumulative, total)
        return histograms

    def latest(self, name: str) -> StreamResult | None:
        """Stream ``name``'s last result (None before its first)."""
        with self._lock:
            return self._latest.get(name)

    def results(self, timeout: float | None = None) -> Iterator[StreamResult]:
        """Results as they come; ends after ``timeout`` seconds without one, or at close()."""
        while not (self._closed.is_set() and self._results.empty()):
            try:
                yield self._results.get(timeout=timeout if timeout is not None else 0.5)
            except queue.Empty:
                if timeout is not None:
                    return

    def close(self, timeout: float = 5.0) -> None:
        """Stops every stream and the inference thread, within about ``timeout`` seconds."""
        self._closed.set()
        self._wake.set()
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.stop(timeout)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
            spare.wait()
            close_pipes(spare)
        self._worker.join(timeout)
        for sink in self.sinks:
            sink.close(timeout)

    def __enter__(self) -> VideoService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside ------------------------------------------------------------------------------
    def _event(self, event: StreamEvent) -> None:
        self.events.append(event)
        del self.events[:-1000]
        if self._on_event is not None:
            self._on_event(event)

    def _infer_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            with self._lock:
                streams = list(self._streams.values())
            pending = [(s.name, f) for s in streams for f in s.take()]
            for start in range(0, len(pending), self.batch_size):
                self._infer(pending[start:start + self.batch_size])

    def _infer(self, batch: list[tuple[str, Frame]]) -> None:
        try:
            self._infer_batch(batch)
        except Exception as exc:  # the inference thread must outlive one bad batch: counted, reported
            with self._lock:
                self.failed_batches += 1
                self.last_error = first_line(exc)
                for name, _ in batch:
                    self.failed[name] = self.failed.get(name, 0) + 1

    def _infer_batch(self, batch: list[tuple[str, Frame]]) -> None:
        frames = [frame for _, frame in batch]
        if self._pipeline is not None and all(f.tensor is not None for f in frames):
            outputs = self._pipeline.infer(self._pipeline.stack([f.tensor for f in frames]))
            found = self._pipeline.postprocess(outputs, [f.ratio for f in frames], [f.image.shape[:2] for f in frames])
        else:
            found = self.detector([f.image for f in frames])
        done = time.monotonic()
        for (name, frame), detections in zip(batch, found):
            tracking = self._tracking.get(name)
            if tracking is not None:
                detections = tracking.update(frame, detections)
            latency = done - frame.received
            with self._lock:
                self.inferred[name] = self.inferred.get(name, 0) + 1
                counts, total = self._latency.get(name, ([0] * (len(LATENCY_BUCKETS) + 1), 0.0))
                counts[next((i for i, b in enumerate(LATENCY_BUCKETS) if latency <= b), len(LATENCY_BUCKETS))] += 1
                self._latency[name] = (counts, total + latency)
            result = StreamResult(name, frame.index, frame.reconnects, frame.pts_ms, frame.received, frame.wall_time,
                                  latency, frame.image, detections)
            with self._lock:
                if name in self._streams:
                    self._latest[name] = result
            for sink in self.sinks:
                sink.put(result)
            if self._on_result is not None:
                self._on_result(result)
            while True:
                try:
                    self._results.put_nowait(result)
                    break
                except queue.Full:  # nobody iterates fast enough: the oldest result goes
                    try:
                        self._results.get_nowait()
                        self.results_dropped += 1
                    except queue.Empty:
                        pass
