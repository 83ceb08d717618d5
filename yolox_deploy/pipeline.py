"""The batch pipeline below :class:`~yolox_deploy.Detector` and the video modules: one batch
goes letterbox -> backend -> postprocess (the shared kernel, or the end-to-end graph's boxes
scaled back), with the settings that decide the answer in one place.

Nothing here knows about files, streams or trackers; ``Detector`` (images and lists),
``video.streaming`` (one stream), ``video.multistream`` (many) and ``video.tracking`` build on it.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from .coco import default_class_names
from .detections import Detections
from .errors import InvalidInputError
from .processing.end_to_end import EndToEndOutputs, end_to_end_detections
from .processing.postprocess import postprocess
from .processing.preprocess import letterbox, letterbox_batch, letterbox_pixels
from .runtimes.base import Backend

BackendOutput = Union[np.ndarray, EndToEndOutputs]  # raw [B, N, 5 + C], or an end-to-end model's detections


@dataclasses.dataclass
class StageTimings:
    """Wall time of the last call, in milliseconds, summed over its batches."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    images: int = 0
    slices: int = 0  # model inputs of sliced inference (slices plus full-image passes); 0 without slicing

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class BatchPipeline:
    """``backend`` with the settings of one detector: ``input_size`` (height, width) of the
    letterboxed input; ``conf``, ``iou``, ``class_agnostic``, ``max_det`` of the decode + NMS;
    ``clip_boxes`` to the image; ``postprocess_impl`` ('auto', 'cpp', 'numpy');
    ``class_names`` (None: the model's, else COCO's or class0..); ``batch_size`` images per
    backend call. The values are checked by :class:`~yolox_deploy.Detector`, which owns one."""

    def __init__(self, backend: Backend, input_size: tuple[int, int], *, conf: float, iou: float,
                 class_agnostic: bool, max_det: int | None, clip_boxes: bool, postprocess_impl: str,
                 class_names: tuple[str, ...] | None, batch_size: int):
        self.backend = backend
        self.input_size = input_size
        self.strides = backend.metadata.strides
        self.conf, self.iou, self.class_agnostic, self.max_det = conf, iou, class_agnostic, max_det
        self.clip_boxes, self.postprocess_impl = clip_boxes, postprocess_impl
        self.class_names = class_names
        self._names_checked = False
        self.batch_size = batch_size
        self.batch_size_given = False  # set by the Detector: whether batch_size is the user's (or a deployment's)

    @property
    def static_batch(self) -> int | None:
        """The model's fixed batch size, or None when it takes any."""
        return self.backend.input_shape[0]

    def with_settings(self, **changes: Any) -> BatchPipeline:
        """A copy sharing the backend, with some settings changed (e.g. a tracker's low conf)."""
        view = copy.copy(self)
        for name, value in changes.items():
            if not hasattr(view, name):
                raise AttributeError(f"BatchPipeline has no setting {name!r}")
            setattr(view, name, value)
        return view

    def tracking_view(self, conf: float, max_det: int | None) -> BatchPipeline:
        """A view that decodes down to ``conf`` with ``max_det``, for a tracker's second association.
        This pipeline's own answer is then the view's detections scoring at least this ``conf``,
        the first :attr:`answer_max_det` of them (NMS never lets a lower box remove a higher one)."""
        return self.with_settings(conf=conf, max_det=max_det)

    def lookahead_batches(self, prefetch: int) -> int:
        """Batches a stream prepares ahead of the backend (and holds decoded after it)."""
        return prefetch

    @property
    def answer_max_det(self) -> int | None:
        """The cap on one image's detections."""
        return self.max_det

    # --- letterbox ---------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """One BGR image -> (its letterboxed input, ratio): uint8 HWC pixels for backends that
        cast them inside the model, float32 CHW for the others."""
        prepare = letterbox_pixels if self.backend.native_pixels else letterbox
        return prepare(image, self.input_size)

    def prepare_batch(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[float]]:
        """Up to ``batch_size`` BGR images -> (one batch, their ratios), padded to the model's
        static batch."""
        return letterbox_batch(images, self.input_size, self.static_batch, self.backend.native_pixels)

    def stack(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """Letterboxed inputs of :meth:`prepare` -> one batch, padded with the last input up to
        the model's static batch."""
        batch = np.stack(tensors)
        static = self.static_batch
        if static is not None and static > len(tensors):
            batch = np.concatenate([batch, np.repeat(batch[-1:], static - len(tensors), axis=0)])
        return batch

    # --- backend -----------------------------------------------------------------------------

    def infer(self, batch: np.ndarray) -> BackendOutput:
        """The backend's output for one letterboxed batch: the raw [B, N, 5 + C], or an
        end-to-end model's detections."""
        return self.backend.infer_end_to_end(batch) if self.backend.end_to_end else self.backend.infer(batch)

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[BackendOutput]:
        """:meth:`infer` of several batches; asynchronous backends (OpenVINO) overlap them."""
        if self.backend.end_to_end:
            return [self.backend.infer_end_to_end(batch) for batch in batches]
        return list(self.backend.infer_many(batches))

    # --- postprocess -------------------------------------------------------------------------

    def postprocess(self, outputs: BackendOutput, ratios: Sequence[float],
                    image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """:meth:`infer`'s output -> one :class:`Detections` per image (boxes xyxy in that
        image's pixels); rows past ``len(ratios)`` (batch padding) are ignored."""
        if isinstance(outputs, EndToEndOutputs):
            return self.postprocess_end_to_end(outputs, ratios, image_shapes)
        return self.postprocess_raw(outputs, ratios, image_shapes)

    def postprocess_raw(self, raw: np.ndarray, ratios: Sequence[float],
                        image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Raw backend output [B', N, 5 + C] (B' >= len(ratios)) -> decode + NMS with the
        shared kernel."""
        names = self._names_for(raw.shape[-1] - 5)
        per_image = postprocess(raw[:len(ratios)], self.input_size, ratios,
                                image_shapes if self.clip_boxes else None, conf=self.conf, iou=self.iou,
                                class_agnostic=self.class_agnostic, max_det=self.max_det, strides=self.strides,
                                impl=self.postprocess_impl)
        return [Detections.from_arrays(b, s, c, names, hw) for (b, s, c), hw in zip(per_image, image_shapes)]

    def postprocess_end_to_end(self, outputs: EndToEndOutputs, ratios: Sequence[float],
                               image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """End-to-end detections (letterboxed-input pixels) -> original-image pixels; a
        ``conf`` above the baked one and a smaller ``max_det`` still apply."""
        names = self.class_names or default_class_names(80)
        results = []
        for b, (ratio, hw) in enumerate(zip(ratios, image_shapes)):
            boxes, scores, classes = end_to_end_detections(*outputs.image(b), self.conf, self.max_det, ratio,
                                                           hw if self.clip_boxes else None, self.postprocess_impl)
            if len(classes) and int(classes.max()) >= len(names):
                raise InvalidInputError(f"{self.backend.path.name} returned class id {int(classes.max())} and has "
                                        f"{len(names)} class names; pass class_names=")
            results.append(Detections.from_arrays(boxes, scores, classes, names, hw))
        return results

    def _names_for(self, num_classes: int) -> tuple[str, ...]:
        if self.class_names is None:
            self.class_names = default_class_names(num_classes)
        if not self._names_checked:
            if len(self.class_names) != num_classes:
                raise InvalidInputError(f"{len(self.class_names)} class names given but the model predicts "
                                        f"{num_classes} classes")
            self._names_checked = True
        return self.class_names

    # --- whole batches -----------------------------------------------------------------------

    def run(self, images: Sequence[np.ndarray], timings: StageTimings | None = None) -> list[Detections]:
        """BGR images -> one :class:`Detections` each: cut into backend batches of
        ``batch_size``, all handed to the backend at once, so asynchronous backends overlap
        them. Stage times are added to ``timings``."""
        t0 = time.perf_counter()
        chunks = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        prepared = [self.prepare_batch(chunk) for chunk in chunks]
        t1 = time.perf_counter()
        outputs = self.infer_many([batch for batch, _ in prepared])
        t2 = time.perf_counter()
        results: list[Detections] = []
        for chunk, (_, ratios), output in zip(chunks, prepared, outputs):
            results.extend(self.postprocess(output, ratios, [image.shape[:2] for image in chunk]))
        t3 = time.perf_counter()
        if timings is not None:
            timings.preprocess_ms += (t1 - t0) * 1e3
            timings.inference_ms += (t2 - t1) * 1e3
            timings.postprocess_ms += (t3 - t2) * 1e3
            timings.images += len(images)
        return results
