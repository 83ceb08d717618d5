#!/usr/bin/python3
"""A real RTSP server for the yolox-serve tests: Debian's gst-rtsp-server, run by Debian's
/usr/bin/python3 (python3-gi imports only there), on 127.0.0.1.

    /usr/bin/python3 rtsp_server.py PORT NAME[,NAME...] [--fps 15] [--size 320x240]

serves rtsp://127.0.0.1:PORT/NAME for each NAME: H.264 of a grey picture whose top band draws
the frame counter as 16 black/white blocks (bit 15 first; `frame_counter()` in
tests/serve/conftest.py reads it back), so tests count lost or repeated frames; the counter of a
NAME keeps counting across client reconnects. Prints "ready" once listening. SIGKILL = a camera
crash, a restart = a camera reboot (the counter starts again at 0), SIGSTOP = a silent stall.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

BITS = 16
BAND = 40  # pixels: the height of the counter's band


class CounterFactory(GstRtspServer.RTSPMediaFactory):
    """One shared live pipeline per NAME: appsrc (frames pushed on a wall-clock timer) -> x264."""

    def __init__(self, width, height, fps):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self.sources = []
        self.set_shared(True)
        GLib.timeout_add(max(1, round(1000 / fps)), self.push)

    def do_create_element(self, url):
        caps = f"video/x-raw,format=GRAY8,width={self.width},height={self.height},framerate={self.fps}/1"
        launch = (f"( appsrc name=src is-live=true do-timestamp=true format=time max-buffers=2 leaky-type=downstream caps={caps} ! videoconvert ! "
                  f"video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={self.fps} "
                  f"bframes=0 ! rtph264pay name=pay0 pt=96 config-interval=1 )")
        return Gst.parse_launch(launch)

    def do_configure(self, media):
        source = media.get_element().get_child_by_name("src")
        self.sources.append(source)
        media.connect("unprepared", lambda m: self.sources.remove(source) if source in self.sources else None)

    def frame(self, number):
        block = self.width // BITS
        row = b"".join(bytes([240 if number >> (BITS - 1 - i) & 1 else 16]) * block for i in range(BITS))
        row += bytes([128]) * (self.width - len(row))
        return row * BAND + bytes([128]) * (self.width * (self.height - BAND))

    def push(self):
        data = self.frame(self.count)
        self.count += 1
        for source in list(self.sources):
            source.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("names")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--size", default="320x240")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name in args.names.split(","):
        mounts.add_factory("/" + name, CounterFactory(width, height, args.fps))
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
