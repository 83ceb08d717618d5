"""yolox-export --nms: decode + NMS inside the ONNX graph, checked against the C++ kernel path
on the 80 shared images through ONNX Runtime and OpenVINO, plus its bad inputs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from yolox_deploy import Detector
from yolox_deploy.artifacts.metadata import ModelMetadata
from yolox_deploy.errors import InvalidInputError, YoloxDeployError
from yolox_deploy.exporters.onnx import export_onnx
from yolox_deploy.processing.end_to_end import END_TO_END_OUTPUTS
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.preprocess import letterbox

pytestmark = pytest.mark.assets
CONFIGS = {  # name -> (conf, iou, max_det, agnostic)
    "aware-0.25": (0.25, 0.45, 100, False),
    "aware-0.01": (0.01, 0.65, 1000, False),
    "agnostic-0.25": (0.25, 0.45, 100, True),
    "agnostic-0.01": (0.01, 0.65, 1000, True),
}


@pytest.fixture(scope="module")
def raw_nano(tmp_path_factory, nano_pth):
    """The official nano weights as our raw FP32 ONNX, dynamic batch."""
    path = tmp_path_factory.mktemp("e2e") / "nano.onnx"
    export_onnx(path, weights=nano_pth, dynamic=True)
    return path


@pytest.fixture(scope="module")
def e2e_models(raw_nano):
    models = {}
    for name, (conf, iou, max_det, agnostic) in CONFIGS.items():
        path = raw_nano.with_name(f"nano-{name}.onnx")
        export_onnx(path, weights=raw_nano, nms="onnx", conf=conf, iou=iou, max_det=max_det, agnostic=agnostic)
        models[name] = path
    return models


@pytest.fixture(scope="module")
def images(coco_images):
    return [read_image(p) for p in coco_images]


def assert_same_detections(got, want, label):
    assert len(got) == len(want), label
    for i, (g, w) in enumerate(zip(got, want)):
        assert len(g.xyxy) == len(w.xyxy), (label, i)
        np.testing.assert_array_equal(g.class_ids, w.class_ids, err_msg=f"{label} image {i}")
        np.testing.assert_allclose(g.xyxy, w.xyxy, atol=1e-3, err_msg=f"{label} image {i}")
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-6, err_msg=f"{label} image {i}")


def kernel_detector(model, config, **options):
    conf, iou, max_det, agnostic = CONFIGS[config]
    return Detector(model, conf=conf, iou=iou, max_det=max_det, class_agnostic=agnostic, postprocess_impl="cpp",
                    **options)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_onnxruntime_end_to_end_equals_the_kernel_path_on_80_images(e2e_models, raw_nano, images, config):
    got = Detector(e2e_models[config])(images)
    want = kernel_detector(raw_nano, config)(images)
    assert_same_detections(got, want, config)
    assert sum(len(d.xyxy) for d in got) > 300  # the 80 images give hundreds of boxes at either conf


@pytest.mark.parametrize("config", ["aware-0.01", "agnostic-0.25"])
def test_openvino_end_to_end_equals_its_kernel_path_on_80_images(e2e_models, raw_nano, images, config, tmp_path):
    pytest.importorskip("openvino")
    from yolox_deploy.exporters.openvino import export_openvino

    e2e_ir = export_openvino(tmp_path / "e2e.xml", weights=e2e_models[config]).path
    raw_ir = export_openvino(tmp_path / "raw.xml", weights=raw_nano).path
    got = Detector(e2e_ir, precision="fp32")(images)
    assert_same_detections(got, kernel_detector(raw_ir, config, precision="fp32")(images), config)
    # and against ONNX Runtime's kernel path: equal where the two runtimes' FP32 rounding does not
    # move a box across a threshold (2 of 80 images at conf 0.01 here); counts differ by at most 1
    ort_dets = kernel_detector(raw_nano, config)(images)
    assert sum(abs(len(g.xyxy) - len(w.xyxy)) for g, w in zip(got, ort_dets)) <= 3


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_every_batch_size_gives_the_batch_one_results(e2e_models, images, backend, tmp_path):
    path = e2e_models["aware-0.25"]
    if backend == "openvino":
        pytest.importorskip("openvino")
        from yolox_deploy.exporters.openvino import export_openvino

        path = export_openvino(tmp_path / "e2e.xml", weights=path, dynamic=True).path
    det = Detector(path, backend=backend)
    x = np.stack([letterbox(image, (416, 416))[0] for image in images[:6]])
    singles = [det.backend.infer_end_to_end(x[i:i + 1]) for i in range(6)]
    for n in (2, 3, 6):
        batch = det.backend.infer_end_to_end(x[:n])
        for i in range(n):
            k = int(singles[i].num_dets[0, 0])
            assert int(batch.num_dets[i, 0]) == k
            np.testing.assert_array_equal(batch.class_ids[i], singles[i].class_ids[0])
            np.testing.assert_allclose(batch.boxes[i], singles[i].boxes[0], atol=1e-3)
            assert not batch.boxes[i, k:].any() and not batch.scores[i, k:].any()  # zero padding


def test_layout_metadata_and_defaults(e2e_models):
    model = onnx.load(str(e2e_models["agnostic-0.25"]))
    assert [o.name for o in model.graph.output] == list(END_TO_END_OUTPUTS)
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert types == {"num_dets": 6, "boxes": 1, "scores": 1, "class_ids": 6}  # int32, float32
    dims = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert dims["boxes"][1:] == [100, 4] and dims["num_dets"][1:] == [1]
    assert {"NonMaxSuppression", "TopK"} <= {n.op_type for n in model.graph.node}
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.end_to_end["conf"] == 0.25 and meta.end_to_end["agnostic"] is True
    assert meta.end_to_end["layout"] == list(END_TO_END_OUTPUTS) and meta.defaults["max_det"] == 100


def test_detector_refuses_what_the_graph_already_decided(e2e_models):
    path = e2e_models["aware-0.25"]
    det = Detector(path, conf=0.5, max_det=10)  # stricter than baked: applied on the host
    assert (det.conf, det.iou, det.max_det, det.class_agnostic) == (0.5, 0.45, 10, False)
    for kwargs, message in [({"conf": 0.1}, r"conf 0.25 baked into its graph .* re-export with `yolox-export --nms "
                                            r"--conf 0.1`"),
                            ({"iou": 0.6}, "runs NMS at iou 0.45 inside its graph"),
                            ({"max_det": 500}, "keeps at most 100 detections"),
                            ({"max_det": None}, "cannot return all"),
                            ({"class_agnostic": True}, "runs class-aware NMS inside its graph"),
                            ({"postprocess_impl": "cpp"}, "NMS runs inside its graph, so postprocess_impl='cpp'")]:
        with pytest.raises(InvalidInputError, match=message):
            Detector(path, **kwargs)
    with pytest.raises(InvalidInputError, match="is an end-to-end model .* use infer_end_to_end"):
        det.backend.infer(np.zeros((1, 3, 416, 416), np.float32))


def test_stricter_conf_and_max_det_apply_on_the_host(e2e_models, images):
    loose = Detector(e2e_models["aware-0.01"])(images[:5])
    strict = Detector(e2e_models["aware-0.01"], conf=0.3, max_det=5)(images[:5])
    for a, b in zip(loose, strict):
        keep = np.flatnonzero(a.scores >= 0.3)[:5]
        np.testing.assert_array_equal(b.xyxy, a.xyxy[keep])


def test_stream_runs_end_to_end_models(e2e_models, coco_images):
    det = Detector(e2e_models["aware-0.25"], batch_size=3)
    streamed = [r.detections for r in det.stream(coco_images[:7])]
    assert_same_detections(streamed, det(list(coco_images[:7])), "stream")


def test_raw_exports_store_default_thresholds(tmp_path, raw_nano):
    path = tmp_path / "defaults.onnx"
    export_onnx(path, weights=raw_nano, conf=0.4, iou=0.5, max_det=20)
    det = Detector(path)
    assert (det.conf, det.iou, det.max_det) == (0.4, 0.5, 20) and not det.backend.end_to_end
    assert (Detector(path, conf=0.3).conf, Detector(path, max_det=None).max_det) == (0.3, None)
    assert Detector(raw_nano).conf == 0.25  # no stored defaults: the library's


def test_efficient_nms_trt_node(tmp_path, raw_nano):
    path = tmp_path / "trt.onnx"
    with pytest.warns(FutureWarning, match=r"^--nms trt writes the EfficientNMS_TRT plugin, deprecated since "
                                           r"TensorRT 10.12 .*--nms onnx builds on TensorRT too"):
        report = export_onnx(path, weights=raw_nano, nms="trt", conf=0.3, iou=0.5, max_det=50, agnostic=True)
    assert "checked with onnx.checker only" in report.summary()
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (node,) = [n for n in model.graph.node if n.op_type == "EfficientNMS_TRT"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == "TRT" and list(node.output) == list(END_TO_END_OUTPUTS)
    assert attrs == {"background_class": -1, "box_coding": 0, "iou_threshold": pytest.approx(0.5),
                     "max_output_boxes": 50, "plugin_version": b"1", "score_activation": 0,
                     "score_threshold": np.float32(0.3),  # the plugin keeps score >= it, as the kernel >= conf
                     "class_agnostic": 1}
    shapes = {i: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for i, v in enumerate(onnx.shape_inference.infer_shapes(model).graph.value_info)
              if v.name in node.input}
    assert sorted(len(s) for s in shapes.values()) == [3, 3]  # boxes [B, N, 4], scores [B, N, 80]
    assert "TRT" in {o.domain for o in model.opset_import}


@pytest.mark.parametrize("kwargs, message", [
    ({"nms": "onnx", "max_det": 0}, "--max-det must be >= 1"),
    ({"nms": "onnx", "iou": 1.5}, r"--iou must be in \[0, 1\]"),
    ({"nms": "onnx", "conf": -0.1}, r"--conf must be in \[0, 1\]"),
    ({"nms": "fast"}, "--nms takes 'onnx' or 'trt'"),
    ({"nms": "trt", "max_det": 5000}, "EfficientNMS_TRT keeps at most 3840"),
    ({"nms": "trt", "iou": 0.0}, r"EfficientNMS_TRT needs --iou > 0 \(its plugin refuses 0"),
    ({"nms": "trt", "conf": 0.001}, r"below --conf 0.007 EfficientNMS_TRT pads its outputs with score -32768"),
    ({"agnostic": True}, "--agnostic is baked into end-to-end models only"),
])
def test_bad_settings(tmp_path, raw_nano, kwargs, message):
    with pytest.raises(YoloxDeployError, match=message):
        export_onnx(tmp_path / "x.onnx", weights=raw_nano, **kwargs)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_prints_the_nms_trt_deprecation_in_one_line(tmp_path, raw_nano):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "yolox_deploy.cli.export", "--to", "onnx", "--weights", str(raw_nano),
                           "--nms", "trt", "-o", str(tmp_path / "t.onnx")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in done.stderr.splitlines() if "deprecated" in line]
    assert warned == ["yolox-export: warning: --nms trt writes the EfficientNMS_TRT plugin, deprecated since TensorRT "
                      "10.12 (to be removed); --nms onnx builds on TensorRT too and gives the shared kernel's "
                      "detections"]


def test_cli_refusals_and_eval(tmp_path, e2e_models, raw_nano, coco_dir, capsys):
    from yolox_deploy.cli import eval as eval_cli
    from yolox_deploy.cli import export

    assert export.main(["--to", "ncnn", "--nms", "-o", str(tmp_path / "m.param")]) == 2
    assert "ncnn has no NonMaxSuppression layer" in capsys.readouterr().err
    assert export.main(["--to", "onnx", "--weights", str(e2e_models["aware-0.25"]), "--nms",
                        "-o", str(tmp_path / "again.onnx")]) == 2
    assert "is already end-to-end" in capsys.readouterr().err
    assert eval_cli.main(["--model", str(e2e_models["aware-0.25"]), "--images", str(coco_dir / "images"),
                          "--ann", str(coco_dir / "instances_val2017.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["end_to_end"] and result["conf"] == 0.25 and 0.2 < result["mAP50_95"] < 0.3
    assert eval_cli.main(["--model", str(e2e_models["aware-0.25"]), "--images", str(coco_dir / "images"),
                          "--ann", str(coco_dir / "instances_val2017.json"), "--iou", "0.65"]) == 2
    assert "runs NMS at iou 0.45 inside its graph" in capsys.readouterr().err


def test_eval_at_the_official_settings_matches_the_raw_model(e2e_models, raw_nano, coco_dir):
    from yolox_deploy.evaluation import evaluate_coco

    ann = coco_dir / "instances_val2017.json"
    e2e = evaluate_coco(Detector(e2e_models["aware-0.01"], clip_boxes=False), coco_dir / "images", ann,
                        progress=False)
    raw = evaluate_coco(Detector(raw_nano, conf=0.01, iou=0.65, max_det=1000, clip_boxes=False),
                        coco_dir / "images", ann, progress=False)
    assert e2e["mAP50_95"] == pytest.approx(raw["mAP50_95"], abs=1e-9) and e2e["mAP50_95"] > 0.30


def test_tensorrt_builds_and_runs_the_end_to_end_onnx(tmp_path, e2e_models, images, monkeypatch):
    """Against the labelled stand-in tensorrt (tests/tensorrt_fake): the engine's four outputs
    are checked, buffered and read like the raw one's."""
    import tensorrt_fake

    from yolox_deploy.exporters.tensorrt import export_tensorrt

    tensorrt_fake.install(monkeypatch, "11.4.0")
    engine = export_tensorrt(tmp_path / "e2e.engine", weights=e2e_models["aware-0.25"], batch=(1, 2, 4)).path
    det = Detector(engine)
    assert det.backend.end_to_end
    assert_same_detections(det(images[:8]), Detector(e2e_models["aware-0.25"])(images[:8]), "tensorrt")


def test_openvino_export_with_nms_from_a_checkpoint(tmp_path, tiny_checkpoint):
    pytest.importorskip("openvino")
    from yolox_deploy.exporters.openvino import export_openvino

    path = export_openvino(tmp_path / "t.xml", weights=tiny_checkpoint, input_size=(64, 96), nms="onnx",
                           conf=0.0, max_det=10).path
    det = Detector(path)
    assert det.backend.end_to_end and det.max_det == 10
    dets = det(np.full((64, 96, 3), 128, np.uint8))
    assert len(dets.xyxy) == 10  # conf 0 keeps every anchor, capped at max_det


def test_an_end_to_end_model_without_our_metadata_is_seen_from_its_outputs(tmp_path, e2e_models, images):
    model = onnx.load(str(e2e_models["aware-0.25"]))
    del model.metadata_props[:]  # e.g. made by another tool with the same output layout
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    det = Detector(path, class_names=[str(i) for i in range(80)])
    assert det.backend.end_to_end and det.backend.metadata.end_to_end is None
    got = det(images[:4])
    want = Detector(e2e_models["aware-0.25"])(images[:4])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.xyxy, w.xyxy)


def test_yolox_detect_on_an_end_to_end_model(e2e_models, coco_images, capsys):
    from yolox_deploy.cli import detect

    assert detect.main([str(coco_images[0]), "--model", str(e2e_models["aware-0.25"]), "--no-save"]) == 0
    assert f"{coco_images[0]}:" in capsys.readouterr().out
    assert detect.main([str(coco_images[0]), "--model", str(e2e_models["aware-0.25"]), "--no-save",
                        "--conf", "0.1"]) == 2
    assert "conf 0.25 baked into its graph" in capsys.readouterr().err


def test_a_missing_or_non_onnx_source_is_one_line(tmp_path):
    from yolox_deploy.errors import ModelFileError

    (tmp_path / "bad.onnx").write_text("not a model")
    with pytest.raises(ModelFileError, match="bad.onnx is not an ONNX model"):
        export_onnx(tmp_path / "x.onnx", weights=tmp_path / "bad.onnx", nms="onnx")
    with pytest.raises(ModelFileError, match="model file not found"):
        export_onnx(tmp_path / "x.onnx", weights=tmp_path / "missing.onnx", nms="onnx")
