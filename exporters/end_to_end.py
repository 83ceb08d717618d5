"""Decode + score + filter + NMS appended to a raw YOLOX ONNX (``yolox-export --nms``).

The graph reproduces the shared postprocess (the C++ kernel's semantics, see
:mod:`yolox_deploy.processing.postprocess`) with standard ONNX ops:

- boxes: ``cxcy = (xy + grid) * stride``, ``wh = exp(log wh) * stride``, xyxy in network-input
  (letterboxed) pixels;
- score = objectness x best class score (ArgMax: the first best class, as NumPy's argmax);
  a candidate needs ``score >= conf`` and ``objectness >= conf``;
- NMS: ``NonMaxSuppression`` over a [B, C, N] score tensor holding each anchor's score in its
  best class only (-1 elsewhere and for filtered anchors), so suppression is per class
  without shifting boxes by class offsets (agnostic: one class row); a box is suppressed when
  IoU > iou, and the -1 entries fall below the op's score threshold of -0.5 whether the
  runtime compares with > or >=;
- the kept scores are scattered back to [B, N] and ``TopK`` picks the best ``max_det``: score
  descending, ties by lower anchor index (ONNX's TopK rule, and the kernel's order).

Outputs (TensorRT EfficientNMS / DeepStream layout): ``num_dets`` int32 [B, 1], ``boxes``
float32 [B, max_det, 4], ``scores`` float32 [B, max_det], ``class_ids`` int32 [B, max_det],
zero past ``num_dets``.

``flavor="trt"`` writes an ``EfficientNMS_TRT`` plugin node (domain ``TRT``) instead of the
NMS + TopK tail: for TensorRT users who want the plugin. Only TensorRT runs it, the plugin is
deprecated since TensorRT 10.12, and it is not the shared kernel (keeps IoU >= iou where the
kernel keeps > iou, considers only the 5000 best candidates, breaks score ties in no fixed
order): docs/end_to_end.md. ``--nms onnx`` runs everywhere, TensorRT included.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts.tensorrt_engines import TRT_TOPK_LIMIT  # EfficientNMS_TRT keeps at most as many boxes
from ..errors import YoloxDeployError
from ..processing.end_to_end import END_TO_END_OUTPUTS
from ..processing.grids import anchor_grid, num_anchors

MASKED = -1.0
NMS_SCORE_THRESHOLD = -0.5
# Below this score threshold EfficientNMS_TRT takes its dense path (efficientNMSInference.cu,
# kernelSelectThreshold): every anchor x class is a candidate, those under the threshold with score
# -32768, and they fill the outputs and count in num_detections when fewer real ones remain.
TRT_DENSE_PATH_CONF = 0.007
TRT_DEPRECATION = ("--nms trt writes the EfficientNMS_TRT plugin, deprecated since TensorRT 10.12 (to be removed); "
                   "--nms onnx builds on TensorRT too and gives the shared kernel's detections")


@dataclasses.dataclass(frozen=True)
class NmsSettings:
    """Thresholds baked into an end-to-end graph (and recorded in its metadata)."""

    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 100
    agnostic: bool = False
    flavor: str = "onnx"  # "onnx": NonMaxSuppression + TopK; "trt": the EfficientNMS_TRT plugin

    def check(self) -> None:
        if not 0 <= self.conf <= 1:
            raise YoloxDeployError(f"--conf must be in [0, 1], got {self.conf}")
        if not 0 <= self.iou <= 1:
            raise YoloxDeployError(f"--iou must be in [0, 1], got {self.iou}")
        if self.max_det < 1:
            raise YoloxDeployError(f"--max-det must be >= 1, got {self.max_det}")
        if self.flavor not in ("onnx", "trt"):
            raise YoloxDeployError(f"--nms takes 'onnx' or 'trt', got {self.flavor!r}")
        if self.flavor == "trt":
            self._check_efficient_nms()

    def _check_efficient_nms(self) -> None:
        """What EfficientNMS_TRT refuses or gets wrong (efficientNMSPlugin.cpp, efficientNMSInference.cu)."""
        if self.max_det > TRT_TOPK_LIMIT:
            raise YoloxDeployError(f"--nms trt: EfficientNMS_TRT keeps at most {TRT_TOPK_LIMIT} boxes, got --max-det "
                                   f"{self.max_det}")
        if not self.iou > 0:
            raise YoloxDeployError(f"--nms trt: EfficientNMS_TRT needs --iou > 0 (its plugin refuses {self.iou:g} "
                                   "and the engine would not build); give --iou > 0, or use --nms onnx")
        if self.conf < TRT_DENSE_PATH_CONF:
            raise YoloxDeployError(f"--nms trt: below --conf {TRT_DENSE_PATH_CONF} EfficientNMS_TRT pads its outputs "
                                   "with score -32768 entries that num_detections counts; give --conf >= "
                                   f"{TRT_DENSE_PATH_CONF}, or use --nms onnx (any --conf)")

    def record(self) -> dict[str, Any]:
        return {"layout": list(END_TO_END_OUTPUTS), "boxes": "xyxy, letterboxed-input pixels", **dataclasses.asdict(self)}


class _Graph:
    """Appends nodes with unique names (prefix ``nms/``) and collects initializers."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"nms/{hint}_{self._count}"

    def const(self, hint: str, value: Any, dtype: Any = None) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, outputs: int = 1,
           out_names: Sequence[str] | None = None, domain: str = "", **attrs: Any) -> Any:
        from onnx import helper

        names = list(out_names) if out_names else [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.name(op_type), domain=domain,
                                           **attrs))
        return names[0] if outputs == 1 else names


def opset_of(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _decode(g: _Graph, raw: str, input_hw: tuple[int, int], strides: Sequence[int],
            opset: int) -> tuple[str, str, str, str]:
    """(boxes xyxy [B,N,4], objectness [B,N,1], best class score [B,N,1], best class [B,N,1] int64)."""
    grid, stride = anchor_grid(tuple(input_hw), tuple(strides))
    axis = g.const("axis2", [2], np.int64)

    def part(lo: int, hi: int, hint: str) -> str:
        return g.op("Slice", [raw, g.const("lo", [lo], np.int64), g.const("hi", [hi], np.int64), axis], hint)

    xy, wh, obj, cls = part(0, 2, "xy"), part(2, 4, "wh"), part(4, 5, "obj"), part(5, np.iinfo(np.int64).max, "cls")
    grid_c, stride_c = g.const("grid", grid[None], np.float32), g.const("stride", stride[None], np.float32)
    cxcy = g.op("Mul", [g.op("Add", [xy, grid_c]), stride_c], "cxcy")
    half = g.op("Mul", [g.op("Mul", [g.op("Exp", [wh]), stride_c]), g.const("half", 0.5, np.float32)], "half_wh")
    boxes = g.op("Concat", [g.op("Sub", [cxcy, half]), g.op("Add", [cxcy, half])], "boxes", axis=2)
    if opset >= 18:  # ReduceMax's axes became an input
        best = g.op("ReduceMax", [cls, g.const("axes", [2], np.int64)], "best_score", keepdims=1)
    else:
        best = g.op("ReduceMax", [cls], "best_score", axes=[2], keepdims=1)
    best_class = g.op("ArgMax", [cls], "best_class", axis=2, keepdims=1)
    return boxes, obj, best, best_class


def _masked_scores(g: _Graph, obj: str, best: str, best_class: str, num_classes: int, settings: NmsSettings,
                   fill: float) -> tuple[str, str]:
    """(score [B,N,1], per-class score [B,N,C'] holding each passing anchor's score in its best
    class (C' = 1 when agnostic) and ``fill`` elsewhere)."""
    score = g.op("Mul", [obj, best], "score")
    conf = g.const("conf", settings.conf, np.float32)
    passing = g.op("And", [g.op("GreaterOrEqual", [score, conf]), g.op("GreaterOrEqual", [obj, conf])], "pass")
    if not settings.agnostic:
        classes = g.const("classes", np.arange(num_classes, dtype=np.int64)[None, None], np.int64)
        passing = g.op("And", [passing, g.op("Equal", [best_class, classes])], "pass_class")
    return score, g.op("Where", [passing, score, g.const("fill", fill, np.float32)], "masked")


def _onnx_nms_tail(g: _Graph, boxes: str, score: str, masked: str, best_class: str, n: int,
                   settings: NmsSettings) -> None:
    scores_bcn = g.op("Transpose", [masked], "scores_bcn", perm=[0, 2, 1])
    k = min(settings.max_det, n)
    selected = g.op("NonMaxSuppression", [boxes, scores_bcn, g.const("max_per_class", [k], np.int64),
                                          g.const("iou", [settings.iou], np.float32),
                                          g.const("score_threshold", [NMS_SCORE_THRESHOLD], np.float32)], "selected")
    batch_box = g.op("Gather", [selected, g.const("cols", [0, 2], np.int64)], "batch_box", axis=1)  # [K, 2]
    score_bn = g.op("Squeeze", [score, g.const("sq", [2], np.int64)], "score_bn")
    kept_scores = g.op("GatherND", [score_bn, batch_box], "kept_scores")
    dense = g.op("ScatterND", [g.op("Expand", [g.const("masked", MASKED, np.float32), g.op("Shape", [score_bn])]),
                               batch_box, kept_scores], "dense_kept")
    top_scores, top_idx = g.op("TopK", [dense, g.const("k", [k], np.int64)], "top", outputs=2, axis=1, largest=1,
                               sorted=1)
    valid = g.op("Greater", [top_scores, g.const("thr", NMS_SCORE_THRESHOLD, np.float32)], "valid")
    idx4 = g.op("Expand", [g.op("Unsqueeze", [top_idx, g.const("ax2", [2], np.int64)]),
                           g.op("Concat", [g.op("Shape", [top_idx]), g.const("four", [4], np.int64)], axis=0)], "idx4")
    top_boxes = g.op("GatherElements", [boxes, idx4], "top_boxes", axis=1)
    classes_bn = g.op("Squeeze", [best_class, g.const("sq2", [2], np.int64)], "classes_bn")
    top_classes = g.op("Cast", [g.op("GatherElements", [classes_bn, top_idx], axis=1)], "top_classes", to=6)
    zero_f, zero_i = g.const("zero", 0.0, np.float32), g.const("zero_i", 0, np.int32)
    out_boxes = g.op("Where", [g.op("Unsqueeze", [valid, g.const("ax2b", [2], np.int64)]), top_boxes, zero_f])
    out_scores = g.op("Where", [valid, top_scores, zero_f])
    out_classes = g.op("Where", [valid, top_classes, zero_i])
    num = g.op("ReduceSum", [g.op("Cast", [valid], to=6), g.const("ax1", [1], np.int64)], "num", keepdims=1)
    pad = settings.max_det - k
    finals = [(num, "num_dets")]
    for value, name, rank in ((out_boxes, "boxes", 3), (out_scores, "scores", 2), (out_classes, "class_ids", 2)):
        if pad:
            pads = [0, 0] + [0] * (rank - 2) + [0, pad] + [0] * (rank - 2)
            value = g.op("Pad", [value, g.const("pads", pads, np.int64)], "padded")
        finals.append((value, name))
    for value, name in finals:
        g.op("Identity", [value], out_names=[name])


def _efficient_nms_tail(g: _Graph, boxes: str, masked: str, settings: NmsSettings) -> None:
    """EfficientNMS_TRT (plugin_version 1): inputs boxes [B,N,4] corners and scores [B,N,C];
    outputs num_detections, detection_boxes, detection_scores, detection_classes, renamed to
    our layout. Filtered anchors score 0 and the plugin keeps ``score >= score_threshold``
    (its filter's ``gte_mp``), so a threshold of conf keeps exactly the kernel's candidates."""
    g.op("EfficientNMS_TRT", [boxes, masked], out_names=list(END_TO_END_OUTPUTS), domain="TRT",
         background_class=-1, box_coding=0, iou_threshold=float(settings.iou), max_output_boxes=settings.max_det,
         plugin_version="1", score_activation=0, score_threshold=float(settings.conf),
         class_agnostic=int(settings.agnostic))


def add_end_to_end(model: Any, input_hw: tuple[int, int], strides: Sequence[int], num_classes: int,
                   settings: NmsSettings) -> Any:
    """``model`` (a raw YOLOX ONNX, output [B, N, 5 + C]) with the end-to-end tail; its raw
    output is no longer a graph output."""
    from onnx import TensorProto, helper

    from .quantize import with_qdq_opset

    settings.check()
    model = with_qdq_opset(model, "the model", needed_for="the end-to-end tail (Squeeze/ReduceSum with axes inputs)")
    graph = model.graph
    if len(graph.output) != 1:
        raise YoloxDeployError(f"--nms needs a raw YOLOX ONNX (one output [B, N, 5 + C]), this one has "
                               f"{[o.name for o in graph.output]}")
    n = num_anchors(tuple(input_hw), tuple(strides))
    raw = graph.output[0].name
    g = _Graph()
    boxes, obj, best, best_class = _decode(g, raw, input_hw, strides, opset_of(model))
    if settings.flavor == "trt":
        _, masked = _masked_scores(g, obj, best, best_class, num_classes, dataclasses.replace(settings, agnostic=False),
                                   0.0)
        _efficient_nms_tail(g, boxes, masked, settings)
    else:
        score, masked = _masked_scores(g, obj, best, best_class, num_classes, settings, MASKED)
        _onnx_nms_tail(g, boxes, score, masked, best_class, n, settings)
    graph.node.extend(g.nodes)
    graph.initializer.extend(g.initializers)
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    b = batch.dim_param or batch.dim_value or "batch"
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [b, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [b, settings.max_det, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b, settings.max_det]),
        helper.make_tensor_value_info("class_ids", TensorProto.INT32, [b, settings.max_det])])
    if settings.flavor == "trt":
        model.opset_import.append(helper.make_opsetid("TRT", 1))
    return model


def end_to_end_detections(outputs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(num_dets, boxes, scores, class_ids) -> per image (xyxy [K, 4], scores [K], class ids [K])."""
    num, boxes, scores, classes = outputs
    return [(boxes[b, :int(num[b, 0])], scores[b, :int(num[b, 0])], classes[b, :int(num[b, 0])])
            for b in range(num.shape[0])]


def check_end_to_end(raw_path: Any, e2e_path: Any, settings: NmsSettings, input_hw: tuple[int, int],
                     strides: Sequence[int], seed: int = 0) -> str:
    """Run the end-to-end graph and the raw graph + the shared postprocess in ONNX Runtime on
    random inputs; refuse any difference. Returns what was baked and checked."""
    import onnxruntime as ort

    from ..processing.postprocess import postprocess
    from ..runtimes.onnxruntime import fp32_session_options

    baked = (f"end-to-end ({'EfficientNMS_TRT plugin' if settings.flavor == 'trt' else 'ONNX NonMaxSuppression'}"
             f", {'agnostic' if settings.agnostic else 'class-aware'}, conf {settings.conf}, iou {settings.iou}, "
             f"max_det {settings.max_det})")
    if settings.flavor == "trt":
        return baked + "; checked with onnx.checker only (only TensorRT runs the plugin)"
    sessions = [ort.InferenceSession(str(p), fp32_session_options(ort), providers=["CPUExecutionProvider"])
                for p in (raw_path, e2e_path)]
    batch = sessions[0].get_inputs()[0].shape[0]
    batch = batch if isinstance(batch, int) else 2
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch, 3, *input_hw)).astype(np.float32)
    raw = sessions[0].run(None, {sessions[0].get_inputs()[0].name: x})[0]
    want = postprocess(raw, input_hw, [1.0] * batch, None, conf=settings.conf, iou=settings.iou,
                       class_agnostic=settings.agnostic, max_det=settings.max_det, strides=strides)
    got = end_to_end_detections(sessions[1].run(list(END_TO_END_OUTPUTS), {sessions[1].get_inputs()[0].name: x}))
    for (gb, gs, gc), (wb, ws, wc) in zip(got, want):
        if len(gb) != len(wb) or not (np.allclose(gb, wb, atol=1e-3) and np.allclose(gs, ws, atol=1e-5)
                                      and np.array_equal(gc, wc)):
            raise YoloxDeployError("the end-to-end graph's detections differ from the shared postprocess; please "
                                   "report it")
    return baked + f"; equal to raw + the C++ postprocess in ONNX Runtime ({sum(len(w[0]) for w in want)} detections)"
