"""What TensorRT itself enforces (plugin registration, the current device, ITopKLayer's limit,
EfficientNMS_TRT's attribute checks), taught to the labelled stand-in (tests/tensorrt_fake),
and our code meeting each rule. Every rule has a test of the stand-in alone, and a test of our
code that failed before the code was mended (issue 35)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorrt_fake
from onnx import TensorProto, helper

from yolox_deploy import Detector
from yolox_deploy.artifacts.sidecar import sidecar_path
from yolox_deploy.errors import YoloxDeployError
from yolox_deploy.exporters.onnx import export_onnx
from yolox_deploy.exporters.tensorrt import export_tensorrt
from yolox_deploy.runtimes import load_backend


@pytest.fixture
def trt(monkeypatch):
    return tensorrt_fake.install(monkeypatch, "10.13.0")


@pytest.fixture(scope="module")
def nms_trt_onnx(tiny_checkpoint, tmp_path_factory):
    import warnings

    path = tmp_path_factory.mktemp("e2e") / "tiny-nms-trt.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecation note: tests/exporters/test_end_to_end.py
        export_onnx(path, weights=tiny_checkpoint, input_size=(64, 96), nms="trt", conf=0.25, iou=0.45, max_det=50)
    return path


def plugin_graph(**attrs) -> bytes:
    """A one-node graph: boxes [1, 8, 4] and scores [1, 8, 2] into EfficientNMS_TRT."""
    settings = {"background_class": -1, "box_coding": 0, "iou_threshold": 0.45, "max_output_boxes": 10,
                "plugin_version": "1", "score_activation": 0, "score_threshold": 0.25, **attrs}
    node = helper.make_node("EfficientNMS_TRT", ["boxes", "scores"], ["num_dets", "b", "s", "c"], domain="TRT",
                            name="nms", **settings)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 8, 4]),
                                            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 8, 2])],
                              [helper.make_tensor_value_info("num_dets", TensorProto.INT32, [1, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("TRT", 1)]
                             ).SerializeToString()


def parse(trt, data: bytes) -> tuple[bool, str]:
    logger = trt.Logger(trt.Logger.WARNING)
    network = trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(data)
    return ok, "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))


def engine_header(path) -> dict:
    data = path.read_bytes()
    return json.loads(data[len(tensorrt_fake.MAGIC):].split(b"\n", 1)[0])


# --- plugins ----------------------------------------------------------------------------------


def test_stand_in_a_plugin_op_parses_only_once_plugins_are_registered(trt):
    ok, errors = parse(trt, plugin_graph())
    assert not ok and "Plugin not found" in errors
    assert trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "") is True
    assert parse(trt, plugin_graph()) == (True, "")


@pytest.mark.parametrize("attrs, field", [({"iou_threshold": 0.0}, "iou_threshold"),
                                          ({"score_threshold": -0.1}, "score_threshold"),
                                          ({"max_output_boxes": 0}, "max_output_boxes")])
def test_stand_in_efficient_nms_attribute_checks_fail_the_parse(trt, attrs, field):
    trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "")
    ok, errors = parse(trt, plugin_graph(**attrs))
    assert not ok and f"PLUGIN_VALIDATE failed on {field}" in errors


def test_an_nms_trt_engine_builds_and_loads_with_plugins_registered_once(tmp_path, nms_trt_onnx, trt, monkeypatch):
    report = export_tensorrt(tmp_path / "e2e.engine", weights=nms_trt_onnx)
    assert engine_header(report.path)["plugins"] == ["EfficientNMS_TRT"]
    # a new process: nothing registered yet; loading registers before deserializing
    fresh = tensorrt_fake.install(monkeypatch, "10.13.0")
    assert fresh.Runtime(fresh.Logger()).deserialize_cuda_engine(report.path.read_bytes()) is None
    backend = load_backend(report.path)
    assert backend.end_to_end and fresh.plugins_registered
    load_backend(report.path)
    assert [c for c in fresh.calls if c[0] == "init_libnvinfer_plugins"] == [("init_libnvinfer_plugins", ("",))]
    with pytest.raises(NotImplementedError, match="cannot run plugin layers"):  # labelled: not emulated
        backend.infer_end_to_end(np.zeros((1, 3, 64, 96), np.float32))


# --- the current device -----------------------------------------------------------------------


def test_stand_in_an_engine_belongs_to_the_device_it_was_deserialized_on(tmp_path, tiny_onnx, monkeypatch):
    import torch

    trt = tensorrt_fake.install(monkeypatch, "10.13.0", gpus=2)
    path = export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx).path
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(path.read_bytes())  # on device 0
    with torch.cuda.device(1):
        assert engine.create_execution_context() is None
    context = engine.create_execution_context()
    with torch.cuda.device(1):
        assert context.execute_async_v3(0) is False


def test_build_load_and_run_happen_on_the_requested_device(tmp_path, tiny_onnx, monkeypatch):
    trt = tensorrt_fake.install(monkeypatch, "10.13.0", gpus=2)
    report = export_tensorrt(tmp_path / "m.engine", weights=tiny_onnx, batch=(1, 1, 2), device="cuda:1")
    assert engine_header(report.path)["built_on_device"] == 1
    sidecar = json.loads(sidecar_path(report.path).read_text())
    assert sidecar["gpu"] == {"name": "Stand-in GPU sm90 #1", "compute_capability": "9.0"}
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    want = Detector(tiny_onnx, conf=0.0)(image)
    got = Detector(report.path, device="cuda:1", conf=0.0)(image)  # the old code ran a device-0 engine on device 1
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
    assert trt.current_device == 0  # put back after each scope


# --- ITopKLayer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topk_4000_onnx(tiny_checkpoint, tmp_path_factory):
    """An --nms onnx graph at 640 (8400 anchors) whose TopK keeps --max-det 4000."""
    path = tmp_path_factory.mktemp("topk") / "tiny-640-nms-4000.onnx"
    export_onnx(path, weights=tiny_checkpoint, input_size=(640, 640), nms="onnx", max_det=4000)
    return path


def test_stand_in_a_topk_over_3840_builds_then_fails_at_inference(topk_4000_onnx, trt):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert trt.OnnxParser(network, logger).parse(topk_4000_onnx.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 640, 640), (1, 3, 640, 640), (1, 3, 640, 640))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    assert engine is not None and engine.create_execution_context().execute_async_v3(0) is False


def test_a_topk_over_3840_is_refused_before_the_build_naming_max_det(tmp_path, topk_4000_onnx, trt):
    with pytest.raises(YoloxDeployError, match=r"TopK of k=4000 and TensorRT's TopK takes k <= 3840 .*"
                                               r"--max-det <= 3840") as info:
        export_tensorrt(tmp_path / "m.engine", weights=topk_4000_onnx)
    assert "\n" not in str(info.value)
    assert not [c for c in trt.calls if c[0] == "Builder.build_serialized_network"]
    with pytest.raises(YoloxDeployError, match="--max-det <= 3840"):
        load_backend(topk_4000_onnx, backend="tensorrt", engine_cache=tmp_path / "cache")


# --- the engine cache -------------------------------------------------------------------------


def test_two_gpu_models_of_one_compute_capability_get_their_own_engines(tmp_path, tiny_onnx, monkeypatch):
    for name in ("NVIDIA A10", "NVIDIA A40"):
        tensorrt_fake.install(monkeypatch, "10.13.0", capability=(8, 6), name=name)
        load_backend(tiny_onnx, backend="tensorrt", engine_cache=tmp_path)
    names = sorted(p.name.split("-", 2)[2] for p in tmp_path.glob("*.engine"))
    assert names == ["trt10.13.0-nvidia-a10-sm86-fp32-b1_1_8.engine", "trt10.13.0-nvidia-a40-sm86-fp32-b1_1_8.engine"]
    assert len(list(tmp_path.glob("timing-*.cache"))) == 2
