"""``Detector``: image(s) in, :class:`Detections` out, through any backend."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union, overload

import numpy as np

from .coco import default_class_names
from .detections import Detections
from .errors import InvalidInputError
from .images import ImageLike, to_bgr
from .postprocess import postprocess
from .preprocess import check_input_size, letterbox_batch
from .runtimes import Backend, load_backend
from .streaming import StreamResult, StreamSource, run_stream

ImagesLike = Union[ImageLike, Sequence[ImageLike]]


@dataclasses.dataclass
class StageTimings:
    """Wall time of the last call, in milliseconds, summed over its batches."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    images: int = 0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class Detector:
    """A YOLOX model behind any backend, with the shared pre/postprocessing.

    ``model``: a model file (``.onnx``, ``.pth`` ...) or an opened :class:`Backend`;
    ``backend``: backend name, inferred from the file suffix when None;
    ``conf``: minimum objectness x class score; ``iou``: NMS IoU threshold;
    ``input_size``: (height, width) for models with dynamic spatial dims (static models
    use their own); ``class_names``: overrides the names stored with the model;
    ``max_det``: detections kept per image (None: all); ``clip_boxes``: clip boxes to
    the image; ``batch_size``: images per backend call for dynamic-batch models;
    ``postprocess_impl``: 'auto' (C++ kernel when built), 'cpp' or 'numpy';
    other keyword arguments go to the backend (e.g. ``threads``, ``model_name``).
    """

    PIPELINE_BATCHES = 8  # backend batches handed to infer_many at once (bounds memory for long lists)

    def __init__(self, model: str | Path | Backend, backend: str | None = None, device: str | None = None,
                 conf: float = 0.25, iou: float = 0.45, class_agnostic: bool = False,
                 input_size: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                 max_det: int | None = 300, *, clip_boxes: bool = True, batch_size: int | None = None,
                 postprocess_impl: str = "auto", **backend_options: Any):
        if not (0 <= conf <= 1) or not (0 <= iou <= 1):
            raise InvalidInputError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        if max_det is not None and max_det < 1:
            raise InvalidInputError(f"max_det must be >= 1 or None, got {max_det}")
        self.backend = model if isinstance(model, Backend) else load_backend(model, backend, device, **backend_options)
        self.conf, self.iou, self.class_agnostic, self.max_det = conf, iou, class_agnostic, max_det
        self.clip_boxes = clip_boxes
        self.postprocess_impl = postprocess_impl
        metadata = self.backend.metadata
        self.strides = metadata.strides
        self.input_size = self._resolve_input_size(input_size)
        self._class_names = tuple(class_names) if class_names else metadata.class_names
        self._names_checked = False
        static_batch = self.backend.input_shape[0]
        self.batch_size = static_batch or max(1, int(batch_size or 1))
        self._pad_batch = static_batch is not None
        self.timings = StageTimings()

    def close(self) -> None:
        """Release what the backend holds (e.g. Triton connections); also on leaving ``with``."""
        self.backend.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _resolve_input_size(self, requested: Sequence[int] | None) -> tuple[int, int]:
        _, _, h, w = self.backend.input_shape
        if h is not None and w is not None:
            if requested is not None and tuple(int(v) for v in requested) != (h, w):
                raise InvalidInputError(f"{self.backend.path.name} has a static input of {h}x{w}; input_size "
                                        f"{tuple(requested)} cannot be used (export with --dynamic-hw for that)")
            size: Sequence[int] = (h, w)
        elif requested is not None:
            size = requested
        elif self.backend.metadata.input_size:
            size = self.backend.metadata.input_size
        else:
            raise InvalidInputError(f"the input size of {self.backend.path.name} is dynamic and not stored "
                                    "in its metadata: pass input_size=(height, width)")
        return check_input_size(size, multiple=max(self.strides))

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self._class_names

    def _names_for(self, num_classes: int) -> tuple[str, ...]:
        if self._class_names is None:
            self._class_names = default_class_names(num_classes)
        if not self._names_checked:
            if len(self._class_names) != num_classes:
                raise InvalidInputError(f"{len(self._class_names)} class names given but the model predicts "
                                        f"{num_classes} classes")
            self._names_checked = True
        return self._class_names

    @overload
    def __call__(self, images: ImageLike) -> Detections: ...
    @overload
    def __call__(self, images: Sequence[ImageLike]) -> list[Detections]: ...

    def __call__(self, images: ImagesLike) -> Detections | list[Detections]:
        """Detect on one image (path, BGR/gray/BGRA uint8 array, PIL image) or a list of them.

        A list is cut into backend batches of ``batch_size``; up to ``PIPELINE_BATCHES`` of
        them go to the backend at once, so asynchronous backends (OpenVINO) overlap them.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        timings = StageTimings()
        results: list[Detections] = []
        group = self.batch_size * self.PIPELINE_BATCHES
        for start in range(0, len(items), group):
            results.extend(self._detect_group(items[start:start + group], timings))
        self.timings = timings
        return results[0] if single else results

    def _detect_group(self, items: Sequence[ImageLike], timings: StageTimings) -> list[Detections]:
        t0 = time.perf_counter()
        images = [to_bgr(item) for item in items]
        chunks = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        pixels = self.backend.native_pixels
        prepared = [letterbox_batch(chunk, self.input_size, self.batch_size if self._pad_batch else None, pixels)
                    for chunk in chunks]
        t1 = time.perf_counter()
        raws = self.backend.infer_many([batch for batch, _ in prepared])
        t2 = time.perf_counter()
        out = []
        for chunk, (_, ratios), raw in zip(chunks, prepared, raws):
            out.extend(self.postprocess_raw(raw, ratios, [img.shape[:2] for img in chunk]))
        t3 = time.perf_counter()
        timings.preprocess_ms += (t1 - t0) * 1e3
        timings.inference_ms += (t2 - t1) * 1e3
        timings.postprocess_ms += (t3 - t2) * 1e3
        timings.images += len(items)
        return out

    def postprocess_raw(self, raw: np.ndarray, ratios: Sequence[float],
                        image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Raw backend output [B', N, 5 + C] (B' >= len(ratios); padding rows ignored) ->
        one :class:`Detections` per image, boxes in that image's pixels."""
        names = self._names_for(raw.shape[-1] - 5)
        raw = raw[:len(ratios)]
        per_image = postprocess(raw, self.input_size, ratios, image_shapes if self.clip_boxes else None,
                                conf=self.conf, iou=self.iou, class_agnostic=self.class_agnostic,
                                max_det=self.max_det, strides=self.strides, impl=self.postprocess_impl)
        return [Detections.from_arrays(b, s, c, names, hw) for (b, s, c), hw in zip(per_image, image_shapes)]

    def stream(self, source: StreamSource, *, batch_size: int | None = None, workers: int = 2,
               infer_workers: int = 1, prefetch: int = 4, errors: str = "raise") -> Iterator[StreamResult]:
        """Detect over a folder, a video file, a camera index or any iterable of images,
        overlapping decoding/letterboxing (``workers`` threads), inference (batches of
        ``batch_size``, default this detector's, on ``infer_workers`` threads) and
        postprocessing. Results come in stream order; at most ``prefetch`` batches wait
        between stages. ``errors="yield"`` turns an unreadable image into a result with
        ``error`` set instead of raising. On small CPUs, a backend opened with
        ``threads=1`` and ``infer_workers`` = cores gives the most images/s.
        """
        return run_stream(self, source, batch_size=batch_size, workers=workers, infer_workers=infer_workers,
                          prefetch=prefetch, errors=errors)

    def __repr__(self) -> str:
        return (f"Detector({self.backend.path.name!r}, backend={self.backend.name!r}, "
                f"input_size={self.input_size}, conf={self.conf}, iou={self.iou})")
