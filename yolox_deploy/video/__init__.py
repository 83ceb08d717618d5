"""Video and image streams on top of :mod:`yolox_deploy.pipeline`: one stream with its
stages overlapped (``streaming``), many sources batched together (``multistream``), and
multi-object tracking on either (``tracking``). ``Detector.stream/track/stream_many`` call them.
"""
