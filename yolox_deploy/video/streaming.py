"""Pipelined detection over a stream of images: decode + letterbox, inference and
postprocess run at the same time, in order, with bounded queues.

Three stages: a pool of ``workers`` threads decodes and letterboxes (OpenCV releases the
GIL); one thread batches the images and hands each batch to ``infer_workers`` threads that
run the backend (the runtimes release the GIL; several single-threaded inferences side by
side use small CPUs better than one multi-threaded inference); the caller's thread
postprocesses (the C++ kernel releases the GIL) and receives results, in stream order.
At most ``prefetch`` batches are in flight between stages, so memory stays bounded
however long the stream is.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from ..detections import Detections
from ..errors import InvalidInputError, YoloxDeployError
from ..pipeline import BatchPipeline
from ..processing.images import IMAGE_SUFFIXES, ImageLike, to_bgr

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
StreamSource = Union[str, Path, int, Iterable[ImageLike]]
_END = object()


@dataclasses.dataclass
class StreamResult:
    """One image of a stream: ``index`` in stream order, ``name`` (file name, or
    ``video.mp4#12`` for frame 12), the decoded BGR ``image`` (None when it failed), and
    either ``detections`` or ``error`` (a one-line message; only with ``errors="yield"``)."""

    index: int
    name: str
    image: np.ndarray | None
    detections: Detections | None
    error: str | None = None


@dataclasses.dataclass
class _Item:
    index: int
    name: str
    image: np.ndarray | None = None
    tensor: np.ndarray | None = None
    ratio: float = 1.0
    error: YoloxDeployError | None = None


def _video_frames(path: Path | int | str) -> Iterator[tuple[str, ImageLike]]:
    capture = cv2.VideoCapture(path if isinstance(path, int) else str(path))
    if not capture.isOpened():
        raise InvalidInputError(f"cannot open video {path} (unsupported codec, not a video, or no camera)")
    label = f"camera{path}" if isinstance(path, int) else Path(path).name
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                if index == 0:
                    raise InvalidInputError(f"{label} has no frames (empty, or a codec OpenCV cannot decode)")
                return
            yield f"{label}#{index}", frame
            index += 1
    finally:
        capture.release()


def is_video(source: Any) -> bool:
    return isinstance(source, int) or (isinstance(source, (str, Path)) and (
        Path(source).suffix.lower() in VIDEO_SUFFIXES or "://" in str(source)))


def video_fps(source: Any) -> float | None:
    """The frame rate a video file or camera reports (None: not a video, or not reported)."""
    if not is_video(source):
        return None
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return fps if fps > 0 else None


def iter_source(source: StreamSource) -> Iterator[tuple[str, ImageLike]]:
    """(name, image-like) pairs: a folder's images (sorted), a video file's or camera's
    frames, one image file, or any iterable of paths / arrays / PIL images."""
    if isinstance(source, int):
        yield from _video_frames(source)
        return
    if isinstance(source, (str, Path)):
        path = Path(source)
        if "://" in str(source):  # a stream URL (rtsp://, http://): OpenCV's FFmpeg reads it
            yield from _video_frames(str(source))
            return
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InvalidInputError(f"no images in folder {path} (looked for {', '.join(IMAGE_SUFFIXES)})")
            yield from ((p.name, p) for p in files)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        else:
            yield path.name, path
        return
    for index, item in enumerate(source):
        yield (Path(item).name if isinstance(item, (str, Path)) else f"#{index}"), item


def decode_and_letterbox(pipeline: BatchPipeline, item: ImageLike) -> tuple[np.ndarray, np.ndarray, float]:
    """(BGR image, letterboxed input, ratio) of one image for ``pipeline``: uint8 pixels for
    backends that cast them inside the model, float32 CHW for the others."""
    image = to_bgr(item)
    tensor, ratio = pipeline.prepare(image)
    return image, tensor, ratio


class _Stop(Exception):
    pass


def _put(q: queue.Queue, value: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(value, timeout=0.05)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            continue


class StreamPipeline:
    """Runs one stream through ``pipeline``; iterate it to receive :class:`StreamResult`."""

    def __init__(self, pipeline: BatchPipeline, source: StreamSource, batch_size: int | None = None,
                 workers: int = 2, infer_workers: int = 1, prefetch: int = 4, errors: str = "raise"):
        if errors not in ("raise", "yield"):
            raise InvalidInputError(f"errors must be 'raise' or 'yield', got {errors!r}")
        if min(workers, infer_workers, prefetch) < 1:
            raise InvalidInputError(f"workers, infer_workers and prefetch must be >= 1, got {workers}, "
                                    f"{infer_workers}, {prefetch}")
        self.pipeline = pipeline
        self.source = source
        self.batch_size = pipeline.batch_size if batch_size is None else int(batch_size)
        if pipeline.static_batch not in (None, self.batch_size):
            raise InvalidInputError(f"{pipeline.backend.path.name} has a static batch of "
                                    f"{pipeline.static_batch}; batch_size={self.batch_size} cannot be used")
        self.workers, self.infer_workers, self.prefetch, self.errors = workers, infer_workers, prefetch, errors
        self._stop = threading.Event()
        ahead = pipeline.lookahead_batches(prefetch)
        self._prepared: queue.Queue = queue.Queue(maxsize=ahead * max(1, self.batch_size))
        self._inferred: queue.Queue = queue.Queue(maxsize=ahead + infer_workers)

    def _prepare(self, index: int, name: str, item: ImageLike) -> _Item:
        try:
            return _Item(index, name, *decode_and_letterbox(self.pipeline, item))
        except YoloxDeployError as exc:
            return _Item(index, name, error=exc)

    def _read(self, pool: ThreadPoolExecutor) -> None:
        """Stage 1: submit decode + letterbox jobs in stream order."""
        try:
            for index, (name, item) in enumerate(iter_source(self.source)):
                _put(self._prepared, pool.submit(self._prepare, index, name, item), self._stop)
            _put(self._prepared, _END, self._stop)
        except _Stop:
            pass
        except BaseException as exc:  # a source that cannot be opened: hand it to the caller
            self._fail(self._prepared, exc)

    def _infer(self, pool: ThreadPoolExecutor) -> None:
        """Stage 2: gather up to ``batch_size`` prepared images; submit the batch to the
        inference pool (its future goes downstream, keeping the order)."""
        try:
            done = False
            while not done:
                batch: list[_Item] = []
                while len(batch) < self.batch_size:
                    entry = _get(self._prepared, self._stop)
                    if entry is _END:
                        done = True
                        break
                    if isinstance(entry, BaseException):
                        raise entry
                    batch.append(entry.result())
                good = [item for item in batch if item.error is None]
                raw = pool.submit(self._run_backend, good) if good else None
                if batch:
                    _put(self._inferred, (batch, good, raw), self._stop)
            _put(self._inferred, _END, self._stop)
        except _Stop:
            pass
        except BaseException as exc:
            self._fail(self._inferred, exc)

    def _run_backend(self, items: list[_Item]) -> Any:
        tensors = self.pipeline.stack([item.tensor for item in items])
        for item in items:
            item.tensor = None  # the stacked copy is all the backend needs
        return self.pipeline.infer(tensors)

    def _fail(self, q: queue.Queue, exc: BaseException) -> None:
        try:
            _put(q, exc, self._stop)
        except _Stop:
            pass

    def _results(self, batch: list[_Item], good: list[_Item], raw: Future | None) -> Iterator[StreamResult]:
        detections = dict(zip((item.index for item in good), self.pipeline.postprocess(
            raw.result(), [item.ratio for item in good], [item.image.shape[:2] for item in good]))) if good else {}
        for item in batch:
            if item.error is not None:
                if self.errors == "raise":
                    raise item.error
                yield StreamResult(item.index, item.name, None, None, str(item.error))
            else:
                yield StreamResult(item.index, item.name, item.image, detections[item.index])

    def __iter__(self) -> Iterator[StreamResult]:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="yolox-prep") as prep_pool, \
                ThreadPoolExecutor(self.infer_workers, thread_name_prefix="yolox-infer") as infer_pool:
            threads = [threading.Thread(target=self._read, args=(prep_pool,), name="yolox-read", daemon=True),
                       threading.Thread(target=self._infer, args=(infer_pool,), name="yolox-batch", daemon=True)]
            for thread in threads:
                thread.start()
            try:
                while True:
                    entry = self._inferred.get()
                    if entry is _END:
                        return
                    if isinstance(entry, BaseException):
                        raise entry
                    yield from self._results(*entry)
            finally:
                self._stop.set()  # the caller stopped early or an error ends the stream
                for thread in threads:
                    thread.join()
                self._drain(self._prepared)
                self._drain(self._inferred)

    @staticmethod
    def _drain(q: queue.Queue) -> None:
        while True:
            try:
                entry = q.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, Future):
                entry.cancel()
            elif isinstance(entry, tuple) and isinstance(entry[2], Future):
                entry[2].cancel()


def run_stream(pipeline: BatchPipeline, source: StreamSource, **options: Any) -> Iterator[StreamResult]:
    """:class:`StreamResult` of every image of ``source``, in order (options: :class:`StreamPipeline`'s)."""
    return iter(StreamPipeline(pipeline, source, **options))


__all__ = ["StreamPipeline", "StreamResult", "VIDEO_SUFFIXES", "decode_and_letterbox", "is_video", "iter_source",
           "run_stream", "video_fps"]
