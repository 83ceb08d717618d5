"""Shared fixtures: the shared assets (fail loudly in CI when missing), small models, and a
guard that fails any test in which OpenVINO compiled a model without stating its precision."""
from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("YOLOX_DEPLOY_ASSETS", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Raw output of the official YOLOX-Nano ONNX on the shared COCO images is cached per session.
NANO_INPUT = (416, 416)

# --- OpenVINO precision guard -------------------------------------------------------------
# The CPU plugin computes in bf16 by default on CPUs with bf16 units, so a compile that does not
# state INFERENCE_PRECISION_HINT gives CPU-dependent results. Every compile made during the tests
# (our exporter, backend, bench, NNCF's calibration engine) is recorded here, on any CPU.
OPENVINO_COMPILES: list[dict[str, Any]] = []


def states_precision(config: dict[Any, Any] | None) -> bool:
    return any(str(key) == "INFERENCE_PRECISION_HINT" for key in (config or {}))


def _record_openvino_compiles() -> None:
    try:
        import openvino
    except ImportError:
        return
    original = openvino.Core.compile_model

    @functools.wraps(original)
    def compile_model(self, model, device_name=None, config=None, *args, **kwargs):
        OPENVINO_COMPILES.append({"device": str(device_name), "config": dict(config or {})})
        return original(self, model, device_name, config, *args, **kwargs)

    openvino.Core.compile_model = compile_model


_record_openvino_compiles()


@pytest.fixture
def openvino_compiles() -> list[dict[str, Any]]:
    """Every OpenVINO compile of the session so far: {"device", "config"} (append-only)."""
    return OPENVINO_COMPILES


_CHECKED_UP_TO = [0]  # compiles before this index were judged (fixtures' compiles count for the next test)


@pytest.fixture(autouse=True)
def openvino_compiles_state_their_precision(request):
    yield
    start, _CHECKED_UP_TO[0] = _CHECKED_UP_TO[0], len(OPENVINO_COMPILES)
    if request.node.get_closest_marker("unstated_precision_ok"):
        return
    unstated = [c["device"] for c in OPENVINO_COMPILES[start:] if not states_precision(c["config"])]
    if unstated:
        pytest.fail(f"OpenVINO compiled {len(unstated)} model(s) for {sorted(set(unstated))} without "
                    "INFERENCE_PRECISION_HINT: the result depends on the CPU (bf16 on CPUs with bf16 units)")


def needs_no_deps_package(module: str, pin: str) -> None:
    """Skip when ``module`` (installed ``--no-deps`` by the README's test command) is missing;
    in CI, fail."""
    try:
        importlib.import_module(module)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{module} is not installed: pip install --no-deps '{pin}' (.ci/run does)")
        pytest.skip(f"{module} is not installed")


def needs_trackers() -> None:
    needs_no_deps_package("trackers", "trackers==2.6.1")


def needs_sahi() -> None:
    needs_no_deps_package("sahi", "sahi==0.12.8")


def _require_assets() -> Path:
    if not (ASSETS / "models" / "yolox_nano.pth").is_file():
        message = (f"shared assets not found at {ASSETS}: set YOLOX_DEPLOY_ASSETS to the folder holding "
                   "models/yolox_nano.{pth,onnx} and data/coco-val-mini")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return ASSETS


@pytest.fixture(scope="session")
def assets() -> Path:
    return _require_assets()


@pytest.fixture(scope="session")
def nano_pth(assets: Path) -> Path:
    return assets / "models" / "yolox_nano.pth"


@pytest.fixture(scope="session")
def nano_onnx(assets: Path) -> Path:
    return assets / "models" / "yolox_nano.onnx"


@pytest.fixture(scope="session")
def coco_dir(assets: Path) -> Path:
    return assets / "data" / "coco-val-mini"


@pytest.fixture(scope="session")
def coco_images(coco_dir: Path) -> list[Path]:
    ann = json.loads((coco_dir / "instances_val2017.json").read_text())
    return [coco_dir / "images" / im["file_name"] for im in sorted(ann["images"], key=lambda i: i["id"])]


@pytest.fixture
def image_folder(tmp_path: Path, coco_images: list[Path]):
    """make(name, count, extra={file name: bytes}): a folder holding the first ``count`` shared
    images and the extra files."""
    def make(name: str, count: int, extra: dict[str, bytes] | None = None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for path in coco_images[:count]:
            (folder / path.name).write_bytes(path.read_bytes())
        for file_name, data in (extra or {}).items():
            (folder / file_name).write_bytes(data)
        return folder
    return make


@pytest.fixture(scope="session")
def nano_raw_outputs(nano_onnx: Path, coco_images: list[Path]):
    """(raw [80, 3549, 85] from the official ONNX, ratios, image shapes) on the shared images."""
    import onnxruntime as ort

    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox
    from yolox_deploy.runtimes.onnxruntime import fp32_session_options

    session = ort.InferenceSession(str(nano_onnx), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    raws, ratios, shapes = [], [], []
    for path in coco_images:
        image = read_image(path)
        x, r = letterbox(image, NANO_INPUT)
        raws.append(session.run(None, {"images": x[None]})[0][0])
        ratios.append(r)
        shapes.append(image.shape[:2])
    return np.stack(raws), ratios, shapes


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small custom CSPDarknet model (width 0.125) with seeded weights, saved officially."""
    torch = pytest.importorskip("torch")
    from yolox_deploy.models import ModelSpec, seeded_model

    model = seeded_model(ModelSpec("yolox-custom", 0.33, 0.125, input_size=(64, 96)), num_classes=3, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The tiny model exported with a dynamic batch, input 64x96, three named classes."""
    from yolox_deploy.exporters.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(path, weights=tiny_checkpoint, input_size=(64, 96), dynamic=True,
                class_names=["cat", "dog", "bird"])
    return path


@pytest.fixture(scope="session")
def nano_dynamic_onnx(nano_pth: Path, tmp_path_factory) -> Path:
    """The official nano weights exported with a dynamic batch (the official ONNX has a batch of 1)."""
    from yolox_deploy.exporters.onnx import export_onnx

    path = tmp_path_factory.mktemp("dyn") / "nano_dynamic.onnx"
    export_onnx(path, weights=nano_pth, dynamic=True)
    return path


@pytest.fixture(scope="session")
def coco_mosaics(coco_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, COCO annotations) of the 4x4 mosaics of the 80 shared images: five
    2560x1920 images (benchmarks/mosaic.py)."""
    from yolox_deploy.benchmarks.mosaic import build_mosaics

    out = tmp_path_factory.mktemp("mosaics")
    ann = build_mosaics(coco_dir / "images", coco_dir / "instances_val2017.json", out, n=4, progress=False)
    return out / "images", ann


@pytest.fixture
def rtsp_server():
    """A factory: rtsp_server(["cam0", "cam1"], fps=10) -> a started RtspServer; all are killed
    at the end of the test."""
    from rtsp_helpers import RtspServer, gst_rtsp_available  # tests/: the server script and its handle

    reason = gst_rtsp_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    servers: list[RtspServer] = []

    def start(names: list[str], fps: int = 10) -> RtspServer:
        servers.append(RtspServer(names, fps))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
