"""A :class:`~yolox_deploy.Detector` as a detection model of the sahi package (obss/sahi), for
users with SAHI code and for checking our sliced inference against SAHI's own loop:

    from sahi.predict import get_sliced_prediction
    from yolox_deploy.integrations.sahi import sahi_model
    model = sahi_model(Detector("yolox_nano.onnx"))
    result = get_sliced_prediction(rgb_image, model, slice_height=416, slice_width=416)

SAHI hands RGB arrays (it reads images with PIL); they are turned into BGR for the Detector.
Boxes are treated as SAHI's own models treat theirs (ultralytics.py): clamped to [0, full
image], and dropped when that leaves no area. sahi needs ``opencv-python``, a second cv2 over
the headless one, so it is installed without its dependencies (docs/sliced.md):
``pip install "yolox-deploy[sahi]" && pip install --no-deps "sahi==0.12.8"``.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..detector import Detector


@functools.lru_cache(maxsize=1)
def _model_class() -> type:
    base = require("sahi.models.base", "sahi", "the sahi integration")
    prediction = require("sahi.prediction", "sahi", "the sahi integration")

    class YoloxDetectionModel(base.DetectionModel):  # type: ignore[name-defined,misc]
        """SAHI's DetectionModel over a Detector (``model=``); ``native_batch`` sends SAHI's
        slice batches (``get_sliced_prediction(batch_size=N)``) as one Detector call."""

        def __init__(self, detector: Detector, native_batch: bool = False):
            self.native_batch = native_batch
            names = detector.class_names or ()
            super().__init__(model=detector, confidence_threshold=float(detector.conf), device="cpu",
                             category_mapping={str(i): n for i, n in enumerate(names)} or None, load_at_init=True)

        def load_model(self) -> None:  # the model always comes in as a Detector
            raise InvalidInputError("sahi_model takes an opened Detector")

        def set_model(self, model: Any, **kwargs: Any) -> None:
            if model.slices is not None:
                raise InvalidInputError("sahi_model takes a Detector without slices: SAHI does the slicing")
            self.model = model

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = [self.model(np.ascontiguousarray(image[..., ::-1]))]
            self._original_shapes = [image.shape]

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            if not self.native_batch:
                return super().perform_batch_inference(images)
            self._batch_images = None
            self._original_predictions = self.model([np.ascontiguousarray(image[..., ::-1]) for image in images])
            self._original_shapes = [image.shape for image in images]

        @property
        def num_categories(self) -> int:
            return len(self.model.class_names or ())

        @property
        def has_mask(self) -> bool:
            return False

        @property
        def category_names(self) -> list[str]:
            return list(self.model.class_names or ())

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list: Any = [[0, 0]],
                                                                     full_shape_list: Any = None) -> None:
            from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
            shifts = fix_shift_amount_list(shift_amount_list)
            full_shapes = fix_full_shape_list(full_shape_list)
            per_image = []
            for index, found in enumerate(self._original_predictions):
                shift = [int(v) for v in shifts[index]]
                full = list(self._original_shapes[index][:2]) if full_shapes is None else \
                    [int(v) for v in full_shapes[index]]
                predictions = []
                for bbox, score, class_id, name in zip(found.xyxy.tolist(), found.scores.tolist(),
                                                       found.class_ids.tolist(), found.class_names):
                    box = _clamped(bbox, full)
                    if box is not None:
                        predictions.append(prediction.ObjectPrediction(
                            bbox=box, category_id=class_id, score=score, category_name=name, shift_amount=shift,
                            full_shape=full))
                per_image.append(predictions)
            self._object_prediction_list_per_image = per_image

    return YoloxDetectionModel


def _clamped(bbox: list[float], full_hw: list[int]) -> list[float] | None:
    """SAHI's models' box fix: >= 0, <= the full image's size; None when no area is left."""
    x1, y1, x2, y2 = (max(0.0, v) for v in bbox)
    x1, x2 = min(full_hw[1], x1), min(full_hw[1], x2)
    y1, y2 = min(full_hw[0], y1), min(full_hw[0], y2)
    return [x1, y1, x2, y2] if x1 < x2 and y1 < y2 else None


def sahi_model(detector: Detector, native_batch: bool = False) -> Any:
    """``detector`` (without slices) as a ``sahi.models.base.DetectionModel``. Its
    ``confidence_threshold`` is the detector's ``conf`` (SAHI switches to NMS/IoU below 0.1
    unless ``force_postprocess_type=True``)."""
    return _model_class()(detector, native_batch)


__all__ = ["sahi_model"]
