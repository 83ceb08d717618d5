"""The rows' models and calls: each (backend, precision) exported once into a cache, opened
through the same :class:`~yolox_deploy.Detector` users call, and the official demo pipeline
as the baseline row. A row that cannot be opened keeps the reason as its status."""
from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..artifacts.calibration import images_digest
from ..artifacts.deploy import file_sha256
from ..detector import Detector
from ..errors import BackendNotInstalledError, BackendUnavailableError, YoloxDeployError, first_line
from ..exporters import exporter_source
from ..processing.images import IMAGE_SUFFIXES, read_image
from ..runtimes import backends_offering, get_backend_class, load_backend
from ..slicing import SliceSettings
from .config import ARTIFACT_AND_ARITHMETIC, BASELINE, BenchConfig, Call, Row, Skip
from .official_demo import demo_postprocess, demo_preproc


class ModelCache:
    """Exports each (backend format, precision) once per model and input size.

    The folder is keyed by the weights' content (two checkpoints with one file name never
    share exports) and INT8 files by the calibration images they were calibrated on.
    ``cfg.onnx``: an FP32 ONNX to make the other formats from (formats that are converted
    from the PyTorch checkpoint then need ``cfg.weights``)."""

    def __init__(self, cfg: BenchConfig):
        from ..models import get_spec

        self.cfg = cfg
        self.dynamic_batch = True  # the exports' batch dimension (an ONNX given with a static batch keeps it)
        if cfg.onnx is not None:
            self.name, size, self.dynamic_batch = inspect_raw_onnx(Path(cfg.onnx))
            self.input_size = tuple(cfg.input_size or size)
        else:
            spec = get_spec(cfg.model_name) if cfg.model_name else self._spec_of_weights()
            self.name = spec.name
            self.input_size = tuple(cfg.input_size or spec.input_size)
        source = cfg.onnx or cfg.weights
        tag = f"{Path(source).stem}-{file_sha256(source)[:12]}" if source else "seed0"
        self.dir = Path(cfg.cache_dir) / f"{self.name}-{tag}-{self.input_size[0]}x{self.input_size[1]}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _spec_of_weights(self):
        from ..models import get_spec, infer_spec, read_state_dict

        return infer_spec(read_state_dict(self.cfg.weights))[0] if self.cfg.weights else get_spec("yolox-nano")

    @functools.cached_property
    def calibration_tag(self) -> str:
        """'-calib<digest>' of the calibration images (names and contents): INT8 files are made
        from them, so other images make other files, and the same images moved the same ones."""
        if self.cfg.data is None:
            return ""
        files = [p for p in Path(self.cfg.data).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        return f"-calib{images_digest(files)[:10]}"

    def checkpoint(self) -> Path:
        if self.cfg.weights:
            return Path(self.cfg.weights)
        if self.cfg.onnx is not None:
            raise Skip("made from the PyTorch checkpoint: pass --weights (an .onnx was given)")
        path = self.dir / "model.pth"
        if not path.exists():
            import torch

            from ..models import seeded_model

            torch.save({"model": seeded_model(self.cfg.model_name or "yolox-nano").state_dict()}, path)
        return path

    def onnx(self) -> Path:
        path = self.onnx_path()
        if not path.exists():
            from ..exporters import get_exporter

            get_exporter("onnx")(path, weights=self.cfg.weights, model_name=self.cfg.model_name,
                                 input_size=self.input_size, dynamic=True)
        return path

    def reduced_onnx(self, precision: str, symmetric: bool = False) -> Path:
        """The FP16 or Q/DQ INT8 ONNX made from :meth:`onnx` (INT8 calibrated on ``--data``;
        int8-all: every conv quantized; ``symmetric``: the signed zero-point-0 Q/DQ TensorRT builds)."""
        path = self._reduced_onnx_path(precision, symmetric)
        if not path.exists():
            from ..exporters import get_exporter

            if precision.startswith("int8") and self.cfg.data is None:
                raise Skip("int8 needs --data DIR for calibration images")
            get_exporter("onnx")(path, weights=self.onnx(), input_size=self.input_size, half=precision == "fp16",
                                 int8=precision.startswith("int8"), calib=self.cfg.data, calib_size=300,
                                 int8_keep_float="none" if precision == "int8-all" else "sensitive",
                                 int8_symmetric=symmetric)
        return path

    def mixed_int8_onnx(self, float_convs: list[str]) -> Path:
        """The Q/DQ INT8 ONNX with exactly ``float_convs`` (conv node names) kept float,
        calibrated like the others (yolox-tune's mixed INT8); cached by the names."""
        path = self.mixed_int8_path(float_convs)
        if not path.exists():
            from ..exporters import get_exporter

            if self.cfg.data is None:
                raise Skip("int8 needs --data DIR for calibration images")
            get_exporter("onnx")(path, weights=self.onnx(), input_size=self.input_size, int8=True,
                                 calib=self.cfg.data, calib_size=300, int8_keep_float=list(float_convs))
        return path

    def mixed_int8_path(self, float_convs: list[str]) -> Path:
        digest = hashlib.sha256("\n".join(sorted(float_convs)).encode()).hexdigest()[:10]
        return self.dir / f"model-int8-mixed{len(float_convs)}-{digest}{self.calibration_tag}.onnx"

    def _reduced_onnx_path(self, precision: str, symmetric: bool = False) -> Path:
        calibrated = self.calibration_tag if precision.startswith("int8") else ""
        return self.dir / f"model-{precision}{'-symmetric' if symmetric else ''}{calibrated}.onnx"

    def unsupported(self, backend: str, precision: str) -> str | None:
        """Why a (backend, bench precision) row cannot be made here, found without exporting
        anything; None when it can (it may still fail when exported or opened)."""
        cls = get_backend_class(backend)
        artifact, arithmetic = ARTIFACT_AND_ARITHMETIC[precision]
        target = cls.export_target
        if arithmetic not in cls.precisions:
            return f"{backend} does not compute in {arithmetic}; {', '.join(backends_offering(arithmetic))} does"
        if target is None and artifact != "fp32":
            return f"{backend} runs the FP32 checkpoint; {artifact} is not offered"
        if artifact == "int8-nncf" and target != "openvino":
            runs = {"onnx": "runs the int8 (Q/DQ) ONNX", "trt": "builds the int8 (symmetric Q/DQ) ONNX"}.get(
                target, "has no NNCF IR")
            return f"int8-nncf is OpenVINO's NNCF IR; {backend} {runs}"
        if artifact.startswith("int8") and self.cfg.data is None:
            return "int8 needs --data DIR for calibration images"
        from_onnx = target in ("onnx", "trt") or (target == "openvino" and artifact in ("int8", "int8-all"))
        if self.cfg.onnx is not None and not self.cfg.weights and not from_onnx and (
                target is None or exporter_source(target) == "checkpoint"):
            return "made from the PyTorch checkpoint: pass --weights (an .onnx was given)"
        return None

    def artifact_path(self, backend: str, precision: str) -> Path:
        """Where the model file of a (backend, bench precision) row is, or will be once exported."""
        cls = get_backend_class(backend)
        artifact = ARTIFACT_AND_ARITHMETIC[precision][0]
        if cls.export_target is None:
            return Path(self.cfg.weights) if self.cfg.weights else self.dir / "model.pth"
        if cls.export_target == "onnx":
            return self.onnx_path() if artifact == "fp32" else self._reduced_onnx_path(artifact)
        calibrated = self.calibration_tag if artifact.startswith("int8") else ""
        # a folder per format: .bin is both OpenVINO's and ncnn's
        return self.dir / cls.export_target / f"model-{artifact}{calibrated}{cls.suffixes[0]}"

    def onnx_path(self) -> Path:
        return Path(self.cfg.onnx) if self.cfg.onnx is not None else self.dir / "model-fp32.onnx"

    def model_for(self, backend: str, precision: str) -> Path:
        """The model file of a (backend, bench precision) row, exported on first use."""
        reason = self.unsupported(backend, precision)
        if reason:
            raise Skip(reason)
        target = get_backend_class(backend).export_target
        precision = ARTIFACT_AND_ARITHMETIC[precision][0]
        if target is None:
            return self.checkpoint()
        if target == "onnx":
            return self.onnx() if precision == "fp32" else self.reduced_onnx(precision)
        path = self.artifact_path(backend, precision)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            from ..exporters import get_exporter

            if target == "trt":  # built from the ONNX artifact of that precision, strongly typed
                source = self.onnx() if precision == "fp32" else self.reduced_onnx(precision, symmetric=True)
                get_exporter(target)(path, weights=source, batch=(1, max(self.cfg.batches), max(self.cfg.batches)))
                return path
            if target == "openvino" and precision in ("int8", "int8-all"):  # it converts the Q/DQ ONNX as it is
                get_exporter(target)(path, weights=self.reduced_onnx(precision), dynamic=self.dynamic_batch)
                return path
            source = self.onnx() if exporter_source(target) == "onnx" else self.checkpoint()
            get_exporter(target)(path, weights=source, model_name=self.cfg.model_name,
                                 input_size=self.input_size, dynamic=self.dynamic_batch, half=precision == "fp16",
                                 int8=precision.startswith("int8"), calib=self.cfg.data, calib_size=300)
        return path


def inspect_raw_onnx(path: Path) -> tuple[str, tuple[int, int], bool]:
    """The model name (stored, else the file's stem), input size (static, else stored) and
    whether the batch is dynamic, of a raw FP32 ONNX; other kinds of ONNX are refused in one line."""
    opened = load_backend(path, "onnxruntime")
    if opened.end_to_end or opened.metadata.precision != "fp32":
        kind = "an end-to-end" if opened.end_to_end else f"an {opened.metadata.precision.upper()}"
        raise YoloxDeployError(f"{path.name} is {kind} ONNX: give the raw FP32 ONNX (or the .pth) to make the "
                               "other formats from")
    batch, _, h, w = opened.input_shape
    size = (h, w) if h and w else opened.metadata.input_size
    if not size:
        raise YoloxDeployError(f"{path.name} has a dynamic input size and stores none: pass the input size")
    name = opened.metadata.model_name if opened.metadata.model_name != "yolox" else path.stem
    return name, (int(size[0]), int(size[1])), batch is None


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
                                                 cache.input_size, ARTIFACT_AND_ARITHMETIC[precision][1]), cfg)


def open_file_row(cfg: BenchConfig, path: Path, batch: int, backend: str | None = None) -> tuple[Row, Call | None]:
    """A row for an existing model file (``--model``) on ``backend`` (None: the one of its suffix)."""
    from ..runtimes import backend_for_path

    row = Row(f"{backend} ({Path(path).name})" if backend else Path(path).name, "as exported", batch)

    def open_it() -> Call:
        name = backend or backend_for_path(path)
        row.backend = f"{name} ({Path(path).name})"
        return open_model(cfg, row, Path(path), name, cfg.input_size, arithmetic=None)

    return row, _guarded(row, open_it, cfg)


def open_sliced_row(cfg: BenchConfig, plain: Row) -> tuple[Row, Call | None]:
    """The sliced twin of an opened row: the same model file, backend and batch, with
    ``cfg.slices``."""
    assert cfg.slices is not None
    row = Row(plain.backend, plain.precision, plain.batch, sliced=describe_slices(cfg.slices))
    arithmetic = ARTIFACT_AND_ARITHMETIC[plain.precision][1] if plain.precision in ARTIFACT_AND_ARITHMETIC else None
    return row, _guarded(row, lambda: open_model(cfg, row, Path(plain.model_file), plain.backend_name,
                                                 plain.input_size, arithmetic, cfg.slices), cfg)


def describe_slices(slices: SliceSettings) -> str:
    return (f"{slices.height}x{slices.width} ov {slices.overlap}{' +whole' if slices.full_image else ''} "
            f"{slices.merge}/{slices.match}")


def _guarded(row: Row, open_it: Callable[[], Call], cfg: BenchConfig | None = None) -> Call | None:
    """``open_it()``, or None with the reason in ``row.status`` (a failure row, not a crash). A
    combination not offered here (:class:`Skip`), or a backend that is not installed or usable
    here when the user did not name it (``cfg.backends_requested`` false), is a skipped row."""
    try:
        return open_it()
    except (YoloxDeployError, ImportError, OSError, RuntimeError) as exc:
        row.status = first_line(exc)
        unrequested = cfg is not None and not cfg.backends_requested
        row.skipped = isinstance(exc, Skip) or (
            unrequested and isinstance(exc, (BackendNotInstalledError, BackendUnavailableError)))
        return None


def open_model(cfg: BenchConfig, row: Row, path: Path, backend: str, input_size: tuple[int, int] | None,
               arithmetic: str | None = "fp32", slices: SliceSettings | None = None) -> Call:
    """A Detector on ``path`` computing in ``arithmetic`` (None: the backend's FP32, or a
    deployment folder's own), slicing with ``slices``, and the call that times ``row.batch``
    images through it."""
    row.model_file = str(path)
    row.backend_name = backend
    dynamic_hw = backend == "torch"
    opened = load_backend(path, backend, threads=cfg.threads, **({"precision": arithmetic} if arithmetic else {}),
                          **({"model_name": cfg.model_name} if dynamic_hw and cfg.model_name else {}))
    row.arithmetic = opened.precision
    thresholds = {} if opened.end_to_end else {"conf": cfg.conf, "iou": cfg.iou}  # end-to-end: the baked ones
    det = Detector(opened, input_size=input_size if dynamic_hw else None, batch_size=row.batch, slices=slices,
                   **thresholds)
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

    if slices is not None:
        call()
        row.slices_per_image = det.timings.slices / det.timings.images
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
