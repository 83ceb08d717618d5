"""``Detector``: image(s) in, :class:`Detections` out, through any backend."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, overload

import numpy as np

from .coco import default_class_names
from .detections import Detections
from .end_to_end import EndToEndOutputs, check_settings_against_baked, to_image_pixels
from .errors import InvalidInputError
from .images import ImageLike, to_bgr
from .postprocess import postprocess
from .preprocess import check_input_size, letterbox_batch
from .runtimes import Backend, load_backend
from .streaming import StreamResult, StreamSource, run_stream

if TYPE_CHECKING:
    from .multistream import SourceResult

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
    ``conf``: minimum objectness x class score; ``iou``: NMS IoU threshold (both default
    to the model's stored defaults, ``yolox-export --conf/--iou``, else 0.25 and 0.45);
    ``input_size``: (height, width) for models with dynamic spatial dims (static models
    use their own); ``class_names``: overrides the names stored with the model;
    ``max_det``: detections kept per image (None: all; default the model's, else 300);
    ``clip_boxes``: clip boxes to the image; ``batch_size``: images per backend call for dynamic-batch models;
    ``postprocess_impl``: 'auto' (C++ kernel when built), 'cpp' or 'numpy';
    other keyword arguments go to the backend (e.g. ``threads``, ``model_name``).

    End-to-end models (``yolox-export --nms``) return detections from the graph: only the
    ratio scaling and clipping run here; a ``conf`` below the baked one, another ``iou``,
    a larger ``max_det`` or another ``class_agnostic`` are refused (the graph decided those).
    """

    PIPELINE_BATCHES = 8  # backend batches handed to infer_many at once (bounds memory for long lists)

    def __init__(self, model: str | Path | Backend, backend: str | None = None, device: str | None = None,
                 conf: float | None = None, iou: float | None = None, class_agnostic: bool | None = None,
                 input_size: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                 max_det: int | None | str = "model", *, clip_boxes: bool = True, batch_size: int | None = None,
                 postprocess_impl: str | None = None, **backend_options: Any):
        self.backend = model if isinstance(model, Backend) else load_backend(model, backend, device, **backend_options)
        defaults = {"conf": 0.25, "iou": 0.45, "max_det": 300, **(self.backend.metadata.defaults or {})}
        baked = self.backend.metadata.end_to_end or {}
        if self.backend.end_to_end:
            if postprocess_impl is not None:
                raise InvalidInputError(f"{self.backend.path.name} is end-to-end: NMS runs inside its graph, so "
                                        f"postprocess_impl={postprocess_impl!r} has nothing to choose")
            check_settings_against_baked(baked, defaults["conf"] if conf is None else conf, iou,
                                         defaults["max_det"] if max_det == "model" else max_det, class_agnostic,
                                         self.backend.path.name)
        conf = defaults["conf"] if conf is None else conf
        iou = defaults["iou"] if iou is None else iou
        max_det = defaults["max_det"] if max_det == "model" else max_det
        if not (0 <= conf <= 1) or not (0 <= iou <= 1):
            raise InvalidInputError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        if max_det is not None and (not isinstance(max_det, int) or max_det < 1):
            raise InvalidInputError(f"max_det must be an int >= 1 or None, got {max_det!r}")
        agnostic = bool(baked.get("agnostic", False)) if class_agnostic is None else class_agnostic
        self.conf, self.iou, self.class_agnostic, self.max_det = conf, iou, agnostic, max_det
        postprocess_impl = postprocess_impl or "auto"
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
        batches = [batch for batch, _ in prepared]
        if self.backend.end_to_end:
            raws: list[Any] = [self.backend.infer_end_to_end(batch) for batch in batches]
        else:
            raws = self.backend.infer_many(batches)
        t2 = time.perf_counter()
        out = []
        for chunk, (_, ratios), raw in zip(chunks, prepared, raws):
            out.extend(self.postprocess_outputs(raw, ratios, [img.shape[:2] for img in chunk]))
        t3 = time.perf_counter()
        timings.preprocess_ms += (t1 - t0) * 1e3
        timings.inference_ms += (t2 - t1) * 1e3
        timings.postprocess_ms += (t3 - t2) * 1e3
        timings.images += len(items)
        return out

    def infer_batch(self, batch: np.ndarray) -> np.ndarray | EndToEndOutputs:
        """The backend's output for one letterboxed batch: the raw [B, N, 5 + C], or an
        end-to-end model's detections."""
        return self.backend.infer_end_to_end(batch) if self.backend.end_to_end else self.backend.infer(batch)

    def postprocess_outputs(self, outputs: np.ndarray | EndToEndOutputs, ratios: Sequence[float],
                            image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """:meth:`infer_batch`'s output -> one :class:`Detections` per image."""
        if isinstance(outputs, EndToEndOutputs):
            return self.postprocess_end_to_end(outputs, ratios, image_shapes)
        return self.postprocess_raw(outputs, ratios, image_shapes)

    def postprocess_end_to_end(self, outputs: EndToEndOutputs, ratios: Sequence[float],
                               image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """End-to-end detections (letterboxed-input pixels) -> original-image pixels; a
        ``conf`` above the baked one and a smaller ``max_det`` still apply."""
        names = self._class_names or default_class_names(80)
        results = []
        for b, (ratio, hw) in enumerate(zip(ratios, image_shapes)):
            boxes, scores, classes = outputs.image(b)
            keep = np.flatnonzero(scores >= np.float32(self.conf))[:self.max_det]
            if len(classes) and int(classes.max()) >= len(names):
                raise InvalidInputError(f"{self.backend.path.name} returned class id {int(classes.max())} and has "
                                        f"{len(names)} class names; pass class_names=")
            results.append(Detections.from_arrays(to_image_pixels(boxes[keep], ratio, hw if self.clip_boxes else None),
                                                  scores[keep], classes[keep].astype(np.int64), names, hw))
        return results

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

    def track(self, source: StreamSource, tracker: str = "bytetrack", *, fps: float | None = None,
              batch_size: int | None = None, workers: int = 2, infer_workers: int = 1, prefetch: int = 4,
              errors: str = "raise", **tracker_options: Any) -> Iterator[StreamResult]:
        """:meth:`stream` over a video, camera or a list of frames in time order, with track
        ids: each result's ``detections.tracker_ids`` (int64, -1 = no confirmed track yet).
        ``tracker``: bytetrack (default), ocsort, sort, botsort (Roboflow's ``trackers``;
        ``**tracker_options`` go to it); ``fps``: default the video's own frame rate, else 30.
        The tracker also sees detections down to score 0.1 (ByteTrack's second association);
        the results keep this detector's ``conf`` and ``max_det``. One tracker per call: two
        calls track two streams independently. A frame that fails with ``errors="yield"``
        leaves the tracks as they were."""
        from .tracking import run_track

        return run_track(self, source, tracker, fps,
                         dict(batch_size=batch_size, workers=workers, infer_workers=infer_workers, prefetch=prefetch,
                              errors=errors),
                         **tracker_options)

    def stream_many(self, sources: Sequence[StreamSource], *, batch_size: int | None = None, queue_size: int = 4,
                    drop: str | None = None, tracker: str | None = None,
                    tracker_options: dict[str, Any] | None = None) -> Iterator[SourceResult]:
        """Several videos, cameras, stream URLs or frame lists at once: frames of all sources
        are batched together into one backend call (``batch_size``, default the number of
        sources). Results (:class:`~yolox_deploy.multistream.SourceResult`) carry their
        ``source`` index and keep each source's order; a source that ends or fails yields one
        ``finished`` result (with ``error``) and the others go on. Each source holds at most
        ``queue_size`` frames: ``drop="oldest"`` drops a slow consumer's oldest frames (the
        default for cameras and URLs), ``"wait"`` pauses the reader (the default for files).
        ``tracker`` (e.g. "bytetrack") tracks each source with its own tracker."""
        from .multistream import run_many

        return run_many(self, sources, batch_size=batch_size, queue_size=queue_size, drop=drop, tracker=tracker,
                        tracker_options=tracker_options)

    def __repr__(self) -> str:
        return (f"Detector({self.backend.path.name!r}, backend={self.backend.name!r}, "
                f"input_size={self.input_size}, conf={self.conf}, iou={self.iou})")
