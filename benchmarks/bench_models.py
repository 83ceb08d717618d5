"""The rows' models and calls: each (backend, precision) exported once into a cache, opened
through the same :class:`~yolox_deploy.Detector` users call, and the official demo pipeline
as the baseline row. A row that cannot be opened keeps the reason as its status."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..detector import Detector
from ..errors import YoloxDeployError, first_line
from ..processing.images import IMAGE_SUFFIXES, read_image
from ..runtimes import backends_offering, get_backend_class, load_backend
from .bench_config import ARTIFACT_AND_ARITHMETIC, BASELINE, BenchConfig, Call, Row, Skip
from .official_demo import demo_postprocess, demo_preproc


class ModelCache:
    """Exports each (backend format, precision) once per model and input size."""

    def __init__(self, cfg: BenchConfig):
        from ..models import get_spec, infer_spec, read_state_dict

        self.cfg = cfg
        if cfg.model_name:
            spec = get_spec(cfg.model_name)
        elif cfg.weights:
            spec = infer_spec(read_state_dict(cfg.weights))[0]
        else:
            spec = get_spec("yolox-nano")
        self.name = spec.name
        self.input_size = tuple(cfg.input_size or spec.input_size)
        source = Path(cfg.weights).stem if cfg.weights else "seed0"
        self.dir = Path(cfg.cache_dir) / f"{self.name}-{source}-{self.input_size[0]}x{self.input_size[1]}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def checkpoint(self) -> Path:
        if self.cfg.weights:
            return Path(self.cfg.weights)
        path = self.dir / "model.pth"
        if not path.exists():
            import torch

            from ..models import seeded_model

            torch.save({"model": seeded_model(self.cfg.model_name or "yolox-nano").state_dict()}, path)
        return path

    def onnx(self) -> Path:
        path = self.dir / "model-fp32.onnx"
        if not path.exists():
            from ..exporters import get_exporter

            get_exporter("onnx")(path, weights=self.cfg.weights, model_name=self.cfg.model_name,
                                 input_size=self.input_size, dynamic=True)
        return path

    def reduced_onnx(self, precision: str, symmetric: bool = False) -> Path:
        """The FP16 or Q/DQ INT8 ONNX made from :meth:`onnx` (INT8 calibrated on ``--data``;
        int8-all: every conv quantized; ``symmetric``: the signed zero-point-0 Q/DQ TensorRT builds)."""
        path = self.dir / f"model-{precision}{'-symmetric' if symmetric else ''}.onnx"
        if not path.exists():
            from ..exporters import get_exporter

            if precision.startswith("int8") and self.cfg.data is None:
                raise Skip("int8 needs --data DIR for calibration images")
            get_exporter("onnx")(path, weights=self.onnx(), input_size=self.input_size, half=precision == "fp16",
                                 int8=precision.startswith("int8"), calib=self.cfg.data, calib_size=300,
                                 int8_keep_float="none" if precision == "int8-all" else "sensitive",
                                 int8_symmetric=symmetric)
        return path

    def model_for(self, backend: str, precision: str) -> Path:
        """The model file of a (backend, bench precision) row, exported on first use."""
        cls = get_backend_class(backend)
        precision, arithmetic = ARTIFACT_AND_ARITHMETIC[precision]
        if arithmetic not in cls.precisions:
            raise Skip(f"{backend} does not compute in {arithmetic}; {', '.join(backends_offering(arithmetic))} "
                       "does")
        target = cls.export_target
        if target is None:
            if precision != "fp32":
                raise Skip(f"{backend} runs the FP32 checkpoint; {precision} is not offered")
            return self.checkpoint()
        if target == "onnx":
            if precision == "int8-nncf":
                raise Skip("int8-nncf is OpenVINO's NNCF IR; onnxruntime runs the int8 (Q/DQ) ONNX")
            return self.onnx() if precision == "fp32" else self.reduced_onnx(precision)
        path = self.dir / target / f"model-{precision}{cls.suffixes[0]}"  # a folder per format: .bin is
        if not path.exists():                                                # both OpenVINO's and ncnn's
            path.parent.mkdir(exist_ok=True)
            from ..exporters import exporter_source, get_exporter

            if target == "trt":  # built from the ONNX artifact of that precision, strongly typed
                if precision == "int8-nncf":
                    raise Skip("int8-nncf is OpenVINO's NNCF IR; tensorrt builds the int8 (symmetric Q/DQ) ONNX")
                source = self.onnx() if precision == "fp32" else self.reduced_onnx(precision, symmetric=True)
                get_exporter(target)(path, weights=source, batch=(1, max(self.cfg.batches), max(self.cfg.batches)))
                return path
            if precision.startswith("int8") and self.cfg.data is None:
                raise Skip("int8 needs --data DIR for calibration images")
            if target == "openvino" and precision in ("int8", "int8-all"):  # it converts the Q/DQ ONNX as it is
                get_exporter(target)(path, weights=self.reduced_onnx(precision), dynamic=True)
                return path
            source = self.onnx() if exporter_source(target) == "onnx" else self.checkpoint()
            get_exporter(target)(path, weights=source, model_name=self.cfg.model_name,
                                 input_size=self.input_size, dynamic=True, half=precision == "fp16",
                                 int8=precision.startswith("int8"), calib=self.cfg.data, calib_size=300)
        return path


def bench_images(cfg: BenchConfig, count: int) -> list[np.ndarray]:
    """``count`` decoded images from ``--data`` (cycled), or seeded 640x480 noise."""
    if cfg.data is not None:
        files = sorted(p for p in Path(cfg.data).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        if files:
            return [read_image(files[i % len(files)]) for i in range(count)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]


def open_row(cfg: BenchConfig, cache: ModelCache, backend: str, precision: str, batch: int) -> tuple[Row, Call | None]:
    row = Row(backend, precision, batch)
    return row, _guarded(row, lambda: open_model(cfg, row, cache.model_for(backend, precision), backend,
                                                 cache.input_size, ARTIFACT_AND_ARITHMETIC[precision][1]))


def open_file_row(cfg: BenchConfig, path: Path, batch: int) -> tuple[Row, Call | None]:
    """A row for an existing model file (``--model``): its backend from the suffix."""
    from ..runtimes import backend_for_path

    row = Row(Path(path).name, "as exported", batch)

    def open_it() -> Call:
        backend = backend_for_path(path)
        row.backend = f"{backend} ({Path(path).name})"
        return open_model(cfg, row, Path(path), backend, cfg.input_size)

    return row, _guarded(row, open_it)


def _guarded(row: Row, open_it: Callable[[], Call]) -> Call | None:
    """``open_it()``, or None with the reason in ``row.status`` (a failure row, not a crash)."""
    try:
        return open_it()
    except (YoloxDeployError, ImportError, OSError, RuntimeError) as exc:
        row.status = first_line(exc)
        return None


def open_model(cfg: BenchConfig, row: Row, path: Path, backend: str, input_size: tuple[int, int] | None,
               arithmetic: str = "fp32") -> Call:
    """A Detector on ``path`` computing in ``arithmetic``, and the call that times
    ``row.batch`` images through it."""
    row.model_file = str(path)
    row.backend_name = backend
    row.arithmetic = arithmetic
    dynamic_hw = backend == "torch"
    opened = load_backend(path, backend, threads=cfg.threads, precision=arithmetic,
                          **({"model_name": cfg.model_name} if dynamic_hw and cfg.model_name else {}))
    thresholds = {} if opened.end_to_end else {"conf": cfg.conf, "iou": cfg.iou}  # end-to-end: the baked ones
    det = Detector(opened, input_size=input_size if dynamic_hw else None, batch_size=row.batch, **thresholds)
    if opened.end_to_end:
        row.model_input += "end-to-end, "
    if det.batch_size != row.batch:
        raise Skip(f"{Path(path).name} has a static batch of {det.batch_size}")
    row.input_size = det.input_size
    row.model_input += "u8 NHWC" if det.backend.native_pixels else "f32 NCHW"
    images = bench_images(cfg, row.batch)

    def call() -> tuple[float, float, float]:
        det(images)
        t = det.timings
        return t.preprocess_ms, t.inference_ms, t.postprocess_ms

    return call


def open_baseline(cfg: BenchConfig, onnx_path, input_size: tuple[int, int] | None) -> tuple[Row, Call | None]:
    """The official ONNX Runtime demo pipeline: its preprocessing, session.run, its decode and
    per-class NMS, on the same FP32 ONNX (``onnx_path`` may be a callable exporting it), one
    image per call."""
    row = Row(BASELINE, "fp32", 1)

    def open_it() -> Call:
        import onnxruntime as ort

        path = onnx_path() if callable(onnx_path) else onnx_path
        if path is None:
            raise Skip("needs an .onnx among --model files")
        row.model_file, row.model_input = str(path), "f32 NCHW"
        from ..runtimes.onnxruntime import fp32_session_options

        session = ort.InferenceSession(str(path), fp32_session_options(ort, cfg.threads),
                                       providers=["CPUExecutionProvider"])
        image = bench_images(cfg, 1)[0]
        shape = session.get_inputs()[0].shape
        hw = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else input_size
        if hw is None:
            raise Skip(f"{Path(path).name} has a dynamic input size: pass --input-size")

        def call() -> tuple[float, float, float]:
            t0 = time.perf_counter()
            x, ratio = demo_preproc(image, hw)
            t1 = time.perf_counter()
            raw = session.run(None, {"images": x[None]})[0]
            t2 = time.perf_counter()
            demo_postprocess(raw, hw, ratio, cfg.conf, cfg.iou)
            t3 = time.perf_counter()
            return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3

        return call

    return row, _guarded(row, open_it)
