"""``Detector``: image(s) in, :class:`Detections` out, through any backend.

The facade over :class:`~yolox_deploy.pipeline.BatchPipeline` (one batch: letterbox ->
backend -> postprocess) and the video modules built on it.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union, overload

import numpy as np

from .detections import Detections
from .errors import InvalidInputError
from .pipeline import BackendOutput, BatchPipeline, StageTimings
from .processing.end_to_end import EndToEndOutputs, check_settings_against_baked
from .processing.images import ImageLike, to_bgr
from .processing.preprocess import check_input_size
from .runtimes import Backend, load_backend
from .slicing import SliceSettings, with_slices
from .video.multistream import SourceResult, run_many
from .video.streaming import StreamResult, StreamSource, run_stream
from .video.tracking import TrackedStream, run_track

ImagesLike = Union[ImageLike, Sequence[ImageLike]]


class _Setting:
    """A Detector attribute that lives in its pipeline (reading and assigning both go there)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.pipeline, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.pipeline, self.name, value)


class _BatchSize(_Setting):
    """``batch_size``: assigning it also marks it as the user's choice (sliced inference then keeps it)."""

    def __set__(self, obj: Any, value: Any) -> None:
        super().__set__(obj, value)
        obj.pipeline.batch_size_given = True


class Detector:
    """A YOLOX model behind any backend, with the shared pre/postprocessing.

    ``model``: a model file (``.onnx``, ``.pth`` ...), a deployment folder written by
    ``yolox-tune`` (its backend, precision, threads, batch and thresholds are the defaults
    here), or an opened :class:`Backend`;
    ``backend``: backend name, inferred from the file suffix when None;
    ``conf``: minimum objectness x class score; ``iou``: NMS IoU threshold (both default
    to the model's stored defaults, ``yolox-export --conf/--iou``, else 0.25 and 0.45);
    ``input_size``: (height, width) for models with dynamic spatial dims (static models
    use their own); ``class_names``: overrides the names stored with the model;
    ``max_det``: detections kept per image (None: all; default the model's, else 300);
    ``clip_boxes``: clip boxes to the image; ``batch_size``: images per backend call for dynamic-batch models;
    ``postprocess_impl``: 'auto' (C++ kernel when built), 'cpp' or 'numpy';
    ``slices``: a :class:`SliceSettings` for sliced inference (small objects on large images:
    every call, ``stream``, ``track`` and ``stream_many`` slice; docs/sliced.md), None not to;
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
                 postprocess_impl: str | None = None, slices: SliceSettings | None = None,
                 **backend_options: Any):
        self.backend = model if isinstance(model, Backend) else load_backend(model, backend, device, **backend_options)
        deployment = self.backend.deployment  # a yolox-tune folder: its thresholds and batch are the defaults
        tuned = deployment.detector if deployment is not None else {}
        defaults = {"conf": 0.25, "iou": 0.45, "max_det": 300, **(self.backend.metadata.defaults or {}),
                    **{k: tuned[k] for k in ("conf", "iou", "max_det") if k in tuned}}
        if deployment is not None:
            batch_size = deployment.batch if batch_size is None else batch_size
            input_size = deployment.input_size if input_size is None else input_size
        if class_agnostic is None and "class_agnostic" in tuned:
            class_agnostic = tuned["class_agnostic"]
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
        metadata = self.backend.metadata
        input_size_checked = self._resolve_input_size(input_size, metadata.strides)
        static_batch = self.backend.input_shape[0]
        self.pipeline = BatchPipeline(
            self.backend, input_size_checked, conf=conf, iou=iou, class_agnostic=agnostic, max_det=max_det,
            clip_boxes=clip_boxes, postprocess_impl=postprocess_impl or "auto",
            class_names=tuple(class_names) if class_names else metadata.class_names,
            batch_size=static_batch or max(1, int(batch_size or 1)))
        self.pipeline.batch_size_given = batch_size is not None  # a deployment's batch counts as given
        if slices is not None:
            self.slices = slices
        self.timings = StageTimings()

    # settings of the shared pipeline, readable and assignable here
    input_size = _Setting()
    strides = _Setting()
    conf = _Setting()
    iou = _Setting()
    class_agnostic = _Setting()
    max_det = _Setting()
    clip_boxes = _Setting()
    postprocess_impl = _Setting()
    batch_size = _BatchSize()

    def close(self) -> None:
        """Release what the backend holds (e.g. Triton connections); also on leaving ``with``."""
        self.backend.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _resolve_input_size(self, requested: Sequence[int] | None, strides: Sequence[int]) -> tuple[int, int]:
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
        return check_input_size(size, multiple=max(strides))

    @property
    def slices(self) -> SliceSettings | None:
        """The sliced-inference settings (None: whole images); assignable."""
        return getattr(self.pipeline, "slices", None)

    @slices.setter
    def slices(self, value: SliceSettings | None) -> None:
        self.pipeline = with_slices(self.pipeline, value)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The names of the model's classes (None until known: no metadata and no call yet)."""
        return self.pipeline.class_names

    @overload
    def __call__(self, images: ImageLike) -> Detections: ...
    @overload
    def __call__(self, images: Sequence[ImageLike]) -> list[Detections]: ...

    def __call__(self, images: ImagesLike) -> Detections | list[Detections]:
        """Detect on one image (path, BGR/gray/BGRA uint8 array, PIL image) or a list of them.

        A list is cut into backend batches of ``batch_size``; up to ``PIPELINE_BATCHES`` of
        them go to the backend at once, so asynchronous backends (OpenVINO) overlap them.
        With :attr:`slices`, the slices of those images go in batches of ``batch_size``.
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
        start = time.perf_counter()
        images = [to_bgr(item) for item in items]
        timings.preprocess_ms += (time.perf_counter() - start) * 1e3
        return self.pipeline.run(images, timings)

    def _whole_image_pipeline(self) -> BatchPipeline:
        if self.slices is not None:
            raise InvalidInputError("infer_batch and postprocess_* take letterboxed whole images, and this Detector "
                                    "slices: call it on images, or set det.slices = None first")
        return self.pipeline

    def infer_batch(self, batch: np.ndarray) -> BackendOutput:
        """The backend's output for one letterboxed batch: the raw [B, N, 5 + C], or an
        end-to-end model's detections."""
        return self._whole_image_pipeline().infer(batch)

    def postprocess_outputs(self, outputs: BackendOutput, ratios: Sequence[float],
                            image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """:meth:`infer_batch`'s output -> one :class:`Detections` per image."""
        return self._whole_image_pipeline().postprocess(outputs, ratios, image_shapes)

    def postprocess_end_to_end(self, outputs: EndToEndOutputs, ratios: Sequence[float],
                               image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """End-to-end detections (letterboxed-input pixels) -> original-image pixels; a
        ``conf`` above the baked one and a smaller ``max_det`` still apply."""
        return self._whole_image_pipeline().postprocess_end_to_end(outputs, ratios, image_shapes)

    def postprocess_raw(self, raw: np.ndarray, ratios: Sequence[float],
                        image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """Raw backend output [B', N, 5 + C] (B' >= len(ratios); padding rows ignored) ->
        one :class:`Detections` per image, boxes in that image's pixels."""
        return self._whole_image_pipeline().postprocess_raw(raw, ratios, image_shapes)

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
        return run_stream(self.pipeline, source, batch_size=batch_size, workers=workers, infer_workers=infer_workers,
                          prefetch=prefetch, errors=errors)

    def track(self, source: StreamSource, tracker: str = "bytetrack", *, fps: float | None = None,
              batch_size: int | None = None, workers: int = 2, infer_workers: int = 1, prefetch: int = 4,
              errors: str = "raise", **tracker_options: Any) -> TrackedStream:
        """:meth:`stream` over a video, camera or a list of frames in time order, with track
        ids: each result's ``detections.tracker_ids`` (int64, -1 = no confirmed track yet).
        ``tracker``: bytetrack (default), ocsort, sort, botsort (Roboflow's ``trackers``;
        ``**tracker_options`` go to it); ``fps``: default the video's own frame rate, else 30.
        The tracker also sees detections down to score 0.1 (ByteTrack's second association);
        the results keep this detector's ``conf`` and ``max_det``. One tracker per call: two
        calls track two streams independently. A frame that fails with ``errors="yield"``
        leaves the tracks as they were."""
        return run_track(self.pipeline, source, tracker, fps,
                         dict(batch_size=batch_size, workers=workers, infer_workers=infer_workers, prefetch=prefetch,
                              errors=errors), **tracker_options)

    def stream_many(self, sources: Sequence[StreamSource], *, batch_size: int | None = None, queue_size: int = 4,
                    drop: str | None = None, tracker: str | None = None,
                    tracker_options: dict[str, Any] | None = None) -> Iterator[SourceResult]:
        """Several videos, cameras, stream URLs or frame lists at once: frames of all sources
        are batched together into one backend call (``batch_size``, default the number of
        sources). Results (:class:`~yolox_deploy.video.multistream.SourceResult`) carry their
        ``source`` index and keep each source's order; a source that ends or fails yields one
        ``finished`` result (with ``error``) and the others go on. Each source holds at most
        ``queue_size`` frames: ``drop="oldest"`` drops a slow consumer's oldest frames (the
        default for cameras and URLs), ``"wait"`` pauses the reader (the default for files).
        ``tracker`` (e.g. "bytetrack") tracks each source with its own tracker."""
        return run_many(self.pipeline, sources, batch_size=batch_size, queue_size=queue_size, drop=drop,
                        tracker=tracker, tracker_options=tracker_options)

    def __repr__(self) -> str:
        sliced = "" if self.slices is None else f", slices={self.slices}"
        return (f"Detector({self.backend.path.name!r}, backend={self.backend.name!r}, "
                f"input_size={self.input_size}, conf={self.conf}, iou={self.iou}{sliced})")
