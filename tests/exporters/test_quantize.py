"""INT8 (Q/DQ) and FP16 ONNX: accuracy on the shared images, the runtimes that take them, and
one-line errors that leave nothing behind."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import InvalidInputError, YoloxDeployError  # noqa: E402
from yolox_deploy.evaluation import evaluate_coco  # noqa: E402
from yolox_deploy.exporters.onnx import export_onnx  # noqa: E402
from yolox_deploy.exporters.quantize import sensitive_convs, stored_precision  # noqa: E402
from yolox_deploy.runtimes import load_backend  # noqa: E402

FP32_MAP50_95 = 0.30524748130969065  # ONNX Runtime FP32 on the 80 shared images (tests/test_evaluation.py)


def coco_map(model, coco_dir, **options) -> float:
    det = Detector(model, conf=0.01, iou=0.65, max_det=None, clip_boxes=False, **options)
    return evaluate_coco(det, coco_dir / "images", coco_dir / "instances_val2017.json", progress=False)["mAP50_95"]


@pytest.fixture(scope="module")
def nano_int8(tmp_path_factory, nano_onnx, coco_dir):
    """The official opset-11 ONNX quantized (upgraded to opset 13), calibrated on the 80 images."""
    path = tmp_path_factory.mktemp("int8") / "nano_int8.onnx"
    report = export_onnx(path, weights=nano_onnx, int8=True, calib=coco_dir / "images", calib_size=80)
    return report


def test_int8_onnx_is_within_1_ap_on_onnxruntime_and_openvino(nano_int8, coco_dir, tmp_path):
    assert nano_int8.precision == "INT8" and nano_int8.opset == 13
    model = onnx.load(str(nano_int8.path))
    assert stored_precision(model) == "int8"
    metadata = load_backend(nano_int8.path).metadata
    assert metadata.precision == "int8" and metadata.class_names[0] == "person"
    record = metadata.quantization
    assert record["format"] == "QDQ" and record["calibrate_method"] == "MinMax" and record["mean_of_image_ranges"]
    assert record["float_convs"] == 18
    assert record["calibration"]["images"] == 80 and record["calibration"]["skipped_unreadable"] == 0
    ort_map = coco_map(nano_int8.path, coco_dir)  # the onnxruntime backend, no flags
    assert FP32_MAP50_95 - ort_map <= 0.01, ort_map  # measured 0.3017 (-0.35 AP)
    ov = pytest.importorskip("openvino")  # noqa: F841
    from yolox_deploy.exporters.openvino import export_openvino

    ir = export_openvino(tmp_path / "nano_qdq.xml", weights=nano_int8.path)  # no NNCF: OpenVINO converts Q/DQ
    assert ir.precision == "INT8 (Q/DQ ONNX)"
    assert load_backend(ir.path).metadata.precision == "int8"
    ov_map = coco_map(ir.path, coco_dir)
    assert FP32_MAP50_95 - ov_map <= 0.01, ov_map  # measured 0.3039 (-0.13 AP)


def test_fp16_onnx_is_within_0_1_ap_and_keeps_float32_io(tmp_path, nano_pth, coco_dir):
    report = export_onnx(tmp_path / "nano_fp16.onnx", weights=nano_pth, half=True)
    model = onnx.load(str(report.path))
    assert report.precision == "FP16" and stored_precision(model) == "fp16"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert load_backend(report.path).metadata.precision == "fp16"
    fp16_map = coco_map(report.path, coco_dir)
    assert abs(FP32_MAP50_95 - fp16_map) <= 0.001, fp16_map  # measured 0.3054 (+0.02 AP)


def test_sensitive_convs_are_the_early_stages_and_the_predictions(nano_onnx):
    from yolox_deploy.exporters.quantize import conv_output_strides, prediction_convs, with_qdq_opset

    model = with_qdq_opset(onnx.load(str(nano_onnx)), "nano")
    strides = conv_output_strides(model, (416, 416))
    assert sorted(set(strides.values())) == [2, 4, 8, 16, 32]
    predictions = prediction_convs(model)
    assert len(predictions) == 9 and all(strides[name] in (8, 16, 32) for name in predictions)  # 3 levels x reg/obj/cls
    keep = sensitive_convs(model, (416, 416))
    assert set(keep) == {n for n, s in strides.items() if s <= 4} | set(predictions)


def test_int8_from_a_checkpoint_is_reproducible_and_counts_unreadable_images(tmp_path, tiny_checkpoint, image_folder):
    calib = image_folder("calib", 6, {"broken.jpg": b"\xff\xd8 not a jpeg"})
    a = export_onnx(tmp_path / "a.onnx", weights=tiny_checkpoint, input_size=(64, 96), int8=True, calib=calib,
                    calib_size=4, seed=3, dynamic=True)
    b = export_onnx(tmp_path / "b.onnx", weights=tiny_checkpoint, input_size=(64, 96), int8=True, calib=calib,
                    calib_size=4, seed=3, dynamic=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    np.testing.assert_array_equal(load_backend(a.path).infer(x), load_backend(b.path).infer(x))  # same sample, same model
    record = load_backend(a.path).metadata.quantization["calibration"]
    assert record == load_backend(b.path).metadata.quantization["calibration"]
    assert record["images"] == 4 and record["seed"] == 3
    everything = export_onnx(tmp_path / "c.onnx", weights=tiny_checkpoint, input_size=(64, 96), int8=True,
                             calib=calib, calib_size=10)
    assert "6 images" in everything.calibration and "1 unreadable skipped" in everything.calibration
    assert load_backend(everything.path).metadata.quantization["calibration"]["skipped_unreadable"] == 1
    assert load_backend(a.path).infer(x).shape == (2, 126, 8)  # the dynamic batch survives


def test_bad_input_is_one_line_and_leaves_nothing_behind(tmp_path, tiny_onnx, nano_int8, image_folder, monkeypatch):
    good, out, empty = image_folder("good", 1), image_folder("out", 0), image_folder("empty", 0)
    junk = image_folder("junk", 0, {"a.jpg": b"", "b.png": b"not a png"})
    cases = [
        (dict(int8=True), YoloxDeployError, "--int8 needs --calib DIR"),
        (dict(int8=True, calib=empty), InvalidInputError, "has no readable images"),
        (dict(int8=True, calib=junk), InvalidInputError, r"has no readable images \(2 unreadable"),
        (dict(int8=True, half=True, calib=junk), YoloxDeployError, "choose --half or --int8, not both"),
        (dict(int8=True, calib=tmp_path / "nope"), InvalidInputError, "calibration folder not found"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            export_onnx(out / "m.onnx", weights=tiny_onnx, **options)
    with pytest.raises(YoloxDeployError, match="nano_int8.onnx is already INT8; quantize or convert the FP32 ONNX"):
        export_onnx(out / "m.onnx", weights=nano_int8.path, half=True)
    from onnx import version_converter

    def refuse(model, version):
        raise RuntimeError("No Adapter From Version 9 for Upsample\nmore lines")

    old = onnx.helper.make_model(onnx.load(str(tiny_onnx)).graph, opset_imports=[onnx.helper.make_opsetid("", 11)])
    onnx.save(old, tmp_path / "old.onnx")
    monkeypatch.setattr(version_converter, "convert_version", refuse)
    with pytest.raises(YoloxDeployError, match=r"old.onnx is opset 11 and could not be upgraded to opset 13, which "
                                               r"per-channel INT8 needs \(No Adapter From Version 9 for Upsample\)"):
        export_onnx(out / "m.onnx", weights=tmp_path / "old.onnx", int8=True, calib=good)
    assert list(out.iterdir()) == []


def test_cli_int8_from_onnx_prints_the_calibration(tmp_path, tiny_onnx, image_folder, capsys):
    from yolox_deploy.cli import export

    calib = image_folder("calib", 3)
    assert export.main(["--to", "onnx", "--weights", str(tiny_onnx), "--int8", "--calib", str(calib),
                        "-o", str(tmp_path / "q.onnx")]) == 0
    out = capsys.readouterr().out
    assert "as INT8 ONNX" in out and "calibrated on 3 images of calib" in out
    assert json.loads(dict((p.key, p.value) for p in onnx.load(str(tmp_path / "q.onnx")).metadata_props)
                      ["quantization"])["quantizer"].startswith("onnxruntime ")
