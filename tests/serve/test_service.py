"""The video service against a real RTSP server with real faults (no mocked decoder): reconnect
after a camera crash, a silent stall, one faulted stream among healthy ones, streams added and
removed while others run, and files in wait mode equal to offline stream_many. Sized to seconds."""
from __future__ import annotations

import os
import threading
import time

import pytest
from rtsp_helpers import frame_counter

from yolox_deploy import Detector
from yolox_deploy.serve import StreamState, VideoService

FPS = 10


@pytest.fixture
def detector(tiny_onnx):
    return Detector(tiny_onnx, backend="onnxruntime", threads=1)


class Collector:
    """Results per stream as (reconnects, drawn counter, received time), kept in order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_stream: dict[str, list[tuple[int, int, float]]] = {}

    def __call__(self, result) -> None:
        with self.lock:
            self.by_stream.setdefault(result.name, []).append(
                (result.reconnects, frame_counter(result.image), result.received))

    def of(self, name: str) -> list[tuple[int, int, float]]:
        with self.lock:
            return list(self.by_stream.get(name, []))

    def wait_for(self, name: str, count: int, timeout: float, after: float = 0.0) -> list:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = [r for r in self.of(name) if r[2] >= after]
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{name}: {len([r for r in self.of(name) if r[2] >= after])} results after "
                             f"{timeout} s, wanted {count}")


def gaps(counters: list[int]) -> tuple[int, int]:
    """(frames lost, frames repeated) in a sequence of drawn counters."""
    lost = sum(max(0, b - a - 1) for a, b in zip(counters, counters[1:]))
    repeated = sum(1 for a, b in zip(counters, counters[1:]) if b <= a)
    return lost, repeated


@pytest.mark.parametrize("down_s", [1.0, 10.0])
def test_a_camera_back_after_a_crash_gives_results_within_3_s(rtsp_server, detector, down_s):
    server = rtsp_server(["cam0"], fps=FPS)
    results = Collector()
    with VideoService(detector, on_result=results) as service:
        service.add(server.url("cam0"), name="cam0", stall_s=2.0)
        results.wait_for("cam0", 5, timeout=15)
        server.kill()
        killed = time.monotonic()
        time.sleep(down_s)
        server.start()  # a camera reboot: same address, counter from 0
        first = results.wait_for("cam0", 1, timeout=15, after=server.ready_at)[0]
        assert first[2] - server.ready_at <= 3.0, f"first result {first[2] - server.ready_at:.2f} s after the restart"
        assert first[0] >= 1  # the reconnect counter tells frames before and after apart
        attempts = [e for e in service.events if e.name == "cam0" and e.state == StreamState.STARTING
                    and killed <= e.time <= server.ready_at]
        assert len(attempts) <= down_s + 1, f"{len(attempts)} decoder starts in {down_s} s down"
        assert service.status("cam0").state == StreamState.RUNNING


def test_a_silent_stall_is_reported_and_recovers_by_itself(rtsp_server, detector):
    server = rtsp_server(["cam0"], fps=FPS)
    results = Collector()
    with VideoService(detector, on_result=results) as service:
        service.add(server.url("cam0"), name="cam0", stall_s=1.0)
        results.wait_for("cam0", 5, timeout=15)
        server.stop()  # SIGSTOP: the connection stays open, no frame comes
        stopped = time.monotonic()
        while service.status("cam0").state != StreamState.STALLED and time.monotonic() - stopped < 5:
            time.sleep(0.02)
        stalled = next(e for e in service.events if e.state == StreamState.STALLED and e.time >= stopped)
        assert stalled.time - stopped <= 1.0 + 1.0, f"stalled after {stalled.time - stopped:.2f} s"
        time.sleep(1.5)
        server.resume()
        resumed = time.monotonic()
        results.wait_for("cam0", 3, timeout=20, after=resumed)
        assert service.status("cam0").state == StreamState.RUNNING


def test_a_hung_decoder_is_restarted_and_costs_only_its_stream(rtsp_server, detector):
    """A decoder that hangs (SIGSTOP to its process: a read blocked inside FFmpeg) is seen as a
    stall, killed and replaced; the other stream loses no frame meanwhile."""
    import signal

    server = rtsp_server(["cam0", "cam1"], fps=FPS)
    results = Collector()
    with VideoService(detector, on_result=results) as service:
        service.add(server.url("cam0"), name="cam0", drop="oldest", queue_size=32)
        service.add(server.url("cam1"), name="cam1", stall_s=1.0)
        results.wait_for("cam0", 5, timeout=15)
        results.wait_for("cam1", 5, timeout=15)
        hung = service.status("cam1").decoder_pid
        os.kill(hung, signal.SIGSTOP)
        stopped = time.monotonic()
        results.wait_for("cam1", 3, timeout=15, after=stopped + 0.5)
        assert service.status("cam1").decoder_pid not in (hung, None)
        assert any(e.state == StreamState.STALLED and e.name == "cam1" and e.time >= stopped for e in service.events)
        assert not os.path.exists(f"/proc/{hung}") or open(f"/proc/{hung}/stat").read().split(") ")[1][0] == "Z"
        assert gaps([c for _, c, _ in results.of("cam0")]) == (0, 0)


def test_a_faulted_stream_costs_the_others_no_frame(rtsp_server, detector):
    healthy, faulty = rtsp_server(["cam0"], fps=FPS), rtsp_server(["cam1"], fps=FPS)
    results = Collector()
    with VideoService(detector, on_result=results) as service:
        service.add(healthy.url("cam0"), name="cam0", drop="oldest", queue_size=32)
        service.add(faulty.url("cam1"), name="cam1", stall_s=1.0)
        results.wait_for("cam0", 5, timeout=15)
        results.wait_for("cam1", 5, timeout=15)
        start = time.monotonic()
        faulty.stop()
        time.sleep(2.0)
        faulty.kill()
        time.sleep(1.0)
        window = [r for r in results.of("cam0") if r[2] >= start]
        assert len(window) >= 2.5 * FPS
        lost, repeated = gaps([c for _, c, _ in results.of("cam0")])
        assert (lost, repeated) == (0, 0)
        fps = (len(window) - 1) / (window[-1][2] - window[0][2])
        assert abs(fps - FPS) / FPS <= 0.05 or abs(fps - FPS) <= 0.6, f"{fps:.2f} fps while the other was faulted"


def test_streams_added_and_removed_while_others_run(rtsp_server, detector):
    cycles = int(os.environ.get("YOLOX_DEPLOY_SERVE_CYCLES", "10"))
    running = ["cam0", "cam1", "cam2", "cam3"]
    server = rtsp_server([*running, "extra"], fps=FPS)
    results = Collector()
    with VideoService(detector, on_result=results) as service:
        for name in running:
            service.add(server.url(name), name=name, drop="oldest", queue_size=32)
            results.wait_for(name, 3, timeout=15)
        time.sleep(0.5)
        threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
        for cycle in range(cycles):
            asked = time.monotonic()
            service.add(server.url("extra"), name="extra")
            first = results.wait_for("extra", 1, timeout=10, after=asked)[0]
            assert first[2] - asked <= 2.0, f"cycle {cycle}: first result after {first[2] - asked:.2f} s"
            service.remove("extra")
        time.sleep(0.5)
        for name in running:
            assert gaps([c for _, c, _ in results.of(name)]) == (0, 0), name
        assert threading.active_count() == threads
        assert len(os.listdir("/proc/self/fd")) == fds


def test_a_duplicate_or_unknown_name_is_one_line(detector, tmp_path):
    from yolox_deploy.errors import InvalidInputError

    with VideoService(detector) as service:
        service.add(str(tmp_path / "missing.mp4"), name="a", max_attempts=1, backoff_base_s=0.1)
        with pytest.raises(InvalidInputError, match="already exists"):
            service.add(str(tmp_path / "other.mp4"), name="a")
        with pytest.raises(InvalidInputError, match="no stream named 'b'"):
            service.remove("b")
        end = time.monotonic() + 15
        while service.status("a").state != StreamState.FAILED and time.monotonic() < end:
            time.sleep(0.05)
        assert service.status("a").state == StreamState.FAILED


def test_a_file_in_wait_mode_equals_offline_stream_many(detector, tmp_path):
    import cv2
    import numpy as np

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    writer.release()
    got = []
    with VideoService(detector, on_result=got.append) as service:
        service.add(str(video), name="clip")
        end = time.monotonic() + 30
        while service.status("clip").state != StreamState.STOPPED and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)
        status = service.status("clip")
        assert status.decoded == 30 and status.dropped == 0
    offline = [r for r in detector.stream_many([str(video)]) if not r.finished]
    assert [r.index for r in got] == list(range(30)) == [r.index for r in offline]
    for mine, theirs in zip(got, offline):
        assert np.array_equal(mine.detections.xyxy, theirs.detections.xyxy)
        assert np.array_equal(mine.detections.scores, theirs.detections.scores)


@pytest.mark.parametrize("keep_tracks_s, kept", [(0.0, False), (30.0, True)])
def test_the_tracker_across_a_reconnect_is_reset_unless_the_gap_is_short(rtsp_server, detector, keep_tracks_s, kept):
    """A decoder crash (SIGKILL: a native crash would end it the same way) is a reconnect: the
    tracker starts over (the results' reconnect counter tells the ids apart), unless the gap was
    within keep_tracks_s."""
    import signal

    server = rtsp_server(["cam0"], fps=FPS)
    got = []
    with VideoService(detector, on_result=got.append) as service:
        service.add(server.url("cam0"), name="cam0", track="bytetrack", keep_tracks_s=keep_tracks_s)
        end = time.monotonic() + 15
        while len(got) < 5 and time.monotonic() < end:
            time.sleep(0.05)
        before = service._tracking["cam0"].tracker
        os.kill(service.status("cam0").decoder_pid, signal.SIGKILL)
        killed = time.monotonic()
        while not any(r.reconnects == 1 for r in got[-3:]) and time.monotonic() - killed < 15:
            time.sleep(0.05)
        time.sleep(0.3)
        assert got[-1].reconnects == 1 and got[-1].detections.tracker_ids is not None
        assert (service._tracking["cam0"].tracker is before) is kept


def test_a_backend_call_that_raises_costs_its_frames_only(detector, tmp_path):
    """The inference thread outlives a failing backend call: its frames are counted as failed
    (decoded = inferred + dropped + failed + in flight) and the stream goes on."""
    import cv2
    import numpy as np

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(20):
        writer.write(np.full((120, 160, 3), i * 10, np.uint8))
    writer.release()
    calls = []

    def flaky(images):  # a callable "detector": the 3rd call raises
        calls.append(len(images))
        if len(calls) == 3:
            raise RuntimeError("backend fell over")
        return detector(images)

    with VideoService(flaky) as service:
        service.add(str(video), name="clip")
        end = time.monotonic() + 20
        while (service.status("clip").state != StreamState.STOPPED or service.snapshots()[0].in_flight) \
                and time.monotonic() < end:
            time.sleep(0.05)
        snapshot = service.snapshots()[0]
        assert service.failed_batches == 1 and service.last_error == "backend fell over"
        assert snapshot.failed == calls[2] and snapshot.inferred == 20 - snapshot.failed
        assert snapshot.decoded == snapshot.inferred + snapshot.dropped + snapshot.failed + snapshot.in_flight
