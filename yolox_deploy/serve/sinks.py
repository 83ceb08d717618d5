"""Where the service's results go: JSON lines (rotated files), an HTTP webhook (batched,
retried), MQTT (paho-mqtt, the ``[serve]`` extra) and an annotated video file per stream.

A slow or failing output never blocks inference: :meth:`Sink.put` hands a result to the sink's
bounded queue and returns; when the queue is full the result is dropped and counted
(``dropped``); the sink's own thread writes (``written``) and counts what it could not
(``failed``). Every sink is one class here; the CLI names them ``--sink KIND:WHERE``.
"""
from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from .service import StreamResult

QUEUE_SIZE = 1024


def result_record(result: StreamResult) -> dict[str, Any]:
    """One result as JSON: the stream, frame, times and detections (xyxy in that frame's pixels)."""
    return {"stream": result.name, "index": result.index, "reconnects": result.reconnects, "pts_ms": result.pts_ms,
            "wall_time": result.wall_time, "latency_s": round(result.latency_s, 6),
            **result.detections.to_dict()}


class Sink:
    """A bounded queue and a writer thread; subclasses write batches (:meth:`write`)."""

    batch_size = 1
    max_wait_s = 0.0  # how long a batch may wait to fill

    def __init__(self, queue_size: int = QUEUE_SIZE):
        self.written = self.dropped = self.failed = 0
        self._queue: queue.Queue[StreamResult | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name=f"yolox-serve-{type(self).__name__}", daemon=True)
        self._thread.start()

    def put(self, result: StreamResult) -> None:
        """Never blocks: a full queue drops the result (counted)."""
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Writes what is queued (within ``timeout``), then stops."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self.finish()

    def write(self, results: list[StreamResult]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Releases files or connections, after the last write."""

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, deadline = [first], time.monotonic() + self.max_wait_s
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._write_counted(batch)
                    return
                batch.append(item)
            self._write_counted(batch)

    def _write_counted(self, batch: list[StreamResult]) -> None:
        try:
            self.write(batch)
            self.written += len(batch)
        except Exception:  # a failing output is counted, never raised into the service
            self.failed += len(batch)


class JsonLinesSink(Sink):
    """One JSON line per result into ``folder/results.jsonl``; at ``max_bytes`` the file is
    rotated to results.jsonl.1 (.1 -> .2 ...), keeping ``backups`` old files."""

    def __init__(self, folder: str | Path, max_bytes: int = 64 * 2**20, backups: int = 5):
        self.path = Path(folder) / "results.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.backups = max_bytes, backups
        self._file = self.path.open("a", encoding="utf-8")
        super().__init__()

    def write(self, results: list[StreamResult]) -> None:
        for result in results:
            self._file.write(json.dumps(result_record(result)) + "\n")
        self._file.flush()
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("a", encoding="utf-8")

    def finish(self) -> None:
        self._file.close()


class WebhookSink(Sink):
    """POSTs JSON arrays of up to ``batch_size`` results (waiting at most ``max_wait_s`` for a
    batch to fill) to ``url``; a failed POST is retried ``retries`` times with a doubling delay,
    then counted as failed."""

    def __init__(self, url: str, batch_size: int = 16, max_wait_s: float = 0.5, retries: int = 3,
                 timeout_s: float = 5.0, queue_size: int = QUEUE_SIZE):
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"webhook URL {url!r} must start with http:// or https://")
        self.url, self.retries, self.timeout_s = url, retries, timeout_s
        self.batch_size, self.max_wait_s = batch_size, max_wait_s
        super().__init__(queue_size)

    def write(self, results: list[StreamResult]) -> None:
        body = json.dumps([result_record(r) for r in results]).encode()
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(self.url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if response.status < 300:
                        return
            except OSError:
                pass
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise OSError(f"webhook {self.url} failed {self.retries + 1} times")


class MqttSink(Sink):
    """Publishes each result as JSON to ``topic`` (``{stream}`` is the stream's name) on the
    MQTT broker at host:port (paho-mqtt; it reconnects by itself)."""

    def __init__(self, host: str, port: int = 1883, topic: str = "yolox/{stream}", qos: int = 0,
                 queue_size: int = QUEUE_SIZE):
        mqtt = require("paho.mqtt.client", "serve", "the MQTT output")
        self.topic, self.qos = topic, qos
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.connect_async(host, port)
        self._client.loop_start()
        super().__init__(queue_size)

    def write(self, results: list[StreamResult]) -> None:
        for result in results:
            info = self._client.publish(self.topic.format(stream=result.name), json.dumps(result_record(result)),
                                        qos=self.qos)
            if info.rc != 0:
                raise OSError(f"MQTT publish failed (rc {info.rc})")

    def finish(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class VideoSink(Sink):
    """An annotated MP4 per stream in ``folder`` (``NAME.mp4``, a new file per reconnect:
    ``NAME.r1.mp4`` ...), at ``fps``."""

    def __init__(self, folder: str | Path, fps: float = 15.0):
        self.folder, self.fps = Path(folder), fps
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writers: dict[tuple[str, int], Any] = {}
        super().__init__(queue_size=64)

    def write(self, results: list[StreamResult]) -> None:
        import cv2

        from ..visualize import draw_detections

        for result in results:
            key = (result.name, result.reconnects)
            writer = self._writers.get(key)
            if writer is None:
                suffix = f".r{result.reconnects}" if result.reconnects else ""
                h, w = result.image.shape[:2]
                writer = cv2.VideoWriter(str(self.folder / f"{result.name}{suffix}.mp4"),
                                         cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                self._writers[key] = writer
            writer.write(draw_detections(result.image, result.detections))

    def finish(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()


def sink_from_spec(spec: str) -> Sink:
    """``jsonl:DIR``, ``webhook:URL``, ``mqtt:HOST[:PORT][/TOPIC]``, ``video:DIR`` -> a sink."""
    kind, _, where = spec.partition(":")
    if kind == "jsonl" and where:
        return JsonLinesSink(where)
    if kind == "webhook" and where:
        return WebhookSink(where)
    if kind == "video" and where:
        return VideoSink(where)
    if kind == "mqtt" and where:
        address, _, topic = where.partition("/")
        host, _, port = address.partition(":")
        return MqttSink(host, int(port) if port.isdigit() else 1883, topic or "yolox/{stream}")
    raise InvalidInputError(f"unknown sink {spec!r}: use jsonl:DIR, webhook:URL, mqtt:HOST[:PORT][/TOPIC] or "
                            "video:DIR")
