"""OpenVINO: export (FP32/FP16/INT8), parity with ONNX Runtime, mAP, async mode, errors."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.errors import BackendNotInstalledError, InvalidInputError, ModelFileError, YoloxDeployError  # noqa: E402
from yolox_deploy.evaluation import evaluate_coco  # noqa: E402
from yolox_deploy.exporters.openvino import export_openvino  # noqa: E402
from yolox_deploy.runtimes import load_backend  # noqa: E402

ORT_MAP50_95 = 0.30524748130969065  # the ONNX Runtime / official-evaluator number (tests/test_evaluation.py)


@pytest.fixture(scope="module")
def ir_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino")


@pytest.fixture(scope="module")
def nano_fp32(ir_dir, nano_pth):
    return export_openvino(ir_dir / "nano.xml", weights=nano_pth)


def coco_map(model, coco_dir):
    det = Detector(model, conf=0.01, iou=0.65, max_det=None, clip_boxes=False)
    return evaluate_coco(det, coco_dir / "images", coco_dir / "instances_val2017.json", progress=False)["mAP50_95"]


def test_fp32_ir_matches_onnxruntime_on_real_images(nano_fp32, nano_onnx, nano_raw_outputs, coco_images):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    assert nano_fp32.precision == "FP32" and nano_fp32.max_abs_diff < 1e-4
    backend = load_backend(nano_fp32.path)
    assert backend.name == "openvino" and backend.input_shape == (1, 3, 416, 416)
    got = np.stack([backend.infer(letterbox(read_image(p), (416, 416))[0][None])[0] for p in coco_images[:8]])
    want = nano_raw_outputs[0][:8]
    # scores to 1e-4; box offsets (|x| up to ~5) to float32 noise: ONNX Runtime itself is 1.1e-4
    # away from a float64 evaluation of the same graph
    assert np.abs(got[..., 4:] - want[..., 4:]).max() < 1e-4
    np.testing.assert_allclose(got[..., :4], want[..., :4], rtol=1e-4, atol=3e-4)


def test_fp32_ir_is_as_close_to_exact_as_onnxruntime(nano_fp32, nano_pth, nano_raw_outputs, coco_images):
    """Any two float32 runtimes differ by ~2e-4 on box offsets (PyTorch vs ONNX Runtime: 2.4e-4),
    so the IR is judged against a float64 evaluation of the same weights: it must be no
    further from it than ONNX Runtime is (measured: OpenVINO 1.7e-4, ONNX Runtime 1.9e-4)."""
    torch = pytest.importorskip("torch")
    from yolox_deploy.models import load_model
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    model, _ = load_model(nano_pth, "yolox-nano")
    model = model.double()
    backend = load_backend(nano_fp32.path)
    inputs = [letterbox(read_image(p), (416, 416))[0][None] for p in coco_images[:8]]
    with torch.no_grad():
        exact = np.concatenate([model(torch.from_numpy(x).double()).numpy() for x in inputs])
    openvino_err = np.abs(np.concatenate([backend.infer(x) for x in inputs]) - exact).max()
    onnxruntime_err = np.abs(nano_raw_outputs[0][:8] - exact).max()
    assert openvino_err <= 1.25 * onnxruntime_err, (openvino_err, onnxruntime_err)


def test_pixel_input_is_bit_identical_to_the_float_input(nano_fp32, coco_images):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox_batch

    images = [read_image(p) for p in coco_images[:2]]
    pixels, _ = letterbox_batch(images, (416, 416), pixels=True)
    floats, _ = letterbox_batch(images, (416, 416))
    native, plain = load_backend(nano_fp32.path), load_backend(nano_fp32.path, pixel_input=False)
    assert native.native_pixels and not plain.native_pixels
    want = [plain.infer(floats[i:i + 1]) for i in range(2)]
    for backend in (native, plain):
        for i in range(2):
            np.testing.assert_array_equal(backend.infer(pixels[i:i + 1]), want[i])
    np.testing.assert_array_equal(native.infer(floats[:1]), want[0])  # a float compile, made on demand
    for got, w in zip(native.infer_many([pixels[i:i + 1] for i in range(2)]), want):
        np.testing.assert_array_equal(got, w)


def test_metadata_travels_in_rt_info(nano_fp32):
    det = Detector(nano_fp32.path)
    assert det.input_size == (416, 416) and det.class_names[0] == "person"
    assert det.backend.metadata.model_name == "yolox-nano"


def test_an_onnx_runs_directly_with_its_metadata(tiny_onnx, nano_onnx, coco_images):
    """OpenVINO reads ONNX as it is (no .bin, no conversion): the same answers as ONNX Runtime, and
    the ONNX's metadata_props (input size, model name) are read."""
    image = cv2.imread(str(coco_images[0]))
    for model in (nano_onnx, tiny_onnx):
        ov_det, ort_det = Detector(model, backend="openvino"), Detector(model, backend="onnxruntime")
        assert ov_det.backend.name == "openvino"
        assert ov_det.backend.metadata == ort_det.backend.metadata and ov_det.input_size == ort_det.input_size
        got, want = ov_det(image), ort_det(image)
        assert len(got) == len(want) and np.array_equal(got.class_ids, want.class_ids)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-2)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    tiny = Detector(tiny_onnx, backend="openvino")
    assert tiny.input_size == (64, 96) and len(tiny.class_names) == 3  # from metadata_props, not the defaults


def test_map_fp32_fp16_int8(nano_fp32, nano_pth, nano_onnx, coco_dir, ir_dir):
    assert coco_map(nano_fp32.path, coco_dir) == pytest.approx(ORT_MAP50_95, abs=1e-3)
    fp16 = export_openvino(ir_dir / "nano_fp16.xml", weights=nano_onnx, half=True)
    assert fp16.precision == "FP16"
    assert coco_map(fp16.path, coco_dir) == pytest.approx(ORT_MAP50_95, abs=1e-2)
    int8 = export_openvino(ir_dir / "nano_int8.xml", weights=nano_onnx, int8=True, calib=coco_dir / "images",
                           calib_size=80)
    assert int8.precision == "INT8 (NNCF)"
    record = load_backend(int8.path).metadata.quantization  # the calibration actually used
    assert record["quantizer"].startswith("nncf") and record["calibration"]["images"] == 80
    assert ORT_MAP50_95 - coco_map(int8.path, coco_dir) < 0.01  # within 1.0 AP of FP32


def test_async_queue_and_throughput_hint_give_the_sequential_results(ir_dir, tiny_checkpoint):
    report = export_openvino(ir_dir / "tiny_dyn.xml", weights=tiny_checkpoint, input_size=(64, 64), dynamic=True)
    latency = load_backend(report.path)
    throughput = load_backend(report.path, hint="THROUGHPUT", streams=2)
    assert latency.input_shape == (None, 3, 64, 64)
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 255, (b, 3, 64, 64)).astype(np.float32) for b in (1, 3, 2, 1, 4, 2)]
    want = [latency.infer(b) for b in batches]
    got = throughput.infer_many(batches)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-4)
    pixels = [rng.integers(0, 256, (b, 64, 64, 3), dtype=np.uint8) for b in (2, 1, 3)]
    from yolox_deploy.processing.preprocess import pixels_to_tensor
    for p, g in zip(pixels, throughput.infer_many(pixels)):
        np.testing.assert_allclose(g, latency.infer(pixels_to_tensor(p)), atol=1e-4)
    images = [rng.integers(0, 256, (50, 60, 3), dtype=np.uint8) for _ in range(7)]
    singles = [Detector(report.path, conf=0.01)(im) for im in images]
    batched = Detector(report.path, conf=0.01, batch_size=2, hint="THROUGHPUT")(images)
    for a, b in zip(singles, batched):
        assert len(a) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_dynamic_batch_needs_a_dynamic_onnx(ir_dir, nano_onnx):
    with pytest.raises(YoloxDeployError, match="static batch; dynamic batch needs an ONNX exported with --dynamic"):
        export_openvino(ir_dir / "bad.xml", weights=nano_onnx, dynamic=True)


def test_errors(ir_dir, nano_fp32, nano_onnx, tmp_path, monkeypatch):
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(nano_fp32.path.read_text())
    with pytest.raises(ModelFileError, match="has no weights file: expected lonely.bin"):
        load_backend(lonely)
    (tmp_path / "junk.xml").write_text("<net>")
    (tmp_path / "junk.bin").write_bytes(b"")
    with pytest.raises(ModelFileError, match="junk.xml is not a loadable OpenVINO IR"):
        load_backend(tmp_path / "junk.xml")
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(InvalidInputError, match="no readable images"):
        export_openvino(tmp_path / "q.xml", weights=nano_onnx, int8=True, calib=tmp_path / "calib")
    with pytest.raises(YoloxDeployError, match="--int8 needs --calib"):
        export_openvino(tmp_path / "q.xml", weights=nano_onnx, int8=True)
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[openvino\]'"):
        load_backend(nano_fp32.path)


# --- precision: stated on every compile, bf16 only when asked for and only where it runs -------

def _stated_precision(compile_call) -> str | None:
    """The INFERENCE_PRECISION_HINT a recorded compile passed ('f32', 'bf16' ...), None if none."""
    value = next((v for k, v in compile_call["config"].items() if str(k) == "INFERENCE_PRECISION_HINT"), None)
    return value.get_type_name() if hasattr(value, "get_type_name") else value


@pytest.mark.unstated_precision_ok
def test_the_guard_records_a_compile_that_states_no_precision(tiny_onnx, openvino_compiles):
    """The conftest guard (which fails any test whose OpenVINO compiles state no precision) sees
    every compile, on any CPU: ours, NNCF's and ov.compile_model's."""
    start = len(openvino_compiles)
    ov.Core().compile_model(str(tiny_onnx), "CPU")  # no precision, on purpose: the guard's negative control
    ov.compile_model(str(tiny_onnx), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert [_stated_precision(c) for c in openvino_compiles[start:]] == [None, "f32"]


def test_every_compile_of_ours_states_fp32(tmp_path, tiny_checkpoint, tiny_onnx, coco_dir, openvino_compiles):
    """Exporter check, backend (pixel and float compiles), NNCF calibration and a bench row all
    compile with INFERENCE_PRECISION_HINT f32 unless bf16 is asked for."""
    from yolox_deploy.measure.bench import BenchConfig, run_bench

    start = len(openvino_compiles)
    fp32 = export_openvino(tmp_path / "t.xml", weights=tiny_onnx)
    int8 = export_openvino(tmp_path / "q.xml", weights=tiny_onnx, int8=True, calib=coco_dir / "images", calib_size=4)
    backend = load_backend(fp32.path)
    backend.infer(np.zeros((1, 3, 64, 96), np.float32))  # the float-input compile, made on demand
    load_backend(int8.path).infer(np.zeros((1, 64, 96, 3), np.uint8))
    cfg = BenchConfig(backends=["openvino"], weights=tiny_checkpoint, precisions=["fp32"], batches=[1],
                      input_size=(64, 64), warmup=0, iters=1, cache_dir=tmp_path / "cache", progress=False,
                      baseline=False)
    assert run_bench(cfg)["rows"][0].ok
    stated = [_stated_precision(c) for c in openvino_compiles[start:]]
    assert len(stated) >= 7 and set(stated) == {"f32"}, stated


def _without_bf16_units(monkeypatch):
    """Make OpenVINO report a CPU without BF16 (as on CPUs lacking avx512_bf16/AMX)."""
    original = ov.Core.get_property

    def get_property(self, *args):
        value = original(self, *args)
        if args[-1] == "OPTIMIZATION_CAPABILITIES":
            return [c for c in value if c not in ("BF16", "FP16")]
        return value

    monkeypatch.setattr(ov.Core, "get_property", get_property)


def test_bf16_is_refused_in_one_line_where_the_cpu_has_no_bf16(nano_fp32, monkeypatch, capsys, coco_dir):
    from yolox_deploy.cli import detect
    from yolox_deploy.cli import eval as eval_cli
    from yolox_deploy.errors import BackendUnavailableError

    _without_bf16_units(monkeypatch)
    with pytest.raises(BackendUnavailableError, match=r"precision='bf16' needs BF16 support, but OpenVINO's CPU "
                                                      r"lists only .*use precision='fp32'"):
        Detector(nano_fp32.path, precision="bf16")
    image = str(coco_dir / "images" / "000000005001.jpg")
    assert detect.main([image, "--model", str(nano_fp32.path), "--precision", "bf16", "--no-save"]) == 2
    assert eval_cli.main(["--model", str(nano_fp32.path), "--precision", "bf16", "--images",
                          str(coco_dir / "images"), "--ann", str(coco_dir / "instances_val2017.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("needs BF16 support" in line for line in err), err


def test_bf16_bench_row_says_why_it_cannot_run(tmp_path, tiny_checkpoint, monkeypatch):
    from yolox_deploy.measure.bench import BenchConfig, markdown_table, run_bench

    _without_bf16_units(monkeypatch)
    cfg = BenchConfig(backends=["openvino", "onnxruntime"], weights=tiny_checkpoint, precisions=["bf16"],
                      batches=[1], input_size=(64, 64), warmup=0, iters=1, cache_dir=tmp_path / "cache",
                      progress=False, baseline=False)
    result = run_bench(cfg)
    statuses = {r.backend: r.status for r in result["rows"]}
    assert "needs BF16 support" in statuses["openvino"] and "\n" not in statuses["openvino"]
    assert statuses["onnxruntime"] == "onnxruntime does not compute in bf16; openvino does"
    assert "OpenVINO CPU capabilities: " in markdown_table(result)


def test_unknown_precision_is_a_one_line_error(nano_fp32):
    with pytest.raises(InvalidInputError, match="unknown precision 'int4'; use one of fp32, bf16, fp16"):
        Detector(nano_fp32.path, precision="int4")


bf16_cpu = pytest.mark.skipif("BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
                              reason="this CPU has no bf16 units (OpenVINO lists no BF16 capability)")


@bf16_cpu
def test_bf16_runs_bf16_when_asked_and_costs_little_map(nano_fp32, coco_dir):
    from yolox_deploy.runtimes.openvino import compiled_precision

    det = Detector(nano_fp32.path, precision="bf16", conf=0.01, iou=0.65, max_det=None, clip_boxes=False)
    assert det.backend.precision == "bf16"
    assert {compiled_precision(c) for c in det.backend._compiled.values()} == {"bf16"}
    bf16_map = evaluate_coco(det, coco_dir / "images", coco_dir / "instances_val2017.json",
                             progress=False)["mAP50_95"]
    assert abs(bf16_map - ORT_MAP50_95) < 0.01, bf16_map  # measured 0.3041: docs/exactness.md
    assert bf16_map != ORT_MAP50_95  # it really ran in bf16


def test_a_failed_export_leaves_nothing_behind(tmp_path, tiny_onnx, monkeypatch):
    import yolox_deploy.exporters.openvino as ov_export

    (tmp_path / "keep.xml").write_text("an older export")
    monkeypatch.setattr(ov_export, "FP32_TOLERANCE", -1.0)  # every parity check fails
    for name in ("new.xml", "keep.xml"):
        with pytest.raises(YoloxDeployError, match="OpenVINO IR differs from ONNX Runtime"):
            export_openvino(tmp_path / name, weights=tiny_onnx)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.xml"]  # no .bin, no staging folder
    assert (tmp_path / "keep.xml").read_text() == "an older export"
