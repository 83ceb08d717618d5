"""Mixed INT8: when INT8 misses the accuracy bound, keep the convs that hurt most in float,
found by measuring on the calibration images.

The convs are cut, in graph order, into :data:`GROUPS` runs of neighbours. For each run, a
Q/DQ model with only that run quantized is calibrated on :data:`HARM_IMAGES` calibration
images, and its harm is how far its output moves from the FP32 output on those images where the
detections use it (:func:`output_harm`): the scores (objectness x class) at every anchor, since
any anchor can become a false positive, plus the boxes weighted by the FP32 score of their
anchor. (A plain relative L2 over the raw output was dominated by the box regression of thousands
of background anchors, which no detection uses, while the scores that mAP sees barely counted.) The variants keep the most harmful runs float, one more run each
time. (A cheaper ranking, each conv's own output error in the every-conv INT8 model,
was measured first and rejected: with 32 of 113 nano convs kept float by it, mAP did not
recover at all, because it cannot see how an error reaches the boxes and scores.)
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

GROUPS = 12  # runs of neighbouring convs whose harm is measured
HARM_IMAGES = 8  # calibration images the harm is measured on
MAX_FLOAT_GROUPS = 4  # variants: the 1, 2, ... most harmful runs kept float


def conv_groups(model, groups: int = GROUPS) -> list[list[str]]:
    """The model's conv node names in graph order, cut into ``groups`` runs of near-equal size."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    return [list(chunk) for chunk in np.array_split(np.array(convs, dtype=object), min(groups, len(convs)))
            if len(chunk)]


def group_harm(fp32_onnx: Path, calibration_folder: Path, input_hw: tuple[int, int]
               ) -> list[tuple[list[str], float]]:
    """(conv names of a run, harm) for every run, most harmful first (see the module)."""
    import onnx
    import onnxruntime as ort

    from ..artifacts.calibration import calibration_set
    from ..exporters.quantize import QuantizationSettings, quantize_onnx_int8

    model = onnx.load(str(fp32_onnx))
    calibration = calibration_set(calibration_folder, input_hw, limit=HARM_IMAGES, progress=False)
    batches = calibration.batches[:HARM_IMAGES]
    reference = _outputs(ort, model.SerializeToString(), batches)
    everything = [n.name for n in model.graph.node if n.op_type == "Conv"]
    harmed = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, group in enumerate(conv_groups(model)):
            chosen = set(group)
            path = Path(tmp) / f"group{i}.onnx"
            quantize_onnx_int8(model, path, calibration, input_hw, fp32_onnx.name, QuantizationSettings(),
                               keep_float=[n for n in everything if n not in chosen])
            outputs = _outputs(ort, path.read_bytes(), batches)
            harmed.append((group, output_harm(outputs, reference)))
    return sorted(harmed, key=lambda item: -item[1])


def output_harm(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """How far raw head outputs [B, N, 5 + C] (4 box values, objectness, C class scores, as the
    official YOLOX head gives them) are from the FP32 ``reference`` where detections use them:
    the relative L2 change of the scores (objectness x class score) over every anchor, plus the
    relative L2 change of the 4 box values with each anchor weighted by its FP32 score (its best
    class's)."""
    score_diff = score_norm = box_diff = box_norm = 0.0
    for q, f in zip(outputs, reference):
        scores_q, scores_f = q[..., 4:5] * q[..., 5:], f[..., 4:5] * f[..., 5:]
        score_diff += float(np.sum((scores_q - scores_f) ** 2))
        score_norm += float(np.sum(scores_f ** 2))
        weight = scores_f.max(axis=-1, keepdims=True)
        box_diff += float(np.sum(weight * (q[..., :4] - f[..., :4]) ** 2))
        box_norm += float(np.sum(weight * f[..., :4] ** 2))
    return float(np.sqrt(score_diff / max(score_norm, 1e-30)) + np.sqrt(box_diff / max(box_norm, 1e-30)))


def _outputs(ort, model_bytes: bytes, batches: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: batch.astype(np.float32)})[0] for batch in batches]
