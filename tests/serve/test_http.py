"""yolox-serve's HTTP API on 127.0.0.1 (a real server, real requests): streams added, listed and
removed; bad input is a 4xx with one line and the service goes on; /metrics keeps
decoded = inferred + dropped + in flight at every scrape; the token rule."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from yolox_deploy import Detector
from yolox_deploy.errors import InvalidInputError
from yolox_deploy.serve import VideoService
from yolox_deploy.serve.http import ApiServer

pytest.importorskip("prometheus_client")


@pytest.fixture
def api(tiny_onnx, tmp_path):
    service = VideoService(Detector(tiny_onnx, backend="onnxruntime", threads=1))
    (tmp_path / "allowed").mkdir()
    server = ApiServer(service, "127.0.0.1", 0, allowed_dir=tmp_path / "allowed")
    server.start()
    yield server
    server.close()
    service.close()


def call(server: ApiServer, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data, status, kind = response.read(), response.status, response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        data, status, kind = exc.read(), exc.code, exc.headers["Content-Type"]
    return status, json.loads(data) if kind == "application/json" else data.decode()


def test_streams_are_added_listed_and_removed_over_http(api, rtsp_server):
    server = rtsp_server(["cam0"], fps=10)
    status, stream = call(api, "POST", "/streams", json.dumps({"source": server.url("cam0"), "name": "cam0",
                                                               "options": {"stall_s": 2}}).encode())
    assert status == 201 and stream["name"] == "cam0"
    end = time.monotonic() + 15
    while call(api, "GET", "/readyz")[0] != 200 and time.monotonic() < end:
        time.sleep(0.1)
    assert call(api, "GET", "/readyz")[0] == 200 and call(api, "GET", "/healthz")[0] == 200
    status, listed = call(api, "GET", "/streams")
    assert status == 200 and [s["name"] for s in listed] == ["cam0"] and listed[0]["state"] == "running"
    for _ in range(10):  # every scrape: decoded = inferred + dropped + in flight
        status, text = call(api, "GET", "/metrics")
        assert status == 200
        values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                  if line.startswith("yolox_serve_frames") and 'stream="cam0"' in line}
        decoded = values['yolox_serve_frames_total{outcome="decoded",stream="cam0"}']
        inferred = values['yolox_serve_frames_total{outcome="inferred",stream="cam0"}']
        dropped = values['yolox_serve_frames_total{outcome="dropped",stream="cam0"}']
        in_flight = values['yolox_serve_frames_in_flight{stream="cam0"}']
        assert decoded == inferred + dropped + in_flight and 0 <= in_flight <= 2 and decoded > 0
        time.sleep(0.1)
    assert 'yolox_serve_state{state="running",stream="cam0"} 1.0' in text
    assert "yolox_serve_latency_seconds_bucket" in text
    assert call(api, "DELETE", "/streams/cam0") == (200, {"removed": "cam0"})
    assert call(api, "GET", "/streams") == (200, [])


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "the body is not valid JSON"),
    (b'["rtsp://x"]', 400, "the body must be a JSON object"),
    (json.dumps({"source": "file:///etc/passwd"}).encode(), 400, "source scheme 'file' is not allowed"),
    (json.dumps({"source": "/etc/passwd"}).encode(), 403, "is outside the allowed folder"),
    (json.dumps({"source": "../../etc/passwd"}).encode(), 403, "is outside the allowed folder"),
    (json.dumps({"source": "rtsp://127.0.0.1:1/x", "colour": "red"}).encode(), 400, "unknown field 'colour'"),
    (json.dumps({"source": "rtsp://127.0.0.1:1/x", "options": {"stall": 1}}).encode(), 400, "field 'options'"),
    (json.dumps({"source": "rtsp://127.0.0.1:1/x", "options": {"drop": "newest"}}).encode(), 400,
     "unknown drop policy"),
])
def test_bad_input_is_a_4xx_with_one_line_and_the_service_goes_on(api, body, status, message):
    got_status, got = call(api, "POST", "/streams", body)
    assert got_status == status and message in got["error"] and "\n" not in got["error"], got
    assert call(api, "GET", "/healthz")[0] == 200 and call(api, "GET", "/streams") == (200, [])


def test_duplicate_and_unknown_names(api):
    body = json.dumps({"source": "rtsp://127.0.0.1:1/x", "name": "a", "options": {"max_attempts": 1}}).encode()
    assert call(api, "POST", "/streams", body)[0] == 201
    status, got = call(api, "POST", "/streams", body)
    assert status == 409 and "already exists" in got["error"]
    assert call(api, "DELETE", "/streams/nobody")[0] == 404
    assert call(api, "GET", "/streams/nobody")[0] == 404


def test_another_address_needs_a_token(tiny_onnx):
    service = VideoService(Detector(tiny_onnx, backend="onnxruntime", threads=1))
    try:
        with pytest.raises(InvalidInputError, match="needs a token"):
            ApiServer(service, "0.0.0.0", 0)
        server = ApiServer(service, "127.0.0.1", 0, token="s3cret")
        server.start()
        assert call(server, "GET", "/streams")[0] == 401
        assert call(server, "GET", "/streams", headers={"Authorization": "Bearer s3cret"}) == (200, [])
        server.close()
    finally:
        service.close()
