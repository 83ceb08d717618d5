"""aarch64 (Jetson-class and Graviton CPUs), run under emulation by ``.ci/arm64``: the same
answers as x86, with every runtime's precision stated. The x86 side comes from the host as
files (``arm64_reference.py``) in ``$YOLOX_DEPLOY_ARM64_REFERENCE``. On any other machine
these tests are skipped: they run in the emulated stage of CI."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arm64_reference import (EVAL_SETTINGS, IMAGES, asset_paths, coco_map_of_raw, letterboxed_inputs, open_backend,
                             raw_outputs)

pytestmark = [pytest.mark.arm64,
              pytest.mark.skipif(platform.machine() != "aarch64", reason="runs on aarch64 (.ci/arm64 emulates one)")]

# Measured under emulation (docs/platforms.md): scores within 3.8e-5 of x86, box offsets within
# 3.0e-4 grid cells (float32 sums in another order: NEON vs AVX kernels)
SCORE_TOLERANCE = 1e-4  # objectness and class scores, in [0, 1]
BOX_TOLERANCE = 5e-4  # raw x, y, log w, log h offsets, in grid cells: 0.016 px at stride 32
MAP_TOLERANCE = 1e-4  # COCO mAP50-95 and mAP50 of the raw outputs on the same inputs
# The letterbox is the shared core's integer resize, byte-identical on both (its own test). The mAP
# check runs on the x86-letterboxed inputs all the same, so that only the runtimes' and the kernel's
# arithmetic can differ (docs/platforms.md).


@pytest.fixture(scope="module")
def reference() -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = os.environ.get("YOLOX_DEPLOY_ARM64_REFERENCE")
    if not folder or not (Path(folder) / "reference.json").is_file():
        pytest.fail("YOLOX_DEPLOY_ARM64_REFERENCE must name the folder tests/platforms/arm64_reference.py wrote "
                    "on the x86 host (.ci/arm64 does this)")
    folder = Path(folder)
    with np.load(folder / "reference.npz") as arrays:
        return folder, json.loads((folder / "reference.json").read_text()), dict(arrays)


@pytest.fixture(scope="module")
def paths(assets) -> dict[str, Path]:
    return asset_paths(assets)


@pytest.fixture(scope="module")
def aarch64_raw(reference, paths) -> dict[str, np.ndarray]:
    """Each runtime's raw outputs here on the x86-letterboxed inputs (computed once: inference is
    what costs time under emulation)."""
    folder, _, arrays = reference
    models = {"onnxruntime": paths["onnx"], "ncnn": folder / "nano_ncnn.param"}
    return {runtime: raw_outputs(model, arrays["inputs"]) for runtime, model in models.items()}


def test_the_reference_is_from_x86(reference):
    _, summary, arrays = reference
    assert summary["machine"] == "x86_64" and arrays["inputs"].shape == (IMAGES, 3, 416, 416)


def test_letterbox_equals_x86_byte_for_byte(reference, paths):
    """The shared core's integer resize (cpp/core/letterbox.cpp), not OpenCV's NEON code."""
    here, there = letterboxed_inputs(paths["images"]), reference[2]["inputs"]
    assert here.tobytes() == there.tobytes(), (np.abs(here - there).max(), (here != there).mean())


@pytest.mark.parametrize("runtime", ["onnxruntime", "ncnn"])
def test_fp32_raw_outputs_equal_x86(reference, aarch64_raw, runtime):
    """On the same (x86-letterboxed) inputs, the runtimes' raw outputs equal x86's."""
    here, there = aarch64_raw[runtime], reference[2][runtime]
    scores = float(np.abs(here[..., 4:] - there[..., 4:]).max())
    boxes = float(np.abs(here[..., :4] - there[..., :4]).max())
    assert scores <= SCORE_TOLERANCE and boxes <= BOX_TOLERANCE, \
        f"{runtime} aarch64 vs x86: scores max |diff| {scores:.3g}, box offsets {boxes:.3g}"


def test_onnxruntime_pixel_input_equals_its_float_input_here(reference, paths):
    """The default ONNX Runtime backend takes uint8 pixels and casts them inside the graph: on
    aarch64 too, that gives exactly the float input's outputs."""
    from yolox_deploy.runtimes import load_backend

    inputs = reference[2]["inputs"][:3]
    pixels = np.ascontiguousarray(inputs.transpose(0, 2, 3, 1).astype(np.uint8))
    native = load_backend(paths["onnx"], threads=2)
    assert native.native_pixels
    from_pixels = np.concatenate([native.infer(pixels[i:i + 1]) for i in range(len(pixels))])  # static batch 1
    np.testing.assert_array_equal(from_pixels, raw_outputs(paths["onnx"], inputs))


def test_the_kernel_equals_numpy_on_these_outputs(reference):
    from yolox_deploy.processing.postprocess import postprocess

    _, _, arrays = reference
    raw = np.concatenate([arrays["onnxruntime"], arrays["ncnn"]])
    ratios, shapes = [0.65] * len(raw), [(480, 640)] * len(raw)
    for conf, iou, agnostic in ((0.01, 0.65, False), (0.25, 0.45, False), (0.001, 0.5, True)):
        cpp = postprocess(raw, (416, 416), ratios, shapes, conf=conf, iou=iou, class_agnostic=agnostic,
                          max_det=None, impl="cpp")
        ref = postprocess(raw, (416, 416), ratios, shapes, conf=conf, iou=iou, class_agnostic=agnostic,
                          max_det=None, impl="numpy")
        for (b1, s1, c1), (b2, s2, c2) in zip(cpp, ref):
            np.testing.assert_array_equal(c1, c2)
            np.testing.assert_array_equal(s1, s2)
            np.testing.assert_allclose(b1, b2, rtol=0, atol=1e-4)


def test_ncnn_states_every_precision_switch(reference):
    backend = open_backend(reference[0] / "nano_ncnn.param")
    opt = backend.net.opt
    stated = {flag: getattr(opt, flag) for flag in backend.LOW_PRECISION_SWITCHES if hasattr(opt, flag)}
    assert {"use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"} <= set(stated)
    assert not any(stated.values()), stated


def test_an_fp16_default_would_not_pass_the_raw_check(reference):
    """The check above can fail: ncnn's own defaults (FP16 storage and arithmetic where this
    CPU has them) move the raw outputs far beyond the FP32 tolerance."""
    folder, _, arrays = reference
    fp16 = raw_outputs(folder / "nano_ncnn.param", arrays["inputs"][:2], precision="fp16")
    scores = float(np.abs(fp16[..., 4:] - arrays["ncnn"][:2, ..., 4:]).max())
    assert scores > 10 * SCORE_TOLERANCE, f"fp16 on this CPU only moved the scores by {scores:.3g}"


@pytest.mark.parametrize("runtime", ["onnxruntime", "ncnn"])
def test_coco_map_equals_x86(reference, aarch64_raw, runtime):
    """The raw outputs here, decoded here by the shared postprocess (the aarch64 kernel) at the
    official evaluator's settings, score x86's COCO mAP on the same images."""
    folder, summary, arrays = reference
    here = coco_map_of_raw(aarch64_raw[runtime], arrays["ratios"], arrays["sizes"], summary["images"],
                           folder / "coco_subset.json")
    there = summary["map"][runtime]
    assert 0.2 < there["mAP50_95"] < 0.6, there  # the detector works: not a match of two empty results
    assert abs(here["mAP50_95"] - there["mAP50_95"]) <= MAP_TOLERANCE, (here, there, EVAL_SETTINGS)
    assert abs(here["mAP50"] - there["mAP50"]) <= MAP_TOLERANCE, (here, there)


def test_the_kernel_is_built_for_aarch64():
    from yolox_deploy.processing import _kernel
    from yolox_deploy.processing.postprocess import kernel_available

    assert kernel_available() and "aarch64" in Path(_kernel.__file__).name


OPENVINO_PROBE = r"""
import sys
import numpy as np
import openvino as ov
original = ov.Core.compile_model
def recording(self, model, device_name=None, config=None, *args, **kwargs):
    print("compile_model", device_name, sorted((config or {}).items()), flush=True)
    return original(self, model, device_name, config, *args, **kwargs)
ov.Core.compile_model = recording
print("devices", ov.Core().available_devices, flush=True)
from yolox_deploy import Detector
from yolox_deploy.runtimes.openvino import compiled_precision
det = Detector(sys.argv[1], threads=2)
print("compiled precision", [compiled_precision(c) for c in det.backend._compiled.values()], flush=True)
print("detections", len(det(np.zeros((416, 416, 3), np.uint8))), flush=True)
"""


def test_openvino_is_asked_for_f32_and_runs_or_is_a_known_emulator_fault(reference):
    """OpenVINO's ARM CPU plugin defaults to f16; ours is asked for f32 on every compile. Under
    qemu-user the plugin may die with SIGSEGV (docs/platforms.md has the evidence): that, and
    only that, skips the rest of this test, after the compile call's config was printed."""
    pytest.importorskip("openvino")
    run = subprocess.run([sys.executable, "-c", OPENVINO_PROBE, str(reference[0] / "nano_openvino.xml")],
                         capture_output=True,
                         text=True, timeout=900)
    compiles = [line for line in run.stdout.splitlines() if line.startswith("compile_model")]
    assert compiles, run.stdout + run.stderr[-2000:]
    assert all("('INFERENCE_PRECISION_HINT', 'f32')" in line for line in compiles), compiles
    if run.returncode == -11 and "qemu: uncaught target signal 11" in run.stderr:
        pytest.skip("OpenVINO's ARM CPU plugin crashed under qemu-user (SIGSEGV) after being asked for f32: "
                    "a limit of the emulator, see docs/platforms.md")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "compiled precision ['f32']" in run.stdout and "detections" in run.stdout, run.stdout
