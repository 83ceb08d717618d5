"""ncnn backend: parity with ONNX Runtime on the shared weights, mAP, options, load errors."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

ncnn = pytest.importorskip("ncnn")
pytest.importorskip("pnnx")
pytest.importorskip("torch")

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, ModelFileError  # noqa: E402
from yolox_deploy.evaluation import evaluate_coco  # noqa: E402
from yolox_deploy.exporters.ncnn import export_ncnn  # noqa: E402
from yolox_deploy.runtimes import load_backend  # noqa: E402

ORT_MAP50_95 = 0.30524748130969065  # the ONNX Runtime / official-evaluator number (tests/test_evaluation.py)


@pytest.fixture(scope="module")
def ncnn_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ncnn")


@pytest.fixture(scope="module")
def nano_ncnn(ncnn_dir, nano_pth):
    return export_ncnn(ncnn_dir / "nano.param", weights=nano_pth)


@pytest.fixture(scope="module")
def tiny_ncnn(ncnn_dir, tiny_checkpoint):
    return export_ncnn(ncnn_dir / "tiny.param", weights=tiny_checkpoint, input_size=(64, 96)).path


def coco_map(model, coco_dir, **options):
    det = Detector(model, conf=0.01, iou=0.65, max_det=None, clip_boxes=False, **options)
    return evaluate_coco(det, coco_dir / "images", coco_dir / "instances_val2017.json", progress=False)["mAP50_95"]


def test_fp32_matches_onnxruntime_on_real_images(nano_ncnn, nano_raw_outputs, coco_images):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    assert nano_ncnn.precision == "FP32" and nano_ncnn.max_abs_diff < 1e-4
    backend = load_backend(nano_ncnn.path)
    assert backend.name == "ncnn" and backend.input_shape == (None, 3, 416, 416)
    got = backend.infer(np.stack([letterbox(read_image(p), (416, 416))[0] for p in coco_images[:8]]))
    want = nano_raw_outputs[0][:8]
    assert np.abs(got[..., 4:] - want[..., 4:]).max() < 1e-3  # objectness and class scores
    assert np.abs(got[..., :4] - want[..., :4]).max() < 1e-3  # box offsets


def test_map_fp32_and_fp16_weights(nano_ncnn, nano_pth, coco_dir, ncnn_dir):
    assert coco_map(nano_ncnn.path, coco_dir) == pytest.approx(ORT_MAP50_95, abs=0.002)
    fp16 = export_ncnn(ncnn_dir / "nano_fp16.param", weights=nano_pth, half=True)
    fp16_map = coco_map(fp16.path, coco_dir)
    print(f"ncnn FP16-weight mAP50-95 {fp16_map:.4f} (FP32 {ORT_MAP50_95:.4f})")
    assert ORT_MAP50_95 - 0.03 < fp16_map < ORT_MAP50_95 + 0.005  # measured 0.2912: -1.4 AP, docs/exactness.md


def test_sidecar_metadata_means_no_other_argument(nano_ncnn):
    det = Detector(nano_ncnn.path)
    assert det.input_size == (416, 416) and det.class_names[0] == "person" and len(det.class_names) == 80
    assert det.backend.metadata.model_name == "yolox-nano"


def test_options_threads_fp16_light_mode_give_the_same_fp32_results(tiny_ncnn):
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 64, 96)).astype(np.float32)
    want = load_backend(tiny_ncnn).infer(x)
    for options in ({"threads": 1}, {"light_mode": False}, {"fp16": True, "threads": 2}):
        got = load_backend(tiny_ncnn, **options).infer(x)
        np.testing.assert_allclose(got, want, atol=5e-2 if options.get("fp16") else 1e-5)
    with pytest.raises(BackendUnavailableError, match="unknown device 'tpu'"):
        load_backend(tiny_ncnn, device="tpu")


def copy_model(src, dst_dir, stem="m"):
    for suffix in (".param", ".bin", ".json"):
        shutil.copy(src.with_suffix(suffix), dst_dir / f"{stem}{suffix}")
    return dst_dir / f"{stem}.param"


def test_missing_or_mismatched_files_are_refused_before_ncnn_sees_them(tiny_ncnn, nano_ncnn, tmp_path):
    param = copy_model(tiny_ncnn, tmp_path)
    param.with_suffix(".bin").unlink()
    with pytest.raises(ModelFileError, match="has no weights file: expected m.bin beside it"):
        load_backend(param)
    shutil.copy(nano_ncnn.path.with_suffix(".bin"), param.with_suffix(".bin"))  # another model's weights
    with pytest.raises(ModelFileError, match="m.bin is not the file m.json describes"):
        load_backend(param)
    param.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match="has no sidecar m.json"):
        load_backend(param)


def test_ncnn_load_failures_raise_instead_of_crashing(tiny_ncnn, tmp_path):
    param = copy_model(tiny_ncnn, tmp_path)
    sidecar = json.loads(param.with_suffix(".json").read_text())
    del sidecar["param_sha256"], sidecar["bin_sha256"]  # a hand-written sidecar without checksums
    param.with_suffix(".json").write_text(json.dumps(sidecar))
    weights = param.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with pytest.raises(ModelFileError, match="ncnn could not read the weights m.bin"):
        load_backend(param)
    shutil.copy(tiny_ncnn.with_suffix(".bin"), weights)
    text = param.read_text()
    param.write_text(text.replace("Reorg ", "YoloV5Focus ", 1))  # the official export's custom layer
    with pytest.raises(ModelFileError, match="uses layers this ncnn does not have: YoloV5Focus"):
        load_backend(param)
    param.write_text("not a param file\n")
    with pytest.raises(ModelFileError, match="not an ncnn text .param"):
        load_backend(param)
    lines = text.splitlines()
    param.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # fewer layers than its header says
    with pytest.raises(ModelFileError, match="ncnn could not parse m.param"):
        load_backend(param)
    bad = json.loads(param.with_suffix(".json").read_text())
    bad["format"] = "something else"
    param.with_suffix(".json").write_text(json.dumps(bad))
    with pytest.raises(ModelFileError, match="is not a yolox_deploy ncnn sidecar"):
        load_backend(param)


def test_ncnn_not_installed_names_the_extra(tiny_ncnn, monkeypatch):
    monkeypatch.setitem(sys.modules, "ncnn", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[ncnn\]'"):
        load_backend(tiny_ncnn)


def test_every_low_precision_switch_is_set_whatever_ncnn_defaults_to(tiny_ncnn):
    """ncnn's Option turns FP16 storage/packing/arithmetic on by default (used wherever the CPU has
    them, e.g. ARMv8.2): an FP32 backend must set each switch off itself, on any CPU."""
    assert ncnn.Option().use_fp16_arithmetic  # the default this guards against
    fp32 = load_backend(tiny_ncnn)
    fp16 = load_backend(tiny_ncnn, precision="fp16")
    switches = [s for s in fp32.LOW_PRECISION_SWITCHES if hasattr(fp32.net.opt, s)]
    assert {"use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"} <= set(switches)
    assert not any(getattr(fp32.net.opt, s) for s in switches)
    assert {s: getattr(fp16.net.opt, s) for s in switches} == {s: "fp16" in s for s in switches}
    assert fp32.precision == "fp32" and fp16.precision == "fp16"
    assert load_backend(tiny_ncnn, fp16=True).net.opt.use_fp16_arithmetic  # the older spelling
    with pytest.raises(BackendUnavailableError, match="the ncnn backend computes in fp32, fp16, not bf16; .*openvino"):
        load_backend(tiny_ncnn, precision="bf16")


def test_a_failed_export_leaves_nothing_behind(tmp_path, tiny_checkpoint, monkeypatch):
    import yolox_deploy.exporters.ncnn as ncnn_export

    monkeypatch.setattr(ncnn_export, "FP32_TOLERANCE", -1.0)
    with pytest.raises(Exception, match="the ncnn model differs from PyTorch"):
        export_ncnn(tmp_path / "t.param", weights=tiny_checkpoint, input_size=(64, 96))
    assert list(tmp_path.iterdir()) == []  # no .param, .bin, .json or staging folder


def test_default_threads_leave_half_the_cores_to_the_rest_of_the_process(tiny_ncnn, monkeypatch):
    """ncnn's spinning OpenMP workers lose their turn to any other busy thread (measured: 2 threads on
    2 cores, one other busy process: p50 2.5x, p90 8.7x; 1 thread: 1.0x), so the default is half the
    physical big cores, not ncnn's every core; a given thread count is kept."""
    import ncnn

    from yolox_deploy.runtimes.ncnn import default_threads

    for cores, threads in ((1, 1), (2, 1), (8, 4), (16, 8)):
        monkeypatch.setattr(ncnn, "get_physical_big_cpu_count", lambda c=cores: c)
        assert default_threads(ncnn) == threads
    monkeypatch.setattr(ncnn, "get_physical_big_cpu_count", lambda: 8)
    assert load_backend(tiny_ncnn).net.opt.num_threads == 4
    assert load_backend(tiny_ncnn, threads=3).net.opt.num_threads == 3
