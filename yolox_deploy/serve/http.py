"""yolox-serve's HTTP API, on the standard library's ThreadingHTTPServer (no web framework to
install; the API is a handful of JSON routes):

    POST   /streams          {"source": ..., "name": ..., "options": {...}}  -> 201 the stream
    DELETE /streams/{name}                                                 -> 200
    GET    /streams                                                        -> 200 [streams]
    GET    /streams/{name}                                                 -> 200 the stream
    GET    /metrics          Prometheus text format (the [serve] extra's prometheus_client)
    GET    /streams/{name}/frame.jpg   the latest annotated frame
    GET    /                 the status page: every stream's state, fps, drops and latest frame, live
    GET    /healthz          200 while the service runs
    GET    /readyz           200 once every stream has given a frame (or there is none), else 503

It binds 127.0.0.1 by default; any other address needs a token, sent by clients as
``Authorization: Bearer TOKEN`` (or ``?token=TOKEN``, which the status page passes on). Bad input is a 4xx with {"error": one line} and the service goes
on: malformed JSON, an unknown field, a URL scheme that is not rtsp/rtsps/http/https, a file
source outside the folder allowed by configuration (or any file when none is), a duplicate or
unknown name.
"""
from __future__ import annotations

import dataclasses
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import InvalidInputError, YoloxDeployError, first_line
from .service import VideoService
from .stream import StreamOptions, StreamState

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 64 * 1024


# The status page: a table refreshed every second from GET /streams and /metrics' fps, with each
# stream's latest annotated frame (GET /streams/{name}/frame.jpg).
STATUS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>yolox-serve</title>
<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:4px 8px}img{height:120px}.running{color:#070}.stalled,.reconnecting{color:#a60}.failed{color:#b00}</style>
</head><body><h1>yolox-serve</h1><table><thead><tr><th>stream</th><th>state</th><th>fps</th><th>decoded</th>
<th>inferred</th><th>dropped</th><th>reconnects</th><th>latest frame</th></tr></thead><tbody id="streams"></tbody>
</table><p id="updated"></p><script>
const last = {};
const token = new URLSearchParams(location.search).get("token");  // a server with --token: /?token=...
const auth = token ? `token=${encodeURIComponent(token)}&` : "";
async function refresh() {
  const streams = await (await fetch(`/streams?${auth}`)).json();
  const now = performance.now() / 1000;
  const rows = streams.map(s => {
    const prev = last[s.name]; last[s.name] = [now, s.inferred];
    const fps = prev && now > prev[0] ? ((s.inferred - prev[1]) / (now - prev[0])).toFixed(1) : "";
    const name = encodeURIComponent(s.name);
    return `<tr id="stream-${name}"><td>${s.name}</td><td class="${s.state}">${s.state}</td><td>${fps}</td>
      <td>${s.decoded}</td><td>${s.inferred}</td><td>${s.dropped}</td><td>${s.reconnects}</td>
      <td><img alt="${s.name}" src="/streams/${name}/frame.jpg?${auth}t=${Date.now()}"></td></tr>`;
  });
  document.getElementById("streams").innerHTML = rows.join("");
  document.getElementById("updated").textContent = `${streams.length} stream(s), updated ${new Date().toLocaleTimeString()}`;
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def checked_source(source: Any, allowed_dir: Path | None) -> str:
    """A network URL of an allowed scheme, or a file inside ``allowed_dir`` (symlinks resolved)."""
    if not isinstance(source, str) or not source:
        raise ApiError(400, "field 'source' must be a non-empty string (an rtsp:// or http(s):// URL, or a file)")
    scheme = urlsplit(source).scheme.lower()
    if "://" in source:
        if scheme not in NETWORK_SCHEMES:
            raise ApiError(400, f"source scheme {scheme!r} is not allowed: use one of {', '.join(NETWORK_SCHEMES)}")
        return source
    if allowed_dir is None:
        raise ApiError(403, "file sources are not allowed over the API: start yolox-serve with --allow-dir DIR")
    resolved = Path(source).resolve() if Path(source).is_absolute() else (allowed_dir / source).resolve()
    if not resolved.is_relative_to(allowed_dir.resolve()):
        raise ApiError(403, f"source {source!r} is outside the allowed folder {allowed_dir}")
    if not resolved.is_file():
        raise ApiError(404, f"no such file in the allowed folder: {source!r}")
    return str(resolved)


def stream_json(service: VideoService, name: str) -> dict[str, Any]:
    status = service.status(name)
    snapshot = next((s for s in service.snapshots() if s.name == name), None)
    record = {k: (v.value if isinstance(v, StreamState) else v) for k, v in dataclasses.asdict(status).items()}
    if snapshot is not None:
        record.update(inferred=snapshot.inferred, in_flight=snapshot.in_flight)
    return record


class ApiServer:
    """The HTTP API over ``service`` on (host, port); :meth:`start` serves on a thread."""

    def __init__(self, service: VideoService, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                 allowed_dir: str | Path | None = None):
        if host not in LOOPBACK and not token:
            raise InvalidInputError(f"binding {host} (not 127.0.0.1) needs a token: pass --token (clients send "
                                    "'Authorization: Bearer TOKEN')")
        self.service, self.token = service, token
        self.allowed_dir = Path(allowed_dir) if allowed_dir is not None else None
        from .metrics import ServiceCollector

        self.collector = ServiceCollector(service)
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="yolox-serve-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    # -- routes ------------------------------------------------------------------------------
    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any, str]:
        parts = [unquote(p) for p in path.split("/") if p]
        if method == "GET" and parts == ["healthz"]:
            return 200, {"status": "ok"}, "application/json"
        if method == "GET" and parts == ["readyz"]:
            waiting = [s.name for s in self.service.streams() if s.last_frame_age_s is None]
            return (503 if waiting else 200), {"waiting_for": waiting}, "application/json"
        if method == "GET" and parts == ["metrics"]:
            from .metrics import exposition

            text, content_type = exposition(self.service, self.collector)
            return 200, text, content_type
        if method == "GET" and not parts:
            return 200, STATUS_PAGE.encode(), "text/html; charset=utf-8"
        if method == "GET" and len(parts) == 3 and parts[0] == "streams" and parts[2] == "frame.jpg":
            return 200, self._frame(parts[1]), "image/jpeg"
        if parts[:1] != ["streams"] or len(parts) > 2:
            raise ApiError(404, f"no route {method} {path}")
        if len(parts) == 1 and method == "GET":
            return 200, [stream_json(self.service, s.name) for s in self.service.streams()], "application/json"
        if len(parts) == 1 and method == "POST":
            return 201, self._add(body), "application/json"
        if len(parts) == 2 and method in ("GET", "DELETE"):
            name = parts[1]
            if name not in {s.name for s in self.service.streams()}:
                raise ApiError(404, f"no stream named {name!r}")
            if method == "GET":
                return 200, stream_json(self.service, name), "application/json"
            self.service.remove(name)
            return 200, {"removed": name}, "application/json"
        raise ApiError(405, f"{method} is not allowed on {path}")

    def _frame(self, name: str) -> bytes:
        import cv2

        from ..visualize import draw_detections

        result = self.service.latest(name)
        if result is None:
            raise ApiError(404, f"no frame of stream {name!r} yet")
        ok, jpeg = cv2.imencode(".jpg", draw_detections(result.image, result.detections))
        return jpeg.tobytes()

    def _add(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(400, f"the body is not valid JSON ({first_line(exc)})") from None
        if not isinstance(request, dict):
            raise ApiError(400, "the body must be a JSON object: {\"source\": ..., \"name\": ..., \"options\": {...}}")
        unknown = sorted(set(request) - {"source", "name", "options"})
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r}: the fields are source, name and options")
        source = checked_source(request.get("source"), self.allowed_dir)
        name, options = request.get("name"), request.get("options", {})
        if name is not None and (not isinstance(name, str) or not name or "/" in name or len(name) > 64):
            raise ApiError(400, "field 'name' must be a string of 1-64 characters without '/'")
        if not isinstance(options, dict) or set(options) - {f.name for f in dataclasses.fields(StreamOptions)}:
            fields = ", ".join(f.name for f in dataclasses.fields(StreamOptions))
            raise ApiError(400, f"field 'options' must be an object with only: {fields}")
        try:
            name = self.service.add(source, name=name, **options)
        except InvalidInputError as exc:
            raise ApiError(409 if "already exists" in str(exc) else 400, str(exc)) from None
        except TypeError as exc:
            raise ApiError(400, f"bad options ({first_line(exc)})") from None
        return stream_json(self.service, name)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "yolox-serve"

            def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
                pass

            def _serve(self, method: str) -> None:
                try:
                    query = parse_qs(urlsplit(self.path).query)
                    given = self.headers.get("Authorization", "") or f"Bearer {query.get('token', [''])[0]}"
                    if api.token and not hmac.compare_digest(given, f"Bearer {api.token}"):
                        raise ApiError(401, "missing or wrong token (send 'Authorization: Bearer TOKEN')")
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > MAX_BODY:
                        raise ApiError(413, f"the body is over {MAX_BODY} bytes")
                    body = self.rfile.read(length) if length else b""
                    status, payload, content_type = api.route(method, urlsplit(self.path).path, body)
                except ApiError as exc:
                    status, payload, content_type = exc.status, {"error": str(exc)}, "application/json"
                except (YoloxDeployError, ValueError) as exc:
                    status, payload, content_type = 400, {"error": first_line(exc)}, "application/json"
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler
