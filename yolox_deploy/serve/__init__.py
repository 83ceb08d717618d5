"""yolox-serve's core: a long-running service over one Detector that streams come and go from
(docs/serve.md). Each stream's decoder runs in a process of its own (a hung or crashed decoder
costs only its stream), supervised: reconnect with backoff, a stall watchdog, per-stream state
and counters; the frames of all live streams share the backend's batches."""
from .service import StreamResult, VideoService
from .stream import StreamEvent, StreamOptions, StreamState, StreamStatus

__all__ = ["StreamEvent", "StreamOptions", "StreamResult", "StreamState", "StreamStatus", "VideoService"]
