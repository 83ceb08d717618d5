"""The service's outputs with real receivers: rotated JSON lines, a webhook on a real local HTTP
server (batched; failing and slow endpoints never block inference), a real mosquitto broker, an
annotated video file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from rtsp_helpers import free_port

from yolox_deploy import Detector
from yolox_deploy.serve import StreamState, VideoService
from yolox_deploy.serve.sinks import JsonLinesSink, MqttSink, VideoSink, WebhookSink

FRAMES = 30


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    rng = np.random.default_rng(1)
    for _ in range(FRAMES):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def detector(tiny_onnx):
    return Detector(tiny_onnx, backend="onnxruntime", threads=1, conf=0.0)


def run_clip(detector, clip, sinks) -> VideoService:
    service = VideoService(detector, sinks=sinks)
    service.add(str(clip), name="clip")
    end = time.monotonic() + 30
    while service.status("clip").state != StreamState.STOPPED and time.monotonic() < end:
        time.sleep(0.05)
    while service.snapshots()[0].in_flight and time.monotonic() < end:
        time.sleep(0.05)
    return service


def test_json_lines_rotate(tmp_path, detector, clip):
    sink = JsonLinesSink(tmp_path / "out", max_bytes=4000, backups=50)
    run_clip(detector, clip, [sink]).close()
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) > 2  # rotated
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(FRAMES)) and sink.written == FRAMES
    assert {"stream", "reconnects", "pts_ms", "wall_time", "latency_s", "detections"} <= set(records[0])


class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON arrays; ``status`` and ``delay_s``
    make it fail or be slow."""

    def __init__(self, status: int = 200, delay_s: float = 0.0):
        self.batches: list[list] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                if status == 200:
                    receiver.batches.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_webhook_gets_every_result_in_batches(detector, clip):
    receiver = Receiver()
    sink = WebhookSink(receiver.url, batch_size=8, max_wait_s=0.2)
    run_clip(detector, clip, [sink]).close()
    receiver.close()
    assert sorted(r["index"] for b in receiver.batches for r in b) == list(range(FRAMES))
    assert max(len(b) for b in receiver.batches) <= 8 and len(receiver.batches) < FRAMES


@pytest.mark.parametrize("status, delay_s", [(500, 0.0), (200, 1.0)])
def test_a_failing_or_slow_webhook_never_blocks_inference(detector, clip, status, delay_s):
    receiver = Receiver(status, delay_s)
    sink = WebhookSink(receiver.url, batch_size=2, max_wait_s=0.0, retries=1, timeout_s=5, queue_size=4)
    started = time.monotonic()
    service = run_clip(detector, clip, [sink])
    assert service.snapshots()[0].inferred == FRAMES
    assert time.monotonic() - started < 10  # the slow endpoint would take 15 s for 30 frames in pairs
    service.close(timeout=3)
    receiver.close()
    assert sink.dropped + sink.failed + sink.written == FRAMES and sink.dropped + sink.failed > 0


def test_mqtt_publishes_to_a_real_broker(tmp_path, detector, clip):
    broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not shutil.which(broker):
        (pytest.fail if os.environ.get("CI") else pytest.skip)("mosquitto is not installed (.ci/run installs Debian's)")
    from paho.mqtt import client as mqtt

    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen([broker, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        received, connected = [], threading.Event()
        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscriber.on_connect = lambda client, *_: (client.subscribe("yolox/#"), connected.set())
        subscriber.on_message = lambda _c, _u, message: received.append((message.topic, json.loads(message.payload)))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                subscriber.connect("127.0.0.1", port)
                break
            except OSError:
                time.sleep(0.1)
        subscriber.loop_start()
        assert connected.wait(10)
        time.sleep(0.3)  # the subscription is in place
        sink = MqttSink("127.0.0.1", port)
        run_clip(detector, clip, [sink]).close()
        end = time.monotonic() + 10
        while len(received) < FRAMES and time.monotonic() < end:
            time.sleep(0.05)
        subscriber.loop_stop()
        assert sorted(r["index"] for _, r in received) == list(range(FRAMES))
        assert {topic for topic, _ in received} == {"yolox/clip"}
    finally:
        process.kill()
        process.wait()


def test_an_annotated_video_per_stream(tmp_path, detector, clip):
    sink = VideoSink(tmp_path / "videos", fps=10)
    run_clip(detector, clip, [sink]).close()
    capture = cv2.VideoCapture(str(tmp_path / "videos" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
