"""A real Triton Inference Server for the tests: ``tritonserver`` from the nvidia-pytriton wheel,
in its own Python environment (built by ``.ci/triton-env``; numpy < 2), bound to 127.0.0.1.

The only stand-in is ``triton_backends/onnxruntime`` (labelled there): the wheel has no
onnxruntime backend. Unverified here: NVIDIA's C++ onnxruntime backend, GPU instance kinds,
the Triton container.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV_VAR = "YOLOX_DEPLOY_TRITON_ENV"
READY_TIMEOUT_S = 60.0


def server_env() -> Path:
    return Path(os.environ.get(ENV_VAR, REPO / ".venv-triton"))


def missing_reason(env: Path) -> str | None:
    """Why no server can start from ``env`` (None: it can)."""
    if not (env / "bin" / "python").exists():
        return f"no Triton server environment at {env}: build it with `bash .ci/triton-env` (or set {ENV_VAR})"
    if not list(env.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver")):
        return f"{env} has no tritonserver (pip install nvidia-pytriton there: `bash .ci/triton-env`)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_packages(env: Path) -> Path:
    return next(env.glob("lib/python3*/site-packages"))


def backend_directory(env: Path, workdir: Path) -> Path:
    """Triton's python backend (with the stub for the environment's Python) and the
    onnxruntime stand-in, laid out as Triton's --backend-directory expects."""
    tritonserver = _site_packages(env) / "pytriton" / "tritonserver"
    version = subprocess.run([str(env / "bin" / "python"), "-c", "import sys; print(f'{sys.version_info[0]}."
                              "{sys.version_info[1]}')"], capture_output=True, text=True, check=True).stdout.strip()
    backends = workdir / "backends"
    shutil.copytree(tritonserver / "backends" / "python", backends / "python", dirs_exist_ok=True)
    shutil.copy(tritonserver / "python_backend_stubs" / version / "triton_python_backend_stub", backends / "python")
    shutil.copytree(HERE / "triton_backends" / "onnxruntime", backends / "onnxruntime", dirs_exist_ok=True)
    return backends


class TritonServer:
    """``tritonserver`` serving ``repository`` on free 127.0.0.1 ports, in its own process group."""

    def __init__(self, repository: Path, workdir: Path, env: Path | None = None):
        self.env = env or server_env()
        self.repository, self.workdir = repository, workdir
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"127.0.0.1:{self.http_port}"
        self.log = workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "TritonServer":
        site = _site_packages(self.env)
        libdir = subprocess.run([str(self.env / "bin" / "python"), "-c",
                                 "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                                capture_output=True, text=True, check=True).stdout.strip()
        environment = {**os.environ,
                       # the stub must load this Python's own libpython, then the wheel's libraries
                       "LD_LIBRARY_PATH": f"{libdir}:{site / 'nvidia_pytriton.libs'}",
                       "PATH": f"{self.env / 'bin'}:{os.environ.get('PATH', '')}"}  # the stub finds python3 here
        for key in ("PYTHONPATH", "VIRTUAL_ENV"):
            environment.pop(key, None)
        command = [str(site / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
                   f"--model-repository={self.repository}",
                   f"--backend-directory={backend_directory(self.env, self.workdir)}",
                   "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                   "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                   "--allow-metrics=false", "--exit-timeout-secs=3"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                            start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tritonserver not ready within {READY_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
