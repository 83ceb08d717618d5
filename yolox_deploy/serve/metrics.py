"""Prometheus metrics of a VideoService, read at scrape time (prometheus_client, the
``[serve]`` extra): per stream, frames decoded / inferred / dropped / in flight, reconnects,
state, frames per second (inferred, over the last scrape interval), and the decode-to-result
latency histogram. ``decoded = inferred + dropped + failed + in_flight`` holds at every scrape
(failed: frames of a backend call that raised): the stream's counters are read in one snapshot
(docs/serve.md)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._optional import require
from .service import LATENCY_BUCKETS
from .stream import StreamState

if TYPE_CHECKING:
    from .service import VideoService


class ServiceCollector:
    """A prometheus_client collector over ``service`` (register it in a CollectorRegistry)."""

    def __init__(self, service: VideoService):
        self.service = service
        self._last: dict[str, tuple[float, int]] = {}

    def collect(self) -> Any:
        metrics = require("prometheus_client.core", "serve", "yolox-serve's metrics")
        frames = metrics.CounterMetricFamily("yolox_serve_frames", "frames of a stream, by what became of them",
                                             labels=["stream", "outcome"])
        in_flight = metrics.GaugeMetricFamily("yolox_serve_frames_in_flight",
                                              "frames decoded, neither inferred nor dropped yet", labels=["stream"])
        reconnects = metrics.CounterMetricFamily("yolox_serve_reconnects", "decoder restarts", labels=["stream"])
        state = metrics.GaugeMetricFamily("yolox_serve_state", "1 for the stream's current state",
                                          labels=["stream", "state"])
        fps = metrics.GaugeMetricFamily("yolox_serve_fps", "frames inferred per second since the last scrape",
                                        labels=["stream"])
        now = time.monotonic()
        snapshots = self.service.snapshots()
        for gone in set(self._last) - {s.name for s in snapshots}:
            del self._last[gone]
        for snapshot in snapshots:
            name = snapshot.name
            frames.add_metric([name, "decoded"], snapshot.decoded)
            frames.add_metric([name, "inferred"], snapshot.inferred)
            frames.add_metric([name, "dropped"], snapshot.dropped)
            frames.add_metric([name, "failed"], snapshot.failed)
            in_flight.add_metric([name], snapshot.in_flight)
            reconnects.add_metric([name], snapshot.reconnects)
            for value in StreamState:
                state.add_metric([name, value.value], 1.0 if snapshot.state == value else 0.0)
            last_time, last_count = self._last.get(name, (now, snapshot.inferred))
            fps.add_metric([name], (snapshot.inferred - last_count) / (now - last_time) if now > last_time else 0.0)
            self._last[name] = (now, snapshot.inferred)
        latency = metrics.HistogramMetricFamily("yolox_serve_latency_seconds", "decode to result, per frame",
                                                labels=["stream"])
        for name, (buckets, total) in self.service.latency_histograms(LATENCY_BUCKETS).items():
            latency.add_metric([name], buckets=buckets, sum_value=total)
        return [frames, in_flight, reconnects, state, fps, latency]


def exposition(service: VideoService, collector: ServiceCollector | None = None) -> tuple[bytes, str]:
    """(the metrics in Prometheus' text format, its content type)."""
    client = require("prometheus_client", "serve", "yolox-serve's metrics")
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(collector or ServiceCollector(service))
    return client.generate_latest(registry), client.CONTENT_TYPE_LATEST
