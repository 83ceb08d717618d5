"""The yolox-bench engine: latency and accuracy of backends x precisions x batch sizes.

Models are exported on demand into a cache (one dynamic-batch ONNX per model and size,
then each backend's format from it), every combination is timed per stage through the
same :class:`~yolox_deploy.Detector` users call, and a baseline row times the official
ONNX Runtime demo pipeline on the same FP32 ONNX in the same run. Rows that cannot run
(backend not installed, precision not offered, export failing) are kept, with the reason.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..detector import Detector
from ..errors import YoloxDeployError, first_line
from ..evaluation import evaluate_coco
from ..images import IMAGE_SUFFIXES, read_image
from ..precision import cpu_features
from ..runtimes import backends_offering, get_backend_class, load_backend
from .official_demo import demo_postprocess, demo_preproc

PRECISIONS = ("fp32", "fp16", "int8", "int8-all", "int8-nncf", "bf16")
# bench precision -> (the artifact exported for it, the arithmetic the runtime is asked for). fp16 and
# int8 are stored in the model file (int8: the Q/DQ ONNX, run by ONNX Runtime and converted by
# OpenVINO; int8-all: the same with every conv quantized; int8-nncf: OpenVINO's NNCF IR) and run
# with FP32 arithmetic elsewhere; bf16 is
# arithmetic on the FP32 model (OpenVINO on CPUs with bf16 units).
ARTIFACT_AND_ARITHMETIC = {"fp32": ("fp32", "fp32"), "fp16": ("fp16", "fp32"), "int8": ("int8", "fp32"),
                           "int8-all": ("int8-all", "fp32"), "int8-nncf": ("int8-nncf", "fp32"),
                           "bf16": ("fp32", "bf16")}
STAGES = ("preprocess", "inference", "postprocess", "end_to_end")
BASELINE = "official demo (onnxruntime)"
VERSIONED_PACKAGES = ("yolox-deploy", "numpy", "opencv-python-headless", "onnxruntime", "openvino", "torch",
                      "ncnn", "tensorrt")


@dataclasses.dataclass
class BenchConfig:
    """What to measure. ``input_size`` is (height, width); ``iters`` timed calls per row
    (or as many as fit in ``seconds``); ``data``/``ann`` add COCO mAP columns."""

    backends: Sequence[str]
    models: Sequence[Path] = ()  # existing model files: benchmarked as they are, no export, no torch needed
    weights: Path | None = None
    model_name: str | None = None
    precisions: Sequence[str] = ("fp32",)
    batches: Sequence[int] = (1,)
    input_size: tuple[int, int] | None = None
    warmup: int = 10
    iters: int = 50
    seconds: float | None = None
    block: int = 5  # consecutive timed calls per row and round, after the untimed settling calls
    settle_ms: float = 100.0  # untimed calls of a row before its block last at least this long (at least one)
    threads: int | None = None
    data: Path | None = None
    ann: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "yolox_deploy" / "bench"
    conf: float = 0.25
    iou: float = 0.45
    baseline: bool = True
    progress: bool = True


@dataclasses.dataclass
class Row:
    backend: str
    precision: str
    batch: int
    status: str = "ok"
    model_file: str = ""
    backend_name: str = ""  # the runtime that loads model_file
    input_size: tuple[int, int] | None = None
    model_input: str = ""  # "u8 NHWC": the runtime casts pixels inside the model (in "inference"); "f32 NCHW"
    arithmetic: str = "fp32"  # what the runtime was asked to compute in (fp16/int8 rows: stored in the model)
    ms: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # stage -> mean/p50/p90/p99 per batch
    images_per_s: float | None = None
    mAP50_95: float | None = None
    mAP50: float | None = None
    delta_mAP50_95: float | None = None  # vs the PyTorch FP32 reference

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def per_image_ms(self, stage: str, stat: str = "p50") -> float:
        return self.ms[stage][stat] / self.batch


class Skip(YoloxDeployError):
    """A combination that cannot be measured here (the reason becomes the row's status)."""


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = "none"
    if shutil.which("nvidia-smi"):
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() or "none"
        except (OSError, subprocess.SubprocessError):
            pass
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_features": list(cpu_features()),
            "openvino_cpu_capabilities": openvino_cpu_capabilities(), "gpu": gpu, "os": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def openvino_cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for the CPU (which precisions it runs natively)."""
    try:
        import openvino as ov
    except ImportError:
        return []
    try:
        return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except RuntimeError:
        return []


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values_ms, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99))}


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


Call = Callable[[], tuple[float, float, float]]  # one timed call -> (pre, infer, post) ms


def time_interleaved(calls: Sequence[tuple[Row, Call]], cfg: BenchConfig) -> dict[int, list[tuple[float, ...]]]:
    """Warm every row up, then time them round-robin for ``iters`` calls or ``seconds`` per
    row, so load changes on a shared machine hit every row alike. Returns samples per
    position in ``calls``.

    Each round gives every row untimed settling calls for at least ``settle_ms`` (at least
    one call) and then ``block`` timed calls in a row. Runtimes keep their worker threads
    spinning after a call (ncnn's and torch's OpenMP ~20 ms, ONNX Runtime with default session
    options ~40 ms on a 2-core machine); without settling, that spin lands on the next row's
    timing and made ONNX Runtime's inference look 20-50% slower.
    """
    for row, call in tqdm(calls, desc="warm-up", leave=False, disable=not cfg.progress):
        for _ in range(cfg.warmup):
            call()
    samples: dict[int, list[tuple[float, ...]]] = {i: [] for i in range(len(calls))}
    block = cfg.block
    start = time.perf_counter()
    budget = cfg.seconds * len(calls) if cfg.seconds else None
    with tqdm(total=None if budget else cfg.iters, desc="timing (interleaved blocks)", leave=False,
              disable=not cfg.progress) as bar:
        done = 0
        while (time.perf_counter() - start < budget) if budget else done < cfg.iters:
            n = block if budget else min(block, cfg.iters - done)
            for i, (_, call) in enumerate(calls):
                settle(call, cfg.settle_ms)
                samples[i].extend(call() for _ in range(n))
            done += n
            bar.update(n)
    return samples


def settle(call: Call, settle_ms: float) -> None:
    """Untimed calls for at least ``settle_ms`` (at least one): the previous row's threads go
    quiet meanwhile, while this row's caches and threads warm up."""
    end = time.perf_counter() + settle_ms / 1e3
    call()
    while time.perf_counter() < end:
        call()


def fill_timings(row: Row, samples: list[tuple[float, float, float]]) -> None:
    columns = list(zip(*samples))
    totals = [sum(s) for s in samples]
    row.ms = {stage: summarize(v) for stage, v in zip(STAGES, [*columns, totals])}
    row.images_per_s = row.batch * 1000.0 / row.ms["end_to_end"]["mean"]


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


def add_map(cfg: BenchConfig, row: Row) -> None:
    """mAP of the row's model on --data/--ann (once per model file: at the smallest batch)."""
    if cfg.ann is None or not row.ok or row.batch != min(cfg.batches) or row.backend == BASELINE:
        return
    try:
        row.mAP50_95, row.mAP50 = coco_map(cfg, Path(row.model_file), row.backend_name, row.input_size,
                                           row.arithmetic)
    except (YoloxDeployError, ImportError, OSError, RuntimeError) as exc:
        row.status = f"timed; mAP failed: {first_line(exc)}"


def coco_map(cfg: BenchConfig, path: Path, backend: str, input_size: tuple[int, int],
             arithmetic: str = "fp32") -> tuple[float, float]:
    opened = load_backend(path, backend, precision=arithmetic, threads=cfg.threads,
                          **({"model_name": cfg.model_name} if backend == "torch" and cfg.model_name else {}))
    # the official evaluator's settings; an end-to-end model is measured at its baked ones
    settings = {} if opened.end_to_end else {"conf": 0.01, "iou": 0.65, "max_det": None}
    det = Detector(opened, clip_boxes=False, input_size=input_size if backend == "torch" else None, **settings)
    result = evaluate_coco(det, cfg.data, cfg.ann, progress=cfg.progress)
    return result["mAP50_95"], result["mAP50"]


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


def reference_map(cfg: BenchConfig, rows: list[Row], cache: ModelCache | None) -> float | None:
    """mAP50-95 of the PyTorch FP32 checkpoint: from its row, or measured for the deltas."""
    for row in rows:
        if row.backend.startswith("torch") and row.precision in ("fp32", "as exported") and row.mAP50_95 is not None:
            return row.mAP50_95
    if cache is None:
        return None
    try:
        return coco_map(cfg, cache.checkpoint(), "torch", cache.input_size)[0]
    except (YoloxDeployError, ImportError) as exc:
        print(f"yolox-bench: no PyTorch reference mAP ({exc})")
        return None


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure every combination; return {"machine", "config", "rows", "summary"}."""
    if cfg.models:
        cache = None
        name, input_size = ", ".join(Path(m).name for m in cfg.models), cfg.input_size
        combos = [(m, n) for m in cfg.models for n in cfg.batches]
        opened = [open_file_row(cfg, *combo) for combo in tqdm(combos, desc="loading", disable=not cfg.progress)]
        onnx_source = next((Path(m) for m in cfg.models if Path(m).suffix.lower() == ".onnx"), None)
    else:
        cache = ModelCache(cfg)
        name, input_size = cache.name, cache.input_size
        combos = [(b, p, n) for b in cfg.backends for p in cfg.precisions for n in cfg.batches]
        opened = [open_row(cfg, cache, *combo)
                  for combo in tqdm(combos, desc="exporting/loading", disable=not cfg.progress)]
        onnx_source = cache.onnx
    if cfg.baseline:
        opened.append(open_baseline(cfg, onnx_source, input_size))
    rows = [row for row, _ in opened]
    runnable = [(row, call) for row, call in opened if call is not None]
    for (row, _), samples in zip(runnable, time_interleaved(runnable, cfg).values()):
        fill_timings(row, samples)
    for row in tqdm(rows, desc="mAP", disable=not cfg.progress or cfg.ann is None):
        add_map(cfg, row)
    if cfg.ann is not None:
        ref = reference_map(cfg, rows, cache)
        for row in rows:
            if ref is not None and row.mAP50_95 is not None:
                row.delta_mAP50_95 = row.mAP50_95 - ref
    return {"machine": machine_info(),
            "config": {"model_name": name, "weights": str(cfg.weights) if cfg.weights else None,
                       "source": str(cfg.weights) if cfg.weights else "model files as given" if cfg.models
                       else "seeded random weights",
                       "input_size": list(input_size) if input_size else None, "conf": cfg.conf, "iou": cfg.iou,
                       "iters": cfg.iters, "seconds": cfg.seconds, "warmup": cfg.warmup, "threads": cfg.threads},
            "rows": rows, "summary": overhead_summary(rows)}


def overhead_summary(rows: list[Row]) -> dict[str, float]:
    """Our ONNX Runtime FP32 batch-1 row against the baseline row of the same run."""
    ours = next((r for r in rows if r.ok and r.backend.startswith("onnxruntime") and r.batch == 1
                 and r.precision in ("fp32", "as exported")), None)
    base = next((r for r in rows if r.ok and r.backend == BASELINE), None)
    if ours is None:
        return {}
    summary = {"pre_post_overhead_pct": 100 * (ours.ms["preprocess"]["p50"] + ours.ms["postprocess"]["p50"])
               / ours.ms["inference"]["p50"]}
    if base is not None:
        summary["e2e_ratio_vs_baseline"] = ours.ms["end_to_end"]["p50"] / base.ms["end_to_end"]["p50"]
    return summary


# --- writers -------------------------------------------------------------------------------

TABLE_COLUMNS = ("backend", "precision", "batch", "input", "pre ms/img", "infer ms/img", "post ms/img", "e2e mean ms",
                 "e2e p50", "e2e p90", "e2e p99", "img/s", "mAP50-95", "mAP50", "ΔmAP vs torch fp32", "status")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        timed = r.ok and bool(r.ms)
        e2e = r.ms.get("end_to_end", {})
        out.append([r.backend, r.precision, str(r.batch), r.model_input,
                    _fmt(r.per_image_ms("preprocess")) if timed else "",
                    _fmt(r.per_image_ms("inference")) if timed else "",
                    _fmt(r.per_image_ms("postprocess")) if timed else "",
                    _fmt(e2e.get("mean")), _fmt(e2e.get("p50")), _fmt(e2e.get("p90")), _fmt(e2e.get("p99")),
                    _fmt(r.images_per_s, 1), _fmt(r.mAP50_95, 4), _fmt(r.mAP50, 4),
                    "" if r.delta_mAP50_95 is None else f"{r.delta_mAP50_95:+.4f}", r.status])
    return out


def markdown_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v != "not installed")
    c = result["config"]
    size = "x".join(map(str, c["input_size"])) if c["input_size"] else "as stored in the model"
    features = " ".join(m.get("cpu_features", [])) or "unknown"
    capabilities = ", ".join(m.get("openvino_cpu_capabilities", [])) or "openvino not installed"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}; {m['os']}; Python {m['python']}; {versions}",
             f"CPU features: {features}; OpenVINO CPU capabilities: {capabilities}; every row computes in "
             "FP32 unless its precision is bf16 (fp16/int8 rows: FP16/INT8 model files, FP32 arithmetic elsewhere)",
             f"Model: {c['model_name']} ({c['source']}), "
             f"input {size}, conf {c['conf']}, iou {c['iou']}; e2e columns are per batch (ms), stage "
             "columns per image (p50); input u8 NHWC: the runtime casts the letterboxed pixels to float "
             "inside the model, so that cast counts as inference", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + " --- |" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result["rows"])]
    s = result["summary"]
    if s:
        lines.append("")
        lines.append(f"pre+post overhead of onnxruntime b1: {s['pre_post_overhead_pct']:.1f}% of inference (p50)"
                     + (f"; end-to-end p50 vs the official demo baseline: {s['e2e_ratio_vs_baseline']:.2f}x"
                        if "e2e_ratio_vs_baseline" in s else ""))
    return "\n".join(lines)


def to_jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "rows": [dataclasses.asdict(r) for r in result["rows"]]}


def write_json(result: dict[str, Any], path: Path) -> None:
    Path(path).write_text(json.dumps(to_jsonable(result), indent=1))


def write_csv(result: dict[str, Any], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        writer.writerows(table_rows(result["rows"]))


def _label_offsets(points: Sequence[tuple[float, float]], step: float = 10.0) -> list[float]:
    """Vertical label offsets (points) so labels of nearby scatter points do not overprint:
    each point's label moves down one ``step`` per earlier neighbour within ~15% of the x
    range and ~5% of the y range."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xr, yr = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    offsets: list[float] = []
    for i, (x, y) in enumerate(points):
        near = sum(1 for (x0, y0) in points[:i] if abs(x - x0) < 0.15 * xr and abs(y - y0) < 0.05 * yr)
        offsets.append(-step * near)
    return offsets


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Per-image stage latency bars (p50) and a latency/accuracy scatter."""
    from .._optional import require

    require("matplotlib", extra="bench", purpose="--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r.ok and r.ms]
    labels = [f"{r.backend} {r.precision} b{r.batch}" for r in rows]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(14, max(3.5, 0.45 * len(rows) + 1.5)))
    left = np.zeros(len(rows))
    for stage, color in zip(STAGES[:3], ("#4c72b0", "#dd8452", "#55a868")):
        values = np.array([r.per_image_ms(stage) for r in rows])
        bars.barh(labels, values, left=left, color=color, label=stage)
        left += values
    bars.invert_yaxis()
    bars.set_xlabel("ms per image (p50)")
    bars.set_title("latency by stage")
    bars.legend(loc="lower right")
    with_map = [r for r in rows if r.mAP50_95 is not None]
    if with_map:
        points = [(r.per_image_ms("end_to_end"), r.mAP50_95) for r in with_map]
        for r, point, dy in zip(with_map, points, _label_offsets(points)):
            scatter.scatter(*point, s=40)
            scatter.annotate(f"{r.backend} {r.precision}", point, fontsize=8, xytext=(4, 4 + dy),
                             textcoords="offset points")
        scatter.set_xlabel("end-to-end ms per image (p50)")
        scatter.set_ylabel("COCO mAP50-95")
        scatter.set_title("speed vs accuracy")
    else:
        scatter.text(0.5, 0.5, "no accuracy data\n(pass --data DIR --ann JSON)", ha="center", va="center")
        scatter.set_axis_off()
    m = result["machine"]
    fig.suptitle(f"{result['config']['model_name']} on {m['cpu']} ({m['cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
