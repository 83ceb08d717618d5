"""A Triton Inference Server model repository: ONNX model + python postprocess + ensemble.

The configs are built as Triton's own ``ModelConfig`` protobuf messages (from
``tritonclient``) and written in protobuf text format, so they follow the schema by
construction; see :mod:`yolox_deploy.integrations.triton` for the layout.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..artifacts.staging import staged_into
from ..errors import YoloxDeployError
from ..integrations.triton import ENSEMBLE_OUTPUTS, MODEL_PY, PostprocessSettings
from ..runtimes.triton import PARAM_PREFIX
from .onnx import export_onnx
from .registry import register

INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "auto": "KIND_AUTO"}


@dataclasses.dataclass(frozen=True)
class TritonExportReport:
    repo: Path
    models: tuple[str, ...]
    max_batch: int
    end_to_end: dict[str, Any] | None = None  # the baked NMS settings of an end-to-end repository

    def summary(self) -> str:
        kind = (f"end-to-end ONNX, NMS inside: conf {self.end_to_end.get('conf')}, iou {self.end_to_end.get('iou')}, "
                f"max_det {self.end_to_end.get('max_det')}; " if self.end_to_end is not None else "")
        return (f"wrote Triton model repository {self.repo} ({', '.join(self.models)}; {kind}max batch "
                f"{self.max_batch}); serve it with: tritonserver --model-repository={self.repo.resolve()}")


def _tensor(mc: Any, name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
    return {"name": name, "data_type": getattr(mc, dtype), "dims": dims}


def _parameters(config: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = value


def _batching(config: Any, max_batch: int) -> None:
    if max_batch > 0:
        config.dynamic_batching.max_queue_delay_microseconds = 100


def onnx_config(mc: Any, name: str, max_batch: int, input_hw: tuple[int, int], anchors: int, columns: int,
                instances: int, kind: str, metadata_props: dict[str, str]) -> Any:
    config = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch)
    lead = [] if max_batch > 0 else [1]
    config.input.add(**_tensor(mc, "images", "TYPE_FP32", lead + [3, *input_hw]))
    config.output.add(**_tensor(mc, "output", "TYPE_FP32", lead + [anchors, columns]))
    _batching(config, max_batch)
    config.instance_group.add(count=instances, kind=getattr(mc.ModelInstanceGroup, INSTANCE_KINDS[kind]))
    _parameters(config, {PARAM_PREFIX + k: v for k, v in metadata_props.items()})
    return config


def postprocess_config(mc: Any, name: str, max_batch: int, anchors: int, columns: int, instances: int,
                       settings: PostprocessSettings) -> Any:
    config = mc.ModelConfig(name=name, backend="python", max_batch_size=max_batch)
    lead = [] if max_batch > 0 else [1]
    config.input.add(**_tensor(mc, "raw", "TYPE_FP32", lead + [anchors, columns]))
    config.input.add(**_tensor(mc, "ratio", "TYPE_FP32", lead + [1]))
    config.input.add(**_tensor(mc, "image_hw", "TYPE_INT32", lead + [2]))
    _add_detection_outputs(mc, config, lead, settings.max_det)
    _batching(config, max_batch)
    config.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)  # NumPy/C++ on the CPU
    _parameters(config, settings.to_parameters())
    return config


def _add_detection_outputs(mc: Any, config: Any, lead: list[int], max_det: int) -> None:
    config.output.add(**_tensor(mc, "num_detections", "TYPE_INT32", lead + [1]))
    config.output.add(**_tensor(mc, "boxes", "TYPE_FP32", lead + [max_det, 4]))
    config.output.add(**_tensor(mc, "scores", "TYPE_FP32", lead + [max_det]))
    config.output.add(**_tensor(mc, "class_ids", "TYPE_INT32", lead + [max_det]))


def ensemble_config(mc: Any, name: str, raw_model: str, post_model: str, max_batch: int, input_hw: tuple[int, int],
                    max_det: int, metadata_props: dict[str, str]) -> Any:
    config = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=max_batch)
    lead = [] if max_batch > 0 else [1]
    config.input.add(**_tensor(mc, "images", "TYPE_FP32", lead + [3, *input_hw]))
    config.input.add(**_tensor(mc, "ratio", "TYPE_FP32", lead + [1]))
    config.input.add(**_tensor(mc, "image_hw", "TYPE_INT32", lead + [2]))
    _add_detection_outputs(mc, config, lead, max_det)
    first = config.ensemble_scheduling.step.add(model_name=raw_model, model_version=-1)
    first.input_map["images"] = "images"
    first.output_map["output"] = "raw_output"
    second = config.ensemble_scheduling.step.add(model_name=post_model, model_version=-1)
    second.input_map.update({"raw": "raw_output", "ratio": "ratio", "image_hw": "image_hw"})
    second.output_map.update({out: out for out in ENSEMBLE_OUTPUTS})
    _parameters(config, {**{PARAM_PREFIX + k: v for k, v in metadata_props.items()},
                         PARAM_PREFIX + "raw_model": raw_model})
    return config


def end_to_end_config(mc: Any, name: str, max_batch: int, input_hw: tuple[int, int], max_det: int, instances: int,
                      kind: str, metadata_props: dict[str, str]) -> Any:
    """One ONNX model with decode + NMS inside (``yolox-export --nms``): no Python model, no
    ensemble; boxes come back in letterboxed-input pixels."""
    config = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch)
    lead = [] if max_batch > 0 else [1]
    config.input.add(**_tensor(mc, "images", "TYPE_FP32", lead + [3, *input_hw]))
    config.output.add(**_tensor(mc, "num_dets", "TYPE_INT32", lead + [1]))
    config.output.add(**_tensor(mc, "boxes", "TYPE_FP32", lead + [max_det, 4]))
    config.output.add(**_tensor(mc, "scores", "TYPE_FP32", lead + [max_det]))
    config.output.add(**_tensor(mc, "class_ids", "TYPE_INT32", lead + [max_det]))
    _batching(config, max_batch)
    config.instance_group.add(count=instances, kind=getattr(mc.ModelInstanceGroup, INSTANCE_KINDS[kind]))
    _parameters(config, {PARAM_PREFIX + k: v for k, v in metadata_props.items()})
    return config


def write_config(folder: Path, config: Any) -> None:
    from google.protobuf import text_format

    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(config), encoding="utf-8")


@register("triton", source="checkpoint")
def export_triton(output: str | Path, weights: str | Path | None = None, max_batch: int = 8, instances: int = 1,
                  instance_kind: str = "cpu", name: str = "yolox", conf: float = 0.25, iou: float = 0.45,
                  max_det: int = 100, class_agnostic: bool = False, half: bool = False, int8: bool = False,
                  nms: str | None = None, agnostic: bool = False, **onnx_options: Any) -> TritonExportReport:
    """Write a Triton model repository at ``output`` (a folder) from a ``.pth`` (exported to
    a dynamic-batch ONNX) or an ``.onnx`` (its batch must be dynamic when ``max_batch`` > 0).
    With ``nms="onnx"`` (or an end-to-end ``.onnx``) the repository holds that one ONNX model,
    decode and NMS inside it, and no Python model."""
    require("tritonclient.grpc", extra="triton", purpose="the Triton export (Triton's ModelConfig schema)")
    import tritonclient.grpc.model_config_pb2 as mc

    from ..runtimes import load_backend

    if half or int8:
        raise YoloxDeployError("--to triton serves the FP32 ONNX; for FP16/INT8 on GPU serve a TensorRT plan")
    if instance_kind not in INSTANCE_KINDS:
        raise YoloxDeployError(f"instance kind must be one of {', '.join(INSTANCE_KINDS)}, got {instance_kind!r}")
    if max_batch < 0 or instances < 1 or max_det < 1:
        raise YoloxDeployError(f"need max_batch >= 0, instances >= 1, max_det >= 1 (got {max_batch}, {instances}, "
                               f"{max_det})")
    class_agnostic = class_agnostic or agnostic
    if nms == "trt":
        raise YoloxDeployError("--nms trt writes a TensorRT plugin node that Triton's onnxruntime backend cannot run; "
                               "use --nms (ONNX NonMaxSuppression) for --to triton")
    repo = Path(output)
    for key in ("dynamic", "batch"):  # the batch dimension follows max_batch
        onnx_options.pop(key, None)
    if nms:
        onnx_options.update(nms=nms, conf=conf, iou=iou, max_det=max_det, agnostic=class_agnostic)
    raw_name, post_name = f"{name}_onnx", f"{name}_postprocess"
    # the three model folders replace their namesakes in the repository only once all are written
    with staged_into(repo) as stage, tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        if weights is not None and Path(weights).suffix.lower() == ".onnx":
            shutil.copy(weights, onnx_path)
        else:
            export_onnx(onnx_path, weights=weights, dynamic=max_batch > 0, **onnx_options)
        backend = load_backend(onnx_path, backend="onnxruntime", pixel_input=False)
        batch, _, h, w = backend.input_shape
        if max_batch > 0 and batch is not None:
            raise YoloxDeployError(f"{Path(weights).name} has a static batch of {batch}: export it with --dynamic, "
                                   "or use --max-batch 0 (no batching)")
        if h is None or w is None:
            raise YoloxDeployError("the ONNX has a dynamic input size; export it with a fixed --input-size")
        if backend.end_to_end:
            baked = backend.metadata.end_to_end or {}
            out = backend.infer_end_to_end(np.zeros((1, 3, h, w), np.float32))
            write_config(stage / name, end_to_end_config(mc, name, max_batch, (h, w), out.boxes.shape[1], instances,
                                                         instance_kind, backend.metadata.to_props()))
            shutil.copy(onnx_path, stage / name / "1" / "model.onnx")
            return TritonExportReport(repo, (name,), max_batch, end_to_end=baked)
        raw = backend.infer(np.zeros((1, 3, h, w), np.float32))
        anchors, columns = raw.shape[1:]
        metadata = backend.metadata
        settings = PostprocessSettings((h, w), tuple(metadata.strides), float(conf), float(iou), int(max_det),
                                       bool(class_agnostic))
        props = metadata.to_props()
        write_config(stage / raw_name, onnx_config(mc, raw_name, max_batch, (h, w), anchors, columns, instances,
                                                   instance_kind, props))
        shutil.copy(onnx_path, stage / raw_name / "1" / "model.onnx")
        write_config(stage / post_name, postprocess_config(mc, post_name, max_batch, anchors, columns, instances,
                                                           settings))
        (stage / post_name / "1" / "model.py").write_text(MODEL_PY, encoding="utf-8")
        write_config(stage / name, ensemble_config(mc, name, raw_name, post_name, max_batch, (h, w), max_det, props))
    return TritonExportReport(repo, (name, raw_name, post_name), max_batch)


__all__ = ["export_triton"]
