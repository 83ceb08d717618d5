"""Backends: registry, protocol, and clear errors for wrong files and missing packages."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from yolox_deploy.errors import BackendNotInstalledError, BackendUnavailableError, InvalidInputError, ModelFileError
from yolox_deploy.runtimes import backend_for_path, backend_names, get_backend_class, load_backend


def test_registry_finds_backends_by_name_and_suffix():
    assert {"onnxruntime", "torch"} <= set(backend_names())
    assert backend_for_path("m.onnx") == "onnxruntime" and backend_for_path("M.PTH") == "torch"
    with pytest.raises(ModelFileError, match="unknown model file kind .tflite"):
        backend_for_path("model.tflite")
    with pytest.raises(ModelFileError, match="unknown backend 'tensorflow'"):
        get_backend_class("tensorflow")


def test_onnxruntime_backend_reports_shape_and_metadata(tiny_onnx):
    backend = load_backend(tiny_onnx)
    assert backend.name == "onnxruntime" and backend.input_shape == (None, 3, 64, 96)
    assert backend.metadata.class_names == ("cat", "dog", "bird") and backend.metadata.input_size == (64, 96)
    assert backend.infer(np.zeros((2, 3, 64, 96), np.float32)).shape == (2, 126, 8)


def test_onnxruntime_threads_stop_spinning_after_a_run_unless_asked_not_to(tiny_onnx):
    def entry(backend):
        return backend.session.get_session_options().get_session_config_entry("session.force_spinning_stop")

    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 96)).astype(np.float32)
    default, spinning = load_backend(tiny_onnx), load_backend(tiny_onnx, stop_spinning=False, threads=2)
    assert entry(default) == "1"
    with pytest.raises(RuntimeError, match="does not have"):  # not set: ONNX Runtime's own default (spin)
        entry(spinning)
    np.testing.assert_array_equal(default.infer(x), spinning.infer(x))


def test_onnxruntime_takes_pixels_natively_with_bit_identical_outputs(nano_onnx, coco_images):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox_batch

    images = [read_image(p) for p in coco_images[:3]]
    pixels, _ = letterbox_batch(images, (416, 416), pixels=True)
    floats, _ = letterbox_batch(images, (416, 416))
    native, plain = load_backend(nano_onnx), load_backend(nano_onnx, pixel_input=False)
    assert native.native_pixels and not plain.native_pixels
    assert native._float_session is None  # built only when a float batch comes
    want = np.concatenate([plain.infer(floats[i:i + 1]) for i in range(3)])
    for backend in (native, plain):  # plain converts pixels itself
        np.testing.assert_array_equal(np.concatenate([backend.infer(pixels[i:i + 1]) for i in range(3)]), want)
    np.testing.assert_array_equal(native.infer(floats[:1]), want[:1])


def test_onnxruntime_keeps_the_float_input_where_the_edit_cannot_apply(tiny_onnx, tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(tiny_onnx))
    path = tmp_path / "external.onnx"  # weights in a side file: a session from bytes cannot find them
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=1024)
    monkeypatch.chdir(tmp_path.parent)
    backend = load_backend(path)
    assert not backend.native_pixels
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(backend.infer(pixels), load_backend(tiny_onnx).infer(pixels))


def test_torch_backend_is_the_reference_for_onnxruntime(tiny_checkpoint, tiny_onnx):
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    ref = load_backend(tiny_checkpoint).infer(x)
    np.testing.assert_allclose(load_backend(tiny_onnx).infer(x), ref, atol=1e-3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 3, 64, 96), np.float64), "float32"),
    (np.zeros((1, 64, 96, 3), np.float32), r"\[B, 3, H, W\]"),
    (np.zeros((1, 3, 64, 64), np.float32), "takes input"),
    (np.zeros((1, 3, 64, 96), np.uint8), r"uint8 pixels must be \[B, H, W, 3\]"),
    (np.zeros((1, 64, 64, 3), np.uint8), r"takes input \[None, 3, 64, 96\] \(NCHW\), got \[1, 3, 64, 64\]"),
    (np.zeros((64, 96, 3), np.uint8), "uint8 pixels must be"),
])
def test_infer_checks_the_batch(tiny_onnx, bad, message):
    with pytest.raises(InvalidInputError, match=message):
        load_backend(tiny_onnx).infer(bad)


def test_files_that_are_not_models(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="junk.onnx is not a loadable ONNX model"):
        load_backend(junk)
    with pytest.raises(ModelFileError, match="model file not found"):
        load_backend(tmp_path / "missing.onnx")


def _onnx_with(tmp_path, inputs, outputs):
    import onnx
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs]
    nodes = [helper.make_node("Identity", [inputs[0][0]], [o[0]]) for o in outputs]
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", ins, outs),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_onnx_models_of_the_wrong_shape(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ModelFileError, match="expected one input"):
        load_backend(_onnx_with(tmp_path, [("x", [1, 10])], [("y", [1, 10])]))
    with pytest.raises(ModelFileError, match="expected one output"):
        load_backend(_onnx_with(tmp_path, [("x", [1, 3, 32, 32])], [("a", [1, 3, 32, 32]), ("b", [1, 3, 32, 32])]))


def test_cuda_without_a_cuda_provider_is_an_error_not_a_cpu_fallback(tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendUnavailableError, match="no CUDAExecutionProvider: .*onnxruntime-gpu"):
        load_backend(tiny_onnx, device="cuda")


def test_missing_torch_names_the_extra(monkeypatch, tiny_checkpoint):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'yolox-deploy\[torch\]'"):
        load_backend(tiny_checkpoint)


def test_torch_gpu_options_need_cuda(tiny_checkpoint):
    pytest.importorskip("torch")
    for options in ({"half": True}, {"cuda_graph": True}):
        with pytest.raises(BackendUnavailableError, match="need device='cuda'"):
            load_backend(tiny_checkpoint, **options)
    backend = load_backend(tiny_checkpoint, channels_last=True)  # a memory format: fine on the CPU too
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32)
    np.testing.assert_allclose(backend.infer(x), load_backend(tiny_checkpoint).infer(x), atol=1e-3)


@pytest.mark.gpu
def test_torch_cuda_fp16_and_cuda_graph_match_fp32(tiny_checkpoint):  # pragma: no cover - needs a GPU
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    x = np.random.default_rng(0).uniform(0, 255, (4, 3, 64, 96)).astype(np.float32)
    want = load_backend(tiny_checkpoint).infer(x)
    for options in ({}, {"half": True, "channels_last": True}, {"cuda_graph": True}):
        got = load_backend(tiny_checkpoint, device="cuda", **options).infer(x)
        assert np.abs(got[..., 4:] - want[..., 4:]).max() < (2e-2 if options.get("half") else 1e-3)


def test_onnxruntime_states_fp32_arithmetic(tiny_onnx):
    """ONNX Runtime's CPU provider is FP32 everywhere; the one CPU-dependent switch (bf16
    fast-math GEMMs on ARM64) is set off explicitly in every session we open."""
    backend = load_backend(tiny_onnx)
    options = backend.session.get_session_options()
    assert options.get_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16") == "0"
    assert backend.precision == "fp32"
    with pytest.raises(BackendUnavailableError, match="the onnxruntime backend computes in fp32, not bf16; use "
                                                      "precision='fp32', or a backend that offers bf16: openvino"):
        load_backend(tiny_onnx, precision="bf16")


def test_torch_reference_is_ieee_fp32_even_if_the_process_lowered_it(tiny_checkpoint):
    torch = pytest.importorskip("torch")
    from yolox_deploy.runtimes.torch import pin_ieee_fp32

    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 96)).astype(np.float32)
    want = load_backend(tiny_checkpoint).infer(x)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # lets oneDNN/cuBLAS use bf16/TF32 for FP32 matmuls
    if hasattr(torch.backends.mkldnn, "conv"):
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
    try:
        backend = load_backend(tiny_checkpoint)
        if hasattr(torch.backends.mkldnn, "conv"):
            assert torch.backends.mkldnn.conv.fp32_precision == "ieee"
            assert torch.backends.mkldnn.matmul.fp32_precision == "ieee"
        else:
            assert torch.get_float32_matmul_precision() == "highest"
        np.testing.assert_array_equal(backend.infer(x), want)
        assert pin_ieee_fp32(torch, on_cuda=False) == {}  # already pinned: nothing changes
    finally:
        torch.set_float32_matmul_precision(before)
