"""The image processing every backend shares: decoding and checking images (``images``,
``imagesize``), letterboxing (``preprocess``), anchor grids and box decoding (``grids``), NMS
(``nms``), decode + NMS of a raw output with the C++ kernel or its NumPy reference
(``postprocess``, ``_kernel``), and what the host does for end-to-end graphs (``end_to_end``).

Pure functions on arrays: nothing here opens a model or imports a backend.
"""
