"""A stream's decoder, in a process of its own: ``python -m yolox_deploy.serve.decoder URL``.

It opens the source with OpenCV's FFmpeg backend (open and read timeouts set; RTSP over TCP)
and writes each decoded frame to stdout as a header (:data:`HEADER`: frame index, PTS in ms or
-1, height, width) and the BGR bytes. It exits 0 at the end of a file, 3 when the source cannot
be opened, 4 when a read fails. Running it apart is what isolates a stream: a native crash or a
read that blocks inside FFmpeg ends or hangs this process only, and the supervisor
(:mod:`.stream`) kills and restarts it.

Why OpenCV's FFmpeg and not PyAV: it is already our dependency (opencv-python-headless bundles
FFmpeg with RTSP), it has open/read timeouts, and it gives the stream's position (PTS in ms);
PyAV would add a second FFmpeg build to the install for the same decode.
"""
from __future__ import annotations

import os
import struct
import sys

HEADER = struct.Struct("<qdII")  # frame index, PTS (ms, -1 when unknown), height, width
EXIT_END, EXIT_OPEN, EXIT_READ = 0, 3, 4
OPEN_TIMEOUT_MS = 5000
RTSP_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;1000000"
READ_TIMEOUT_MS = 5000


def main(argv: list[str]) -> int:
    import cv2

    # --stdin: started ahead (while the supervisor waits to reconnect), imported and ready; the URL
    # comes on stdin when it is needed, which saves the interpreter's and OpenCV's start-up then
    url = sys.stdin.readline().strip() if argv[0] == "--stdin" else argv[0]
    if not url:
        return EXIT_OPEN
    if url.startswith("rtsp://"):
        # TCP: no UDP packet lost on a busy machine, and a stall is a stall. Stream probing limited
        # to 0.5 s (FFmpeg's default analyses 5 s: about 3 s more before the first frame after a
        # reconnect); the SDP carries the codec parameters, so that is enough.
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", RTSP_OPTIONS)
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
    if not capture.isOpened():
        return EXIT_OPEN
    out = sys.stdout.buffer
    index = 0
    is_file = "://" not in url
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            return EXIT_END if is_file else EXIT_READ
        pts = capture.get(cv2.CAP_PROP_POS_MSEC)
        out.write(HEADER.pack(index, pts if pts >= 0 else -1.0, frame.shape[0], frame.shape[1]))
        out.write(memoryview(frame).cast("B"))
        out.flush()
        index += 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BrokenPipeError, KeyboardInterrupt):  # the supervisor went away or stopped us
        sys.exit(0)
