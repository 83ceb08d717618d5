"""TensorRT: everything that can be checked without a GPU, and GPU parity where one exists."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, ModelFileError, YoloxDeployError
from yolox_deploy.exporters import get_exporter
from yolox_deploy.exporters.tensorrt import (Profile, calibration_batches, export_tensorrt,
                                             read_engine_sidecar, write_engine_sidecar)
from yolox_deploy.metadata import ModelMetadata
from yolox_deploy.runtimes import backend_for_path, load_backend


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """An importable 'tensorrt' with only a version: enough to reach the checks that come
    before any TensorRT call (the GPU check, the version check)."""
    module = types.ModuleType("tensorrt")
    module.__version__ = "10.7.0"
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.mark.parametrize("batch, onnx_batch, want", [
    (1, 1, Profile(1, 1, 1)), (4, None, Profile(4, 4, 4)), ((1, 8, 32), None, Profile(1, 8, 32)),
    ([2, 2, 2], 2, Profile(2, 2, 2)),
])
def test_profiles(batch, onnx_batch, want):
    assert Profile.parse(batch, onnx_batch) == want
    assert want.shapes((416, 416))[2] == (want.max, 3, 416, 416)


@pytest.mark.parametrize("batch, onnx_batch, message", [
    ((8, 1, 32), None, "1 <= MIN <= OPT <= MAX"), ((0, 1, 2), None, "1 <= MIN"), ((1, 2), None, "N or MIN OPT MAX"),
    ((1, 8, 32), 1, "static batch of 1"), (4, 1, "static batch of 1"),
])
def test_bad_profiles(batch, onnx_batch, message):
    with pytest.raises(YoloxDeployError, match=message):
        Profile.parse(batch, onnx_batch)


def test_calibration_batches_use_our_letterbox_and_pad_the_last(tmp_path):
    import cv2

    from yolox_deploy.calibration import calibration_images
    from yolox_deploy.images import read_image
    from yolox_deploy.preprocess import letterbox

    rng = np.random.default_rng(0)
    for i in range(7):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (30 + i, 50, 3), dtype=np.uint8))
    images = calibration_images(tmp_path, (64, 64), progress=False)
    batches = list(calibration_batches(images, 3))
    assert [b.shape for b in batches] == [(3, 3, 64, 64)] * 3 and all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[0][1], letterbox(read_image(tmp_path / "1.png"), (64, 64))[0])
    np.testing.assert_array_equal(batches[2][0], batches[2][2])  # image 6, repeated to fill the batch
    with pytest.raises(YoloxDeployError, match="calibration batch must be >= 1"):
        list(calibration_batches(images, 0))


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "m.engine"
    meta = ModelMetadata(model_name="yolox-s", input_size=(640, 640), class_names=("a", "b"))
    write_engine_sidecar(engine, meta, "10.7.0", "FP16", Profile(1, 8, 32), "images", "output", "NVIDIA H100")
    sidecar = read_engine_sidecar(engine)
    assert sidecar["tensorrt_version"] == "10.7.0" and sidecar["profile"] == {"min": 1, "opt": 8, "max": 32}
    assert ModelMetadata.from_props(sidecar["metadata"]) == meta
    (tmp_path / "m.json").write_text('{"format": "other"}')
    with pytest.raises(ModelFileError, match="not a yolox_deploy tensorrt sidecar"):
        read_engine_sidecar(engine)


def test_export_without_tensorrt_or_gpu_says_what_to_install(tmp_path, tiny_onnx, monkeypatch, fake_tensorrt):
    assert get_exporter("trt") is get_exporter("engine") is export_tensorrt
    if has_cuda():
        pytest.skip("a GPU is present: the no-GPU message cannot be seen here")
    with pytest.raises(BackendUnavailableError, match="needs an NVIDIA GPU with CUDA, and none is visible"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, batch=(1, 2, 4))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[tensorrt\]'"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, batch=(1, 2, 4))


def test_export_refuses_a_tensorrt_without_the_api_it_builds_with(tmp_path, tiny_onnx, fake_tensorrt):
    # TensorRT 11.4's bindings (PyPI, checked 2026-11-22) have no BuilderFlag.FP16/INT8 and no calibrators
    fake_tensorrt.__version__ = "11.4.0.106"
    with pytest.raises(BackendUnavailableError, match=r"TensorRT 11.4.0.106 is installed .*pip install 'tensorrt>=10,<11'"):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx)


@pytest.mark.parametrize("kwargs, message", [
    ({"int8": True}, "--int8 needs --calib"),
    ({"workspace_gib": 0}, "workspace must be > 0"),
    ({"batch": (1, 4, 2)}, "1 <= MIN <= OPT <= MAX"),
])
def test_export_argument_errors(tmp_path, tiny_onnx, kwargs, message):
    with pytest.raises(YoloxDeployError, match=message):
        export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, **kwargs)


def test_static_onnx_refuses_a_batch_range(tmp_path, nano_onnx):
    with pytest.raises(YoloxDeployError, match="static batch of 1; a profile of 1 8 32 needs an ONNX exported "
                                               "with --dynamic"):
        export_tensorrt(tmp_path / "m.engine", weights=nano_onnx, batch=(1, 8, 32))


def test_runtime_checks_before_touching_the_gpu(tmp_path, monkeypatch, fake_tensorrt):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine")
    assert backend_for_path(engine) == "tensorrt" and backend_for_path(tmp_path / "m.plan") == "tensorrt"
    with pytest.raises(ModelFileError, match="has no sidecar m.json"):
        load_backend(engine)
    write_engine_sidecar(engine, ModelMetadata(input_size=(64, 64)), "10.0.1", "FP32", Profile(1, 1, 1), "images",
                  "output", "NVIDIA A100")
    with pytest.raises(ModelFileError, match="built with TensorRT 10.0.1, this is TensorRT 10.7.0: engines only run "
                                             "on the version that built them"):
        load_backend(engine)
    write_engine_sidecar(engine, ModelMetadata(input_size=(64, 64)), "10.7.0", "FP32", Profile(1, 1, 1), "images",
                  "output", "NVIDIA A100")
    with pytest.raises(BackendUnavailableError, match="use device='cuda'"):
        load_backend(engine, device="cpu")
    if not has_cuda():
        with pytest.raises(BackendUnavailableError, match="needs an NVIDIA GPU"):
            load_backend(engine, device="cuda")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendNotInstalledError, match=r"yolox-deploy\[tensorrt\]"):
        load_backend(engine, device="cuda")


def test_cli_batch_range_is_only_for_trt(tmp_path, tiny_checkpoint, capsys):
    from yolox_deploy.cli import export

    assert export.main(["--to", "onnx", "--weights", str(tiny_checkpoint), "--batch", "1", "4", "8",
                        "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--batch takes one size (or MIN OPT MAX with --to trt)" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs an NVIDIA GPU")
def test_engine_matches_onnxruntime_on_a_gpu(tmp_path, nano_pth, nano_raw_outputs, coco_images):  # pragma: no cover
    pytest.importorskip("tensorrt")
    from yolox_deploy.images import read_image
    from yolox_deploy.preprocess import letterbox

    report = export_tensorrt(tmp_path / "nano.engine", weights=nano_pth, batch=(1, 4, 8))
    backend = load_backend(report.path, device="cuda")
    x = np.stack([letterbox(read_image(p), (416, 416))[0] for p in coco_images[:8]])
    assert np.abs(backend.infer(x) - nano_raw_outputs[0][:8]).max() < 1e-3
