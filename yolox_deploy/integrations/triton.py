"""Triton Inference Server: the repository layout, the server-side postprocess, a client.

``yolox-export --to triton --repo DIR`` writes (Triton's documented repository layout)::

    DIR/<name>_onnx/config.pbtxt, 1/model.onnx       raw [B, N, 5+C] (onnxruntime backend)
    DIR/<name>_postprocess/config.pbtxt, 1/model.py  decode + NMS with yolox_deploy (python backend)
    DIR/<name>/config.pbtxt, 1/                      ensemble: images, ratio, image_hw -> detections

The ensemble's outputs have a fixed size per image (``max_det`` rows, padded; the first
``num_detections`` are valid), as variable-length outputs do not batch in Triton.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..errors import InvalidInputError, ModelFileError
from ..processing.postprocess import postprocess
from ..processing.preprocess import letterbox
from ..runtimes.triton import TritonConnection, metadata_from_parameters

ENSEMBLE_INPUTS = ("images", "ratio", "image_hw")
ENSEMBLE_OUTPUTS = ("num_detections", "boxes", "scores", "class_ids")


@dataclasses.dataclass(frozen=True)
class PostprocessSettings:
    """What the python-backend postprocess needs, stored as config.pbtxt parameters."""

    input_hw: tuple[int, int]
    strides: tuple[int, ...]
    conf: float
    iou: float
    max_det: int
    class_agnostic: bool

    def to_parameters(self) -> dict[str, str]:
        return {"input_hw": ",".join(map(str, self.input_hw)), "strides": ",".join(map(str, self.strides)),
                "conf": repr(self.conf), "iou": repr(self.iou), "max_det": str(self.max_det),
                "class_agnostic": str(self.class_agnostic).lower()}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "PostprocessSettings":
        return cls(tuple(int(v) for v in params["input_hw"].split(",")),
                   tuple(int(v) for v in params["strides"].split(",")), float(params["conf"]),
                   float(params["iou"]), int(params["max_det"]), params["class_agnostic"] == "true")


def postprocess_padded(raw: np.ndarray, ratio: np.ndarray, image_hw: np.ndarray,
                       settings: PostprocessSettings) -> dict[str, np.ndarray]:
    """Raw [B, N, 5+C], ratio [B, 1], image_hw int [B, 2] -> the ensemble outputs:
    num_detections int32 [B, 1], boxes float32 [B, max_det, 4] (xyxy, original-image
    pixels), scores float32 [B, max_det], class_ids int32 [B, max_det]; rows past
    num_detections are zero."""
    b = raw.shape[0]
    per_image = postprocess(raw, settings.input_hw, [float(r) for r in ratio.reshape(b)],
                            [(int(h), int(w)) for h, w in image_hw.reshape(b, 2)], conf=settings.conf,
                            iou=settings.iou, class_agnostic=settings.class_agnostic,
                            max_det=settings.max_det, strides=settings.strides)
    out = {"num_detections": np.zeros((b, 1), np.int32), "boxes": np.zeros((b, settings.max_det, 4), np.float32),
           "scores": np.zeros((b, settings.max_det), np.float32),
           "class_ids": np.zeros((b, settings.max_det), np.int32)}
    for i, (boxes, scores, class_ids) in enumerate(per_image):
        k = len(scores)
        out["num_detections"][i, 0] = k
        out["boxes"][i, :k], out["scores"][i, :k], out["class_ids"][i, :k] = boxes, scores, class_ids
    return out


MODEL_PY = '''"""Triton python-backend model written by yolox-export: YOLOX decode + NMS.

Needs yolox-deploy in the Python environment Triton runs this model with
(pip install yolox-deploy, or an EXECUTION_ENV_PATH archive).
"""
import json

import triton_python_backend_utils as pb_utils

from yolox_deploy.integrations.triton import ENSEMBLE_OUTPUTS, PostprocessSettings, postprocess_padded


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.settings = PostprocessSettings.from_parameters(params)

    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "raw").as_numpy()
            ratio = pb_utils.get_input_tensor_by_name(request, "ratio").as_numpy()
            image_hw = pb_utils.get_input_tensor_by_name(request, "image_hw").as_numpy()
            try:
                out = postprocess_padded(raw, ratio, image_hw, self.settings)
            except ValueError as exc:  # non-finite outputs, bad shapes: one clear error per request
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
                continue
            tensors = [pb_utils.Tensor(name, out[name]) for name in ENSEMBLE_OUTPUTS]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
'''


class TritonDetectionClient:
    """Detections from the ensemble (server-side postprocess) over HTTP/REST (KServe v2) or gRPC:
    images are letterboxed here, sent as a batch with their ratios and sizes, and the padded
    outputs turned back into :class:`Detections`. Safe to share between threads (a connection
    per thread); ``close()`` or ``with`` releases the connections."""

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "TritonDetectionClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __init__(self, url: str = "localhost:8000", model: str = "yolox", timeout_s: float = 60.0,
                 protocol: str = "http"):
        self._connection = TritonConnection(url, timeout_s, protocol)
        self.model = model
        config = self._connection.model_config(model)
        self.metadata = metadata_from_parameters(config.get("parameters", {}))
        inputs = tuple(i["name"] for i in config.get("input", []))
        if set(inputs) != set(ENSEMBLE_INPUTS):
            kind = ("an end-to-end model (NMS inside, boxes in letterboxed pixels)" if self.metadata.end_to_end
                    else "a raw model" if len(config.get("output", [])) == 1 else f"a model with inputs {list(inputs)}")
            self._connection.close()
            raise ModelFileError(f"Triton model {model!r} is {kind}, not the yolox_deploy ensemble this client "
                                 f"sends images + ratio + image_hw to: use Detector({model!r}, backend='triton', "
                                 "url=...) for it")
        dims = [int(d) for d in config["input"][0]["dims"]]
        self.input_hw = (dims[-2], dims[-1])
        self.max_batch = int(config.get("max_batch_size", 0))

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """BGR uint8 HxWx3 images -> Detections in their pixels (sent in one request)."""
        from ..processing.images import to_bgr

        images = [to_bgr(image) for image in images]
        if self.max_batch and len(images) > self.max_batch:
            raise InvalidInputError(f"{len(images)} images in one request; the model batches at most {self.max_batch}")
        prepared = [letterbox(image, self.input_hw) for image in images]
        arrays = {"images": np.stack([x for x, _ in prepared]),
                  "ratio": np.array([[r] for _, r in prepared], np.float32),
                  "image_hw": np.array([image.shape[:2] for image in images], np.int32)}
        got = self._connection.infer(self.model, {name: arrays[name] for name in ENSEMBLE_INPUTS}, ENSEMBLE_OUTPUTS)
        names = self.metadata.class_names or tuple(str(i) for i in range(int(got["class_ids"].max(initial=0)) + 1))
        out = []
        for i, image in enumerate(images):
            k = int(got["num_detections"][i, 0])
            out.append(Detections.from_arrays(got["boxes"][i, :k], got["scores"][i, :k],
                                              got["class_ids"][i, :k].astype(np.int64), names, image.shape[:2]))
        return out
