"""PyTorch -> ncnn through pnnx: the exact Focus rewrite, every variant, options, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pnnx")
pytest.importorskip("ncnn")

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import YoloxDeployError  # noqa: E402
from yolox_deploy.exporters import exporter_source  # noqa: E402
from yolox_deploy.exporters.ncnn import check_rewrite_is_exact, export_ncnn, ncnn_compatible, space_to_depth_by_planes  # noqa: E402
from yolox_deploy.models import MODEL_ZOO, load_model  # noqa: E402
from yolox_deploy.models.blocks import Focus, space_to_depth  # noqa: E402


@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 32, 32), (1, 5, 8, 16), (3, 1, 2, 2)])
def test_plane_space_to_depth_is_bit_exact(shape):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    assert torch.equal(space_to_depth_by_planes(x), space_to_depth(x))


def test_the_rewrite_replaces_every_focus_and_keeps_the_original(tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint)
    rewritten = ncnn_compatible(model)
    assert any(isinstance(m, Focus) for m in model.modules())
    assert not any(isinstance(m, Focus) for m in rewritten.modules())
    x = torch.rand(1, 3, 64, 96) * 255
    check_rewrite_is_exact(model, rewritten, x)  # raises if not bit-exact
    broken = ncnn_compatible(model)
    broken.backbone.backbone.stem.forward = lambda t: model.backbone.backbone.stem.conv(
        torch.nn.functional.pixel_unshuffle(t, 2))  # plain pixel_unshuffle: the wrong channel order
    with pytest.raises(YoloxDeployError, match="Focus rewrite is not exact"):
        check_rewrite_is_exact(model, broken, x)


def test_export_writes_param_bin_and_sidecar(tmp_path, tiny_checkpoint):
    report = export_ncnn(tmp_path / "tiny.param", weights=tiny_checkpoint, input_size=(64, 96),
                         class_names=["cat", "dog", "bird"])
    assert report.precision == "FP32" and report.max_abs_diff < 1e-4
    assert {p.name for p in tmp_path.iterdir()} == {"tiny.param", "tiny.bin", "tiny.json"}
    sidecar = json.loads((tmp_path / "tiny.json").read_text())
    assert sidecar["input_blob"] == "in0" and sidecar["output_blob"] == "out0"
    assert sidecar["input_shape"] == [3, 64, 96] and sidecar["weights_fp16"] is False
    assert "Tensor.slice" not in (tmp_path / "tiny.param").read_text()
    det = Detector(tmp_path / "tiny.param")
    assert det.backend.name == "ncnn" and det.class_names == ("cat", "dog", "bird") and det.input_size == (64, 96)


def test_half_stores_fp16_weights(tmp_path, tiny_checkpoint):
    fp32 = export_ncnn(tmp_path / "a.param", weights=tiny_checkpoint, input_size=(64, 96))
    fp16 = export_ncnn(tmp_path / "b.param", weights=tiny_checkpoint, input_size=(64, 96), half=True)
    assert fp16.precision == "FP16" and json.loads((tmp_path / "b.json").read_text())["weights_fp16"] is True
    assert (tmp_path / "b.bin").stat().st_size < 0.6 * (tmp_path / "a.bin").stat().st_size
    assert fp32.max_abs_diff < fp16.max_abs_diff


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODEL_ZOO))
def test_every_variant_converts_and_matches_pytorch(tmp_path, name):
    from yolox_deploy.models import get_spec, seeded_model

    report = export_ncnn(tmp_path / f"{name}.param", model_name=name, input_size=(64, 96), seed=3)
    assert report.max_abs_diff < 1e-3, report.summary()
    x = np.random.default_rng(5).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    with torch.inference_mode():
        want = seeded_model(get_spec(name), 80, seed=3).eval()(torch.from_numpy(x)).numpy()
    got = Detector(report.path).backend.infer(x)
    assert got.shape == (2, 126, 85)
    assert np.abs(got[..., 4:] - want[..., 4:]).max() < 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"int8": True}, "ncnn INT8 is not supported"),
    ({"batch": 4}, "drop --batch and --dynamic-hw"),
    ({"dynamic_hw": True}, "drop --batch and --dynamic-hw"),
    ({"input_size": (60, 96)}, "multiple of 32"),
])
def test_export_argument_errors(tmp_path, tiny_checkpoint, kwargs, message):
    kwargs = {"input_size": (64, 96), **kwargs}
    with pytest.raises(YoloxDeployError, match=message):
        export_ncnn(tmp_path / "x.param", weights=tiny_checkpoint, **kwargs)


def test_export_wants_a_checkpoint(tmp_path, tiny_onnx):
    assert exporter_source("ncnn") == "checkpoint" and exporter_source("openvino") == "onnx"
    with pytest.raises(YoloxDeployError, match=r"converts a PyTorch checkpoint \(.pth\), got tiny.onnx"):
        export_ncnn(tmp_path / "x.param", weights=tiny_onnx)
