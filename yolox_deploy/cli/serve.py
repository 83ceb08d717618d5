"""yolox-serve: the video service over HTTP (docs/serve.md).

    yolox-serve --model yolox_nano.onnx [--config streams.json] [--host 127.0.0.1] [--port 8080]
                [--token T] [--allow-dir DIR] [--sink jsonl:DIR|webhook:URL|mqtt:HOST[:PORT][/TOPIC]|video:DIR]...

Streams come from --config ({"streams": [{"source": ..., "name": ..., "options": {...}}]}, JSON,
or YAML when PyYAML is installed) and from POST /streams while it runs. SIGTERM or SIGINT stop it
within 5 s: the API closes, every decoder process is killed and reaped.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .common import add_model_args, backend_options, run

STOP_TIMEOUT_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yolox-serve", description="Detect on live video streams: add and remove "
                                "them over HTTP while the service runs (docs/serve.md).")
    add_model_args(p)
    p.add_argument("--config", default=None, help="streams to start with (JSON, or YAML with PyYAML)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; another needs --token)")
    p.add_argument("--port", type=int, default=8080, help="port (0: any free one, printed)")
    p.add_argument("--token", default=None, help="clients must send 'Authorization: Bearer TOKEN'")
    p.add_argument("--allow-dir", default=None, help="folder whose files may be added as sources over the API "
                   "(default: none, network URLs only)")
    p.add_argument("--conf", type=float, default=None, help="minimum score (default: the model's, else 0.25)")
    p.add_argument("--sink", action="append", default=[], metavar="KIND:WHERE",
                   help="where results go, repeatable: jsonl:DIR (rotated JSON lines), webhook:URL, "
                        "mqtt:HOST[:PORT][/TOPIC] ({stream} in TOPIC is the stream's name), video:DIR (annotated MP4)")
    return p


def load_config(path: str) -> list[dict[str, Any]]:
    """The streams of a config file, each {"source", "name"?, "options"?}."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            config = yaml.safe_load(text)
        else:
            config = json.loads(text)
    except ImportError:
        raise InvalidInputError(f"{path} is YAML and PyYAML is not installed: pip install pyyaml, or use JSON") from None
    except Exception as exc:  # json / yaml parse errors
        raise InvalidInputError(f"{path} cannot be read as a config ({str(exc).splitlines()[0]})") from None
    streams = config.get("streams") if isinstance(config, dict) else None
    if not isinstance(streams, list) or not all(isinstance(s, dict) and "source" in s for s in streams):
        raise InvalidInputError(f"{path}: expected {{\"streams\": [{{\"source\": ..., \"name\": ..., \"options\": "
                                "{...}}, ...]}")
    return streams


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv, "yolox-serve")


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from ..detector import Detector
    from ..serve.http import ApiServer
    from ..serve.service import VideoService

    streams = load_config(args.config) if args.config else []
    options = {k: v for k, v in backend_options(args).items() if v is not None}
    detector = Detector(args.model, backend=args.backend, device=args.device, input_size=args.input_size,
                        conf=args.conf, **options)
    from ..serve.sinks import sink_from_spec

    sinks = [sink_from_spec(spec) for spec in args.sink]
    service = VideoService(detector, sinks=sinks)
    try:
        api = ApiServer(service, args.host, args.port, args.token, args.allow_dir)
    except BaseException:
        service.close()
        raise
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for stream in streams:
            service.add(str(stream["source"]), name=stream.get("name"), **stream.get("options", {}))
        api.start()
        print(f"yolox-serve: listening on http://{args.host}:{api.port} ({len(streams)} stream(s))", flush=True)
        stop.wait()
    finally:
        print("yolox-serve: stopping", file=sys.stderr, flush=True)
        api.close()
        service.close(STOP_TIMEOUT_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
