"""Model files and what travels with them: metadata (``metadata``), JSON sidecars
(``sidecar``), writing through a staging folder (``staging``), reading ONNX files
(``onnx_inspect``) and giving them a uint8 pixel input (``onnx_pixels``), calibration images
(``calibration``), and TensorRT engines with their on-disk cache (``tensorrt_engines``,
``engine_cache``). Used by the exporters and runtimes; imports neither.
"""
