"""One stream of the service: its decoder process supervised, its state and its counters.

A supervisor thread starts the decoder (:mod:`.decoder`) and a reader thread that turns its
output into frames. States: ``starting`` (decoder started, no frame yet), ``running``,
``stalled`` (connected but no frame for ``stall_s``: detected by the supervisor from the age of
the last frame, whatever the decoder's read is doing), ``reconnecting`` (waiting out the
backoff), ``stopped`` (removed, or a file's end) and ``failed`` (``max_attempts`` used up).
Every change is a :class:`StreamEvent`. A stall longer than ``stall_restart_s`` restarts the
decoder. Reconnects wait ``min(cap, base * 2**attempt)`` seconds, with +-25% jitter, and count
as one attempt each; a frame resets the attempts.
"""
from __future__ import annotations

import dataclasses
import enum
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .decoder import EXIT_END, HEADER

DROP_POLICIES = ("latest", "oldest", "wait")


class StreamState(str, enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """``stall_s``: seconds without a frame before the stream is ``stalled``; ``stall_restart_s``:
    before its decoder is restarted (default 2 x stall_s); ``backoff_base_s`` / ``backoff_cap_s``:
    the reconnect backoff; ``max_attempts``: reconnects in a row before ``failed`` (None: never);
    ``drop``: 'latest' (keep the newest frame only), 'oldest' (a queue of ``queue_size``, the
    oldest dropped) or 'wait' (the decoder waits: files); None: 'wait' for files, else 'latest'."""

    stall_s: float = 5.0
    stall_restart_s: float | None = None
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 5.0
    max_attempts: int | None = None
    drop: str | None = None
    queue_size: int = 4

    def __post_init__(self) -> None:
        from ..errors import InvalidInputError

        if self.drop is not None and self.drop not in DROP_POLICIES:
            raise InvalidInputError(f"unknown drop policy {self.drop!r}: use one of {', '.join(DROP_POLICIES)}")
        if not self.stall_s > 0 or not self.backoff_cap_s > 0 or not self.backoff_base_s > 0:
            raise InvalidInputError("stall_s, backoff_base_s and backoff_cap_s must be > 0")
        if self.queue_size < 1 or (self.max_attempts is not None and self.max_attempts < 1):
            raise InvalidInputError("queue_size and max_attempts must be >= 1")


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    """A state change of stream ``name`` at ``time`` (time.monotonic()); ``reason`` says why."""

    name: str
    state: StreamState
    previous: StreamState
    time: float
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class StreamStatus:
    """What a stream is doing: its state, reconnects so far, frames decoded / dropped (for a slow
    consumer) / handed to inference, the age of its last frame in seconds (None: no frame yet),
    and its decoder's process id."""

    name: str
    source: str
    state: StreamState
    reconnects: int
    decoded: int
    dropped: int
    taken: int
    last_frame_age_s: float | None
    decoder_pid: int | None  # the decoder process now, None between attempts


@dataclasses.dataclass
class Frame:
    """One decoded frame: its index within its decoder run, PTS in ms (None when unknown), the
    monotonic and wall-clock time it was received, the stream's reconnect count then, BGR pixels."""

    index: int
    pts_ms: float | None
    received: float
    wall_time: float
    reconnects: int
    image: np.ndarray


PROBE_INTERVAL_S = 0.25  # TCP probes while a network source is down (no decoder is started by one)
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}


def is_file_source(source: str) -> bool:
    return "://" not in source


def tcp_address(source: str) -> tuple[str, int] | None:
    """(host, port) of a network source, None for files and schemes without a default port."""
    parsed = urllib.parse.urlsplit(source)
    if not parsed.hostname or parsed.scheme not in DEFAULT_PORTS:
        return None
    try:
        return parsed.hostname, parsed.port or DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        return None


def accepts(address: tuple[str, int], timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


class Stream:
    """A supervised source; :meth:`take` gives its pending frames to the service."""

    def __init__(self, name: str, source: str, options: StreamOptions, on_event: Callable[[StreamEvent], None],
                 on_frame: Callable[[], None], prepare: Callable[[np.ndarray], tuple[Any, Any]] | None = None,
                 spare: subprocess.Popen | None = None):
        self.name, self.source, self.options = name, source, options
        self.drop = options.drop or ("wait" if is_file_source(source) else "latest")
        self.state = StreamState.STARTING
        self.reconnects = self.decoded = self.dropped = self.taken = 0
        self.last_frame: float | None = None
        self._on_event, self._on_frame, self._prepare = on_event, on_frame, prepare
        self._lock = threading.Condition()
        self._pending: deque[Frame] = deque()
        self._stop = threading.Event()
        self._process: subprocess.Popen | None = None
        self._spare: subprocess.Popen | None = spare  # the next attempt's decoder, started ahead
        self._supervisor = threading.Thread(target=self._supervise, name=f"yolox-serve-{name}", daemon=True)

    # -- the service's side -----------------------------------------------------------------
    def start(self) -> None:
        self._supervisor.start()

    def take(self) -> list[Frame]:
        """The frames waiting for inference (at most one with drop='latest'), oldest first."""
        with self._lock:
            frames = list(self._pending)
            self._pending.clear()
            self.taken += len(frames)
            self._lock.notify_all()  # a 'wait' reader may go on
        return frames

    def status(self) -> StreamStatus:
        with self._lock:
            age = None if self.last_frame is None else time.monotonic() - self.last_frame
            process = self._process
            pid = process.pid if process is not None and process.poll() is None else None
            return StreamStatus(self.name, self.source, self.state, self.reconnects, self.decoded, self.dropped,
                                self.taken, age, pid)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the decoder and the threads; returns within about ``timeout`` seconds."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._kill()
        self._supervisor.join(timeout)

    # -- the supervisor ------------------------------------------------------------------------
    def _set_state(self, state: StreamState, reason: str = "") -> None:
        with self._lock:
            previous, self.state = self.state, state
        if previous != state:
            self._on_event(StreamEvent(self.name, state, previous, time.monotonic(), reason))

    def _supervise(self) -> None:
        attempts = 0
        while not self._stop.is_set():
            outcome = self._run_decoder()
            if self._stop.is_set():
                break
            if outcome == "end":
                self._set_state(StreamState.STOPPED, "end of the file")
                return
            if outcome == "frames":
                attempts = 0
            attempts += 1
            if self.options.max_attempts is not None and attempts > self.options.max_attempts:
                self._set_state(StreamState.FAILED, f"{self.options.max_attempts} reconnect attempts failed ({outcome})")
                return
            delay = min(self.options.backoff_cap_s, self.options.backoff_base_s * 2 ** (attempts - 1))
            self._set_state(StreamState.RECONNECTING, outcome)
            self._start_spare()
            if self._wait_to_reconnect(delay * random.uniform(0.75, 1.25)):
                break
            with self._lock:
                self.reconnects += 1
            self._set_state(StreamState.STARTING, f"attempt {attempts}")
        self._set_state(StreamState.STOPPED, "removed")

    def _decoder(self) -> subprocess.Popen:
        """A decoder process waiting for its URL on stdin: the one started ahead, else a new one."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None:
            return spare
        if spare is not None:
            close_pipes(spare)
        return start_decoder()

    def _start_spare(self) -> None:
        """Starts the next attempt's decoder now, so that it is ready when the backoff ends."""
        try:
            spare = self._decoder()
        except OSError:
            return
        with self._lock:
            self._spare = spare
        if self._stop.is_set():
            self._kill()

    def _wait_to_reconnect(self, delay: float) -> bool:
        """Waits out the backoff (True: stopped meanwhile). A network source is probed once a
        second meanwhile (a TCP connect, no decoder): when its server accepts again, the wait
        ends then, so a camera back after a long outage is not left waiting for the backoff's cap."""
        end = time.monotonic() + delay
        address = tcp_address(self.source)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return self._stop.is_set()
            if self._stop.wait(min(PROBE_INTERVAL_S, left)):
                return True
            if address is not None and accepts(address):
                return self._stop.is_set()

    def _run_decoder(self) -> str:
        """Runs one decoder process to its end: 'end' (a file's end), 'frames' (it gave frames,
        then stopped), or why it gave none."""
        try:
            process = self._decoder()
            process.stdin.write(self.source.encode() + b"\n")
            process.stdin.close()
        except OSError as exc:
            return f"cannot start the decoder ({exc})"
        with self._lock:
            self._process = process
        got = {"frames": 0}
        reader = threading.Thread(target=self._read, args=(process.stdout, got), daemon=True)
        reader.start()
        stall_restart = self.options.stall_restart_s or 2 * self.options.stall_s
        started = time.monotonic()
        while reader.is_alive() and not self._stop.is_set():
            reader.join(0.1)
            now = time.monotonic()
            with self._lock:
                since = self.last_frame if got["frames"] else started
            silent = now - since
            if silent > stall_restart:
                self._kill()
                reader.join(1.0)
                return f"no frame for {silent:.1f} s: decoder restarted"
            if got["frames"] and silent > self.options.stall_s and self.state == StreamState.RUNNING:
                self._set_state(StreamState.STALLED, f"no frame for {silent:.1f} s")
        self._kill()
        code = process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if code == EXIT_END and is_file_source(self.source) and got["frames"]:
            return "end"
        return "frames" if got["frames"] else f"no frame (decoder exit code {code})"

    def _read(self, pipe: IO[bytes], got: dict) -> None:
        """Frames from the decoder's pipe into the pending queue, by the drop policy."""
        while not self._stop.is_set():
            header = _read_exactly(pipe, HEADER.size)
            if header is None:
                return
            index, pts, height, width = HEADER.unpack(header)
            data = _read_exactly(pipe, height * width * 3)
            if data is None:
                return
            now = time.monotonic()
            frame = Frame(index, pts if pts >= 0 else None, now, time.time(), self.reconnects,
                          np.frombuffer(data, np.uint8).reshape(height, width, 3))
            if self._prepare is not None:  # off the inference thread, in parallel with it
                frame.tensor, frame.ratio = self._prepare(frame.image)
            with self._lock:
                if self.drop == "wait":
                    while len(self._pending) >= self.options.queue_size and not self._stop.is_set():
                        self._lock.wait(0.1)
                elif self.drop == "latest":
                    self.dropped += len(self._pending)
                    self._pending.clear()
                elif len(self._pending) >= self.options.queue_size:
                    self._pending.popleft()
                    self.dropped += 1
                self._pending.append(frame)
                self.decoded += 1
                self.last_frame = now
            got["frames"] += 1
            if self.state != StreamState.RUNNING:
                self._set_state(StreamState.RUNNING, "frames arrive")
            self._on_frame()

    def _kill(self) -> None:
        """Kills the running decoder (and, once stopping, the one started ahead)."""
        with self._lock:
            processes = [self._process] + ([self._spare] if self._stop.is_set() else [])
        for process in processes:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if self._stop.is_set():
            with self._lock:
                spare, self._spare = self._spare, None
            if spare is not None:
                close_pipes(spare)


def start_decoder() -> subprocess.Popen:
    """A decoder process that imports OpenCV, then waits for its URL on stdin."""
    return subprocess.Popen([sys.executable, "-m", "yolox_deploy.serve.decoder", "--stdin"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, bufsize=0)


def close_pipes(process: subprocess.Popen) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def _read_exactly(pipe: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = pipe.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
