"""A real RTSP server for the video service's tests (tests/serve/rtsp_server.py: Debian's
gst-rtsp-server under /usr/bin/python3, on 127.0.0.1), started, killed, stopped and restarted
by the tests (the `rtsp_server` fixture of tests/conftest.py); and the drawn frame counter read
back from the pictures."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np

SERVER = Path(__file__).parent / "serve" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gst_rtsp_available() -> str | None:
    """None when the server can run here, else why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is missing"
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                           "from gi.repository import GstRtspServer"], capture_output=True, text=True)
    return None if done.returncode == 0 else "gst-rtsp-server is not installed (.ci/run installs " \
        "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-{base,good,ugly} python3-gi)"


class RtspServer:
    """One server process serving ``names`` on a port of its own; kill/stop/resume/restart it."""

    def __init__(self, names: list[str], fps: int = 10, size: str = "320x240"):
        self.names, self.fps, self.size, self.port = names, fps, size, free_port()
        self.process: subprocess.Popen | None = None
        self.ready_at = 0.0
        self.start()

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.port), ",".join(self.names),
                                         "--fps", str(self.fps), "--size", self.size], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the RTSP server did not start: {line} {self.process.stderr.read()[-2000:]}")
        self.ready_at = time.monotonic()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


def frame_counter(image: np.ndarray) -> int:
    """The counter rtsp_server.py draws: 16 blocks of width // 16 pixels in the top band, bit 15
    first, bright = 1 (read at each block's centre, so compression blur does not matter)."""
    block = image.shape[1] // 16
    values = image[20, block // 2::block, 1][:16]
    return int("".join("1" if v > 128 else "0" for v in values), 2)
