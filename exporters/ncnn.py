"""PyTorch -> TorchScript -> pnnx -> ncnn ``.param`` + ``.bin`` (+ a sidecar ``.json``).

ncnn has no strided slice, which the Focus stem of the CSPDarknet variants uses. Before
tracing, each Focus is rewritten into ops ncnn has (``pixel_unshuffle`` -> ncnn Reorg,
then a fixed channel reordering by split + concat); the rewrite is pure data movement,
and the export checks that it is bit-exact before converting.
"""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.metadata import ModelMetadata
from ..artifacts.sidecar import sidecar_path
from ..artifacts.staging import staged_into
from ..coco import default_class_names
from ..errors import YoloxDeployError
from ..processing.preprocess import check_input_size
from ..runtimes.ncnn import NcnnBackend, unsupported_layers, write_ncnn_sidecar
from .onnx import resolve_model
from .registry import register

FP32_TOLERANCE = 1e-3  # ncnn vs PyTorch, random 0-255 input; float32 reordering stays far below
INPUT_BLOB, OUTPUT_BLOB = "in0", "out0"  # the names pnnx gives a one-input, one-output graph


def space_to_depth_by_planes(x: Any) -> Any:
    """The Focus slicing as ops ncnn has: [B, C, H, W] -> [B, 4C, H/2, W/2], same order as
    :func:`yolox_deploy.models.blocks.space_to_depth` (pixel_unshuffle gives plane
    ``c*4 + dy*2 + dx``; Focus wants ``(dx*2 + dy)*C + c``)."""
    import torch
    import torch.nn.functional as F

    channels = x.shape[1]
    planes = torch.split(F.pixel_unshuffle(x, 2), 1, dim=1)
    order = [c * 4 + dy * 2 + dx for dx in (0, 1) for dy in (0, 1) for c in range(channels)]
    return torch.cat([planes[i] for i in order], dim=1)


def ncnn_compatible(model: Any) -> Any:
    """A copy of ``model`` whose Focus stems use :func:`space_to_depth_by_planes`."""
    from torch import nn

    from ..models.blocks import Focus

    class PlaneFocus(nn.Module):
        def __init__(self, focus: Focus):
            super().__init__()
            self.conv = focus.conv

        def forward(self, x):
            return self.conv(space_to_depth_by_planes(x))

    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Focus):
                setattr(parent, name, PlaneFocus(child))
    return model


def check_rewrite_is_exact(original: Any, rewritten: Any, x: Any) -> None:
    import torch

    from ..models.blocks import space_to_depth

    with torch.inference_mode():
        same_stem = torch.equal(space_to_depth(x), space_to_depth_by_planes(x))
        same_model = torch.equal(original(x), rewritten(x))
    if not (same_stem and same_model):
        raise YoloxDeployError("the ncnn-compatible Focus rewrite is not exact for this model; please report it")


def run_pnnx(pnnx: Any, torchscript: Path, input_shape: Sequence[int], param: Path, weights: Path,
             fp16: bool, workdir: Path) -> None:
    """Convert a TorchScript file with the pnnx executable (not its Python wrapper, which
    imports the Python file pnnx generates); its side outputs stay in ``workdir``."""
    shape = "[" + ",".join(str(int(d)) for d in input_shape) + "]f32"
    side = {key: workdir / f"model{suffix}" for key, suffix in (
        ("pnnxparam", ".pnnx.param"), ("pnnxbin", ".pnnx.bin"), ("pnnxpy", "_pnnx.py"),
        ("pnnxonnx", ".pnnx.onnx"), ("ncnnpy", "_ncnn.py"))}
    command = [pnnx.EXEC_PATH, str(torchscript), f"inputshape={shape}", "device=cpu", "optlevel=2",
               f"fp16={int(fp16)}", f"ncnnparam={param}", f"ncnnbin={weights}",
               *(f"{key}={path}" for key, path in side.items())]
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    if done.returncode != 0 or not param.is_file() or not weights.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise YoloxDeployError(f"pnnx failed (exit {done.returncode}): {tail[0][:300]}")


def ncnn_layer_count(param: Path) -> int:
    header = param.read_text(encoding="utf-8", errors="replace").splitlines()[1]
    return int(header.split()[0])


@dataclasses.dataclass(frozen=True)
class NcnnExportReport:
    path: Path
    precision: str
    input_size: tuple[int, int]
    layers: int
    max_abs_diff: float  # ncnn (FP32 arithmetic) vs PyTorch raw output, random 0-255 input

    def summary(self) -> str:
        return (f"exported ncnn ({self.precision} weights, {self.layers} layers) to {self.path} "
                f"(+ {self.path.with_suffix('.bin').name}, {sidecar_path(self.path).name}), input "
                f"{self.input_size[0]}x{self.input_size[1]}; max abs diff vs PyTorch {self.max_abs_diff:.2e}")


@register("ncnn")
def export_ncnn(output: str | Path, weights: str | Path | None = None, model_name: str | None = None,
                input_size: Sequence[int] | None = None, half: bool = False, int8: bool = False,
                class_names: Sequence[str] | None = None, depth: float | None = None,
                width: float | None = None, depthwise: bool = False, num_classes: int | None = None,
                seed: int = 0, batch: int = 1, dynamic_hw: bool = False, nms: str | None = None,
                conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                **_: Any) -> NcnnExportReport:
    """Export a checkpoint (or a seeded random variant) to ncnn at a fixed input size.

    Writes ``OUTPUT.param``, ``OUTPUT.bin`` and the sidecar ``OUTPUT.json`` (metadata, blob
    names, checksums). ``half`` stores FP16 weights (half the file; inference arithmetic
    is chosen at load time). The model takes one BGR 0-255 image [3, H, W] per call.
    """
    if nms:
        raise YoloxDeployError("--nms: ncnn has no NonMaxSuppression layer, so an end-to-end model cannot be "
                               "converted; export the raw model (the shared postprocess runs after ncnn)")
    torch = require("torch", extra="ncnn-export", purpose="the ncnn export")
    pnnx = require("pnnx", extra="ncnn-export", purpose="the ncnn export (pnnx converter)")
    ncnn = require("ncnn", extra="ncnn", purpose="the ncnn export check")
    if int8:
        raise YoloxDeployError("ncnn INT8 is not supported by yolox-export; use --half for FP16 weights "
                               "(or quantize the FP32 export with ncnn2table/ncnn2int8)")
    if batch != 1 or dynamic_hw:
        raise YoloxDeployError("ncnn runs one image per call at the exported input size: drop --batch and "
                               "--dynamic-hw (the ncnn backend takes any batch, image by image)")
    if weights is not None and Path(weights).suffix.lower() != ".pth":
        raise YoloxDeployError(f"--to ncnn converts a PyTorch checkpoint (.pth), got {Path(weights).name}")
    model, spec = resolve_model(weights, model_name, depth, width, depthwise, num_classes, seed)
    model.eval()
    h, w = check_input_size(input_size or spec.input_size)
    names = tuple(class_names) if class_names else default_class_names(model.head.num_classes)
    if len(names) != model.head.num_classes:
        raise YoloxDeployError(f"{len(names)} class names for a head with {model.head.num_classes} classes")
    final = Path(output).with_suffix(".param").resolve()  # pnnx runs in a temporary folder
    x = torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (1, 3, h, w)).astype(np.float32))
    rewritten = ncnn_compatible(model)
    check_rewrite_is_exact(model, rewritten, x)
    with staged_into(final.parent) as stage:
        param = stage / final.name
        convert_with_pnnx(torch, pnnx, rewritten, param, (h, w), half)
        unknown = unsupported_layers(ncnn, param)
        if unknown:
            raise YoloxDeployError(f"pnnx produced layers ncnn does not have: {', '.join(unknown)}; please report it")
        defaults = {k: v for k, v in (("conf", conf), ("iou", iou), ("max_det", max_det)) if v is not None}
        metadata = ModelMetadata(model_name=spec.name, input_size=(h, w), class_names=names, defaults=defaults or None)
        write_ncnn_sidecar(param, metadata, INPUT_BLOB, OUTPUT_BLOB, weights_fp16=half,
                           converter=f"pnnx {getattr(pnnx, '__version__', 'unknown')}")
        with torch.inference_mode():
            want = model(x).numpy()
        got = NcnnBackend(param, precision="fp32").infer(x.numpy())  # FP32 arithmetic whatever the CPU has
        diff = float(np.abs(got - want).max())
        if not half and not diff <= FP32_TOLERANCE:
            raise YoloxDeployError(f"the ncnn model differs from PyTorch by {diff:.3e}; please report it")
        layers = ncnn_layer_count(param)
    return NcnnExportReport(final, "FP16" if half else "FP32", (h, w), layers, diff)


def convert_with_pnnx(torch: Any, pnnx: Any, model: Any, param: Path, input_hw: tuple[int, int], half: bool) -> None:
    """Trace ``model`` and convert it to ``param`` + its ``.bin`` with pnnx."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pnnx reads TorchScript; trace it is
            traced = torch.jit.trace(model, (torch.zeros(1, 3, *input_hw),), check_trace=False)
        traced.save(str(workdir / "model.pt"))
        run_pnnx(pnnx, workdir / "model.pt", (1, 3, *input_hw), param, param.with_suffix(".bin"), half, workdir)
