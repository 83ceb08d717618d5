"""PyTorch -> ONNX export: exactness to the official export, every variant, options, errors."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import onnxruntime as ort  # noqa: E402

from yolox_deploy.artifacts.metadata import ModelMetadata  # noqa: E402
from yolox_deploy.errors import YoloxDeployError  # noqa: E402
from yolox_deploy.exporters import export_targets, get_exporter  # noqa: E402
from yolox_deploy.exporters.onnx import export_onnx  # noqa: E402
from yolox_deploy.models import MODEL_ZOO  # noqa: E402
from yolox_deploy.runtimes.onnxruntime import fp32_session_options  # noqa: E402


def run(path, x):
    session = ort.InferenceSession(str(path), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})[0]


def test_our_export_of_the_official_checkpoint_matches_the_official_onnx(tmp_path, nano_pth, nano_onnx,
                                                                          nano_raw_outputs, coco_images):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    report = export_onnx(tmp_path / "nano.onnx", weights=nano_pth)
    assert report.model_name == "yolox-nano" and report.opset == 17 and report.simplified
    assert report.max_abs_diff < 1e-4
    raw_official = nano_raw_outputs[0]
    session = ort.InferenceSession(str(report.path), fp32_session_options(ort), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, path in enumerate(coco_images[:16]):
        x, _ = letterbox(read_image(path), (416, 416))
        worst = max(worst, float(np.abs(session.run(None, {"images": x[None]})[0][0] - raw_official[i]).max()))
    assert worst <= 1e-4
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    assert meta.model_name == "yolox-nano" and meta.input_size == (416, 416) and meta.strides == (8, 16, 32)
    assert meta.class_names[0] == "person" and len(meta.class_names) == 80
    model = onnx.load(str(report.path))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["output"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODEL_ZOO))
def test_every_variant_exports_and_matches_pytorch(tmp_path, name):
    report = export_onnx(tmp_path / f"{name}.onnx", model_name=name, input_size=(64, 96), seed=3)
    assert report.max_abs_diff < 1e-3, report.summary()
    assert run(report.path, np.zeros((1, 3, 64, 96), np.float32)).shape == (1, 126, 85)


def test_dynamic_batch_and_spatial_dims(tmp_path, tiny_checkpoint):
    import torch

    from yolox_deploy.models import load_model

    path = tmp_path / "dyn.onnx"
    export_onnx(path, weights=tiny_checkpoint, input_size=(64, 64), dynamic=True, dynamic_hw=True, opset=11)
    model, _ = load_model(tiny_checkpoint)
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 96, 128)).astype(np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    got = run(path, x)
    assert got.shape == (3, 12 * 16 + 6 * 8 + 3 * 4, 8)
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert onnx.load(str(path)).opset_import[0].version == 11


def test_static_batch_export(tmp_path, tiny_checkpoint):
    path = tmp_path / "b2.onnx"
    export_onnx(path, weights=tiny_checkpoint, input_size=(64, 64), batch=2, simplify=False)
    assert run(path, np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 84, 8)
    with pytest.raises(Exception, match="invalid dimensions"):  # onnxruntime's own error type
        run(path, np.zeros((1, 3, 64, 64), np.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(opset=9), "opset 9 is not supported"),
    (dict(input_size=(100, 100)), "multiple of 32"),
    (dict(class_names=["a"]), "1 class names for a head with 3 classes"),
    (dict(batch=0), "batch must be >= 1"),
])
def test_export_argument_errors(tmp_path, tiny_checkpoint, kwargs, message):
    with pytest.raises(YoloxDeployError, match=message):
        export_onnx(tmp_path / "x.onnx", weights=tiny_checkpoint, **kwargs)


def test_export_needs_weights_or_a_model_name(tmp_path):
    with pytest.raises(YoloxDeployError, match="give --weights"):
        export_onnx(tmp_path / "x.onnx")
    with pytest.raises(YoloxDeployError, match="both --depth and --width"):
        export_onnx(tmp_path / "x.onnx", depth=0.33)


def test_custom_depth_width_export(tmp_path):
    report = export_onnx(tmp_path / "c.onnx", depth=0.33, width=0.125, num_classes=2, input_size=(32, 32))
    assert run(report.path, np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 21, 7)


def test_exporter_registry():
    assert "onnx" in export_targets()
    assert get_exporter("onnx") is export_onnx
    with pytest.raises(YoloxDeployError, match="no exporter for --to 'tflite'"):
        get_exporter("tflite")
