"""The status page in a real headless browser (Debian's chromium): it lists the streams with
their state and shows each one's latest annotated frame, refreshed by its own script."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest

from yolox_deploy import Detector
from yolox_deploy.serve import VideoService
from yolox_deploy.serve.http import ApiServer

pytest.importorskip("prometheus_client")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's)")
        pytest.skip("chromium is not installed")
    return found


def headless(browser: str, url: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--virtual-time-budget=4000", "--window-size=1000,500", *flags, url],
                          capture_output=True, text=True, timeout=120)


def test_the_status_page_shows_every_stream_and_its_frame(tmp_path, tiny_onnx, rtsp_server):
    browser = chromium()
    server = rtsp_server(["cam0", "cam1"], fps=10)
    service = VideoService(Detector(tiny_onnx, backend="onnxruntime", threads=1))
    api = ApiServer(service, "127.0.0.1", 0)
    api.start()
    try:
        for name in ("cam0", "cam1"):
            service.add(server.url(name), name=name)
        end = time.monotonic() + 20
        while any(service.latest(n) is None for n in ("cam0", "cam1")) and time.monotonic() < end:
            time.sleep(0.1)
        url = f"http://127.0.0.1:{api.port}/"
        dom = headless(browser, url, "--dump-dom").stdout
        for name in ("cam0", "cam1"):  # rows written by the page's script from GET /streams
            assert f'id="stream-{name}"' in dom, dom[-2000:]
        assert dom.count('class="running">running</td>') == 2
        shot = tmp_path / "page.png"
        headless(browser, url, f"--screenshot={shot}")
        image = cv2.imread(str(shot))
        assert image is not None and image.shape[:2] == (500, 1000)
        # the frames on screen: the test pictures' grey (128), and the coloured boxes and labels drawn on them
        grey = np.count_nonzero(np.all(np.abs(image.astype(int) - 128) <= 6, axis=2))
        coloured = np.count_nonzero(cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 1] > 100)
        assert grey > 2000 and coloured > 2 * 3000, (grey, coloured)
    finally:
        api.close()
        service.close()
