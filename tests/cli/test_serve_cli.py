"""yolox-serve as a user runs it: a config file, the HTTP API on 127.0.0.1, and SIGTERM / SIGINT
stopping it within 5 s with nothing left running (its decoder processes killed and reaped)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def decoders_of(parent: int) -> list[int]:
    """PIDs of the live decoder processes that ``parent`` started."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and "yolox_deploy.serve.decoder" in cmdline and alive(int(pid)):
            found.append(int(pid))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_yolox_serve_runs_a_config_and_stops_on_a_signal_within_5_s(tmp_path, tiny_onnx, rtsp_server, signum):
    server = rtsp_server(["cam0", "cam1"], fps=10)
    config = tmp_path / "streams.json"
    config.write_text(json.dumps({"streams": [{"source": server.url("cam0"), "name": "cam0"},
                                              {"source": server.url("cam1"), "name": "cam1",
                                               "options": {"stall_s": 2}}]}))
    process = subprocess.Popen([sys.executable, "-m", "yolox_deploy.cli.serve", "--model", str(tiny_onnx),
                                "--threads", "1", "--port", "0", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("yolox-serve: listening on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[3]
        end = time.monotonic() + 20
        streams = []
        while time.monotonic() < end:
            with urllib.request.urlopen(f"{url}/streams", timeout=5) as response:
                streams = json.loads(response.read())
            if all(s["state"] == "running" for s in streams) and len(streams) == 2:
                break
            time.sleep(0.2)
        assert [s["state"] for s in streams] == ["running", "running"], streams
        decoders = decoders_of(process.pid)
        assert len(decoders) >= 2  # one per stream (and one started ahead for the next)
        stopped = time.monotonic()
        process.send_signal(signum)
        process.wait(10)
        assert time.monotonic() - stopped <= 5.0
        assert process.returncode == 0, process.stderr.read()
        assert not [pid for pid in decoders if alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
