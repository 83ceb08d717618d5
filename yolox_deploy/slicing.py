"""Sliced inference (SAHI's method): each image is cut into overlapping windows, every window
(plus, optionally, the whole image) is letterboxed to the model input a chunk at a time, the
windows of an image and of several images go to the backend in batches, and the detections are
shifted back to original-image pixels and merged by the shared kernel
(:mod:`yolox_deploy.processing.merge`).

:class:`SlicedPipeline` is a :class:`~yolox_deploy.pipeline.BatchPipeline` whose ``prepare``
gives all the inputs of one image and whose ``postprocess`` gives that image's merged
detections, so ``Detector.__call__``, ``stream``, ``track`` and ``stream_many`` run it
unchanged. docs/sliced.md says how the answers relate to the sahi package's.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any, Union, cast

import numpy as np

from .coco import default_class_names
from .detections import Detections
from .errors import InvalidInputError
from .pipeline import BatchPipeline, StageTimings
from .processing.merge import MATCHES, MERGES, RECHECKS, count_windows, matches_any, merge, slice_windows

log = logging.getLogger(__name__)

SLICE_MULTIPLE = 32
# slice inputs per backend call of a dynamic-batch model when no batch_size is given: batch 8 was the fastest
# measured (benchmarks/sliced_speed.py: 1.37x SAHI's loop against 1.29x at batch 1, nano@416, 2 CPU threads)
SLICE_BATCH = 8
MAX_WINDOWS = 4096  # per image: a 7680x4320 frame in 256-pixel slices at overlap 0.5 has 2040
LOW_CONF = 0.1  # SAHI's LOW_MODEL_CONFIDENCE: below it the merge switches to NMS/IoU unless forced


@dataclasses.dataclass(frozen=True)
class SliceSettings:
    """How to slice: ``size`` (height, width) of a window in original-image pixels (an int for
    squares; multiples of 32), ``overlap`` of neighbouring windows as a fraction of ``size``
    in [0, 1); ``full_image``: also detect on the whole image (when it needs more than one
    window), for large objects; ``merge`` 'greedy_nmm' (SAHI's GREEDYNMM: matched boxes are
    merged into their union) or 'nms'; ``match`` 'ios' (intersection over the smaller box) or
    'iou', against ``match_threshold``; ``class_agnostic`` merges across classes;
    ``recheck`` 'sahi' (SAHI's behaviour: an absorbed box that no longer matches the grown
    merged box is dropped) or 'none' (every match of the kept box is merged);
    ``force_merge``: keep ``merge`` and ``match`` when the detector's ``conf`` is below 0.1
    (by default they switch to NMS/IoU there, as SAHI does, so that a merge of many
    low-score boxes does not grow boxes; ``yolox-eval``'s conf 0.01 is such a case)."""

    size: Union[int, tuple[int, int]]
    overlap: float = 0.2
    full_image: bool = True
    merge: str = "greedy_nmm"
    match: str = "ios"
    match_threshold: float = 0.5
    class_agnostic: bool = False
    recheck: str = "sahi"
    force_merge: bool = False

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, (int, np.integer)) else tuple(self.size)
        if len(size) != 2 or any(not isinstance(v, (int, np.integer)) or v <= 0 or v % SLICE_MULTIPLE for v in size):
            raise InvalidInputError(f"slice size {self.size!r} is not a positive multiple of {SLICE_MULTIPLE} "
                                    "(height, width): use e.g. 416 or 640")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if not 0 <= self.overlap < 1:
            raise InvalidInputError(f"slice overlap {self.overlap} is outside [0, 1): use e.g. 0.2")
        if self.merge not in MERGES:
            raise InvalidInputError(f"unknown merge {self.merge!r}: use one of {', '.join(MERGES)}")
        if self.match not in MATCHES:
            raise InvalidInputError(f"unknown match {self.match!r}: use one of {', '.join(MATCHES)}")
        if self.recheck not in RECHECKS:
            raise InvalidInputError(f"unknown recheck {self.recheck!r}: use one of {', '.join(RECHECKS)}")
        if not 0 <= self.match_threshold <= 1:
            raise InvalidInputError(f"match_threshold {self.match_threshold} is outside [0, 1]")

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of a window: ``size`` as it is after the check."""
        return cast("tuple[int, int]", self.size)

    @property
    def height(self) -> int:
        return self.hw[0]

    @property
    def width(self) -> int:
        return self.hw[1]


@dataclasses.dataclass
class SliceLayout:
    """Where the model inputs of one image come from: ``windows`` (x1, y1, x2, y2) in image
    pixels, one per slice input, then the whole image when ``full_image``."""

    windows: list[tuple[int, int, int, int]]
    full_image: bool
    image_hw: tuple[int, int]

    @property
    def inputs(self) -> int:
        return len(self.windows) + int(self.full_image)


@dataclasses.dataclass
class SliceInputs:
    """The model inputs of one image, or of several one after the other, before letterboxing:
    ``pixels`` are views into the images (a window, or a whole image). They are letterboxed a
    chunk at a time straight into the backend's batch, so that no more than a few chunks of
    letterboxed inputs are ever held, however many windows the images have."""

    pixels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(height, width) of each input's pixels."""
        return [p.shape[:2] for p in self.pixels]

    def split(self, n: int) -> tuple[SliceInputs, SliceInputs]:
        """(the first ``n`` inputs, the rest)."""
        return SliceInputs(self.pixels[:n]), SliceInputs(self.pixels[n:])


class SlicedPipeline(BatchPipeline):
    """A :class:`BatchPipeline` that slices: ``prepare`` gives all model inputs of one image
    (:class:`SliceInputs`, views of its pixels) and its :class:`SliceLayout`; ``infer`` sends
    the inputs of one or more images to the backend in chunks of :attr:`chunk_size`, each
    letterboxed just before its call, and decodes each input's detections; ``postprocess``
    merges them per image.
    ``conf`` and ``max_det`` apply to each input (slice or whole image), as they do to a SAHI
    model's predictions; the merged detections of an image are not capped again."""

    slices: SliceSettings
    answer: tuple[float, int | None] | None = None  # (conf, max_det) of the answer, in a tracking view
    _noted_small = False
    _noted_low_conf = False
    OVERLAP_CHUNKS = 4  # chunks handed to the backend at once (asynchronous backends overlap them)

    @property
    def chunk_size(self) -> int:
        """Slice inputs per backend call: the model's static batch; else ``batch_size`` when the user
        (or a deployment) gave one; else :data:`SLICE_BATCH`."""
        return self.static_batch or (self.batch_size if self.batch_size_given else SLICE_BATCH)

    def layout(self, image_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """The slice windows of an image of ``image_hw`` (height, width); more than
        :data:`MAX_WINDOWS` are refused in one line (an overlap near 1 gives millions)."""
        count = count_windows(image_hw[0], image_hw[1], self.slices.hw, self.slices.overlap)
        if count > MAX_WINDOWS:
            raise InvalidInputError(
                f"{self.slices.height}x{self.slices.width} slices with overlap {self.slices.overlap} cut a "
                f"{image_hw[0]}x{image_hw[1]} image into {count} windows (at most {MAX_WINDOWS}): use larger slices "
                "or a smaller overlap")
        windows = slice_windows(image_hw[0], image_hw[1], self.slices.hw, self.slices.overlap)
        if len(windows) == 1 and not self._noted_small:
            self._noted_small = True
            log.warning("note: a %dx%d image fits in one %dx%d slice: it is detected as a whole, as without slicing "
                        "(no merge)",
                        image_hw[0], image_hw[1], self.slices.height, self.slices.width)
        return windows

    def prepare(self, image: np.ndarray) -> tuple[SliceInputs, SliceLayout]:  # type: ignore[override]
        """One BGR image -> (its slices' pixels, then the whole image's when asked: views, no
        copies; their layout)."""
        windows = self.layout(image.shape[:2])
        full = self.slices.full_image and len(windows) > 1
        pixels = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in windows] + ([image] if full else [])
        return SliceInputs(pixels), SliceLayout(windows, full, image.shape[:2])

    def stack(self, items: Sequence[SliceInputs]) -> SliceInputs:  # type: ignore[override]
        """:meth:`prepare`'s inputs of several images -> all of them, in order."""
        return SliceInputs([p for i in items for p in i.pixels])

    def infer_timed(self, inputs: SliceInputs) -> tuple[list[Detections], tuple[float, float, float]]:
        """(the detections of every input of ``inputs``, each in its own pixels; seconds spent
        letterboxing, in the backend, decoding). Inputs go in chunks of :attr:`chunk_size`, each
        letterboxed straight into its batch (the last padded to a static batch) just before its
        call, :attr:`OVERLAP_CHUNKS` chunks at a time, and decoded at once: neither letterboxed
        inputs nor raw outputs of more than those chunks are ever held."""
        step, shapes, found, seconds = self.chunk_size, inputs.shapes, [], [0.0, 0.0, 0.0]
        starts = list(range(0, len(inputs), step))
        for group in range(0, len(starts), self.OVERLAP_CHUNKS):
            chunks = starts[group:group + self.OVERLAP_CHUNKS]
            t0 = time.perf_counter()
            prepared = [self.prepare_batch(inputs.pixels[i:i + step]) for i in chunks]
            t1 = time.perf_counter()
            outputs = self.infer_many([batch for batch, _ in prepared])
            t2 = time.perf_counter()
            for i, output, (_, ratios) in zip(chunks, outputs, prepared):
                found.extend(super().postprocess(output, ratios, shapes[i:i + step]))
            seconds[0] += t1 - t0
            seconds[1] += t2 - t1
            seconds[2] += time.perf_counter() - t2
        return found, (seconds[0], seconds[1], seconds[2])

    def infer(self, batch: SliceInputs) -> list[Detections]:  # type: ignore[override]
        """The detections of every input of ``batch``, each in its own pixels."""
        return self.infer_timed(batch)[0]

    def postprocess(self, outputs: Any, ratios: Sequence[Any],
                    image_shapes: Sequence[tuple[int, int]]) -> list[Detections]:
        """:meth:`infer`'s per-input detections with the images' layouts (where the plain
        pipeline takes ratios) -> one merged :class:`Detections` per image, boxes xyxy in
        that image's pixels."""
        layouts: Sequence[SliceLayout] = ratios
        results, start = [], 0
        for layout in layouts:
            results.append(self.merge_image(layout, outputs[start:start + layout.inputs]))
            start += layout.inputs
        return results

    def merge_kind(self) -> tuple[str, str]:
        """(merge, match) in effect: the settings', or NMS/IoU below ``conf`` 0.1 unless forced."""
        s = self.slices
        conf = self.conf if self.answer is None else self.answer[0]
        if conf < LOW_CONF and s.merge != "nms" and not s.force_merge:
            if not self._noted_low_conf:
                self._noted_low_conf = True
                log.warning("note: conf %s is below %s, so slices are merged by NMS/IoU instead of %s/%s, as SAHI "
                            "does (SliceSettings(force_merge=True) keeps them)", conf, LOW_CONF, s.merge, s.match)
            return "nms", "iou"
        return s.merge, s.match

    def tracking_view(self, conf: float, max_det: int | None) -> SlicedPipeline:
        """A view that decodes every input down to ``conf`` for a tracker, and merges this pipeline's
        own answer (its conf, its max_det per input) apart from the rest: a low box merged into an
        answer box would grow it, so the tracked boxes would not be ``det(image)``'s."""
        return cast(SlicedPipeline, self.with_settings(conf=conf, max_det=max_det, answer=(self.conf, self.max_det)))

    def lookahead_batches(self, prefetch: int) -> int:
        """One: a frame is already many model inputs (a 4K frame at 416 is 85), letterboxed chunk by
        chunk in the inference stage; more frames ahead would only hold more decoded pixels."""
        return 1

    @property
    def answer_max_det(self) -> int | None:
        return None  # max_det caps each input (as a SAHI model's own does); the merged answer is not capped again

    def merge_image(self, layout: SliceLayout, found: Sequence[Detections]) -> Detections:
        """The detections of one image's inputs (their own pixels) -> the image's merged detections,
        in score order. In a :meth:`tracking_view`, the answer's merge, then the other boxes' merge."""
        h, w = layout.image_hw
        if self.answer is None:
            boxes, scores, classes = self._merged(layout, found)
        else:
            conf, max_det = self.answer
            high = [d.scores >= np.float32(conf) for d in found]
            # the answer; and the boxes below conf, for the tracker only: merged among themselves, without those
            # that match an answer box (the merge would have absorbed them) or exceed max_det, so that the answer
            # is exactly the merged detections scoring at least conf
            answer = self._merged(layout, [d[np.flatnonzero(h)[:max_det]] for d, h in zip(found, high)])
            low = self._merged(layout, [d[~h] for d, h in zip(found, high)])
            s = self.slices
            fresh = ~matches_any(low[0], low[2], answer[0], answer[2], self.merge_kind()[1], s.match_threshold,
                                 s.class_agnostic)
            boxes, scores, classes = (np.concatenate([a, b[fresh]]) for a, b in zip(answer, low))
        order = np.argsort(-scores, kind="stable")
        names = self.class_names or default_class_names(80)  # known after the first decode
        return Detections.from_arrays(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                                      classes[order].astype(np.int64), names, (h, w))

    def _merged(self, layout: SliceLayout, found: Sequence[Detections]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes float64 xyxy in image pixels, scores, class ids) of one image's inputs, merged."""
        offsets = [(x1, y1) for x1, y1, _, _ in layout.windows] + ([(0, 0)] if layout.full_image else [])
        h, w = layout.image_hw
        # as SAHI's models do: a box starts no earlier than its own input's edge (without clip_boxes too), then,
        # shifted, it is clamped to the image (sahi's models clamp to the image's size in slice coordinates,
        # so theirs can end past the image; ours end at its edge), and boxes of no area are dropped
        boxes = np.concatenate([np.maximum(d.xyxy.astype(np.float64), 0) + np.array([x, y, x, y], dtype=np.float64)
                                for d, (x, y) in zip(found, offsets)])
        boxes = np.clip(boxes, 0, [w, h, w, h])
        scores = np.concatenate([d.scores for d in found]).astype(np.float64)
        classes = np.concatenate([d.class_ids for d in found])
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        boxes, scores, classes = boxes[valid], scores[valid], classes[valid]
        if len(found) > 1 and len(scores) > 1:  # one input (the image fits one window): as without slicing
            s = self.slices
            kind, match = self.merge_kind()
            boxes, scores, classes = merge(boxes, scores, classes, kind, match, s.match_threshold,
                                           s.class_agnostic, s.recheck, self.postprocess_impl)
        return boxes, scores, classes

    def run(self, images: Sequence[np.ndarray], timings: StageTimings | None = None) -> list[Detections]:
        """BGR images -> one merged :class:`Detections` each. The slices of consecutive images
        go to the backend together, in chunks of :attr:`chunk_size`, letterboxed chunk by chunk
        (preprocess time is slicing plus letterboxing)."""
        stage = [0.0, 0.0, 0.0]
        found: list[Detections] = []
        layouts: list[SliceLayout] = []
        pending = SliceInputs([])

        def run_inputs(batch: SliceInputs) -> None:
            detections, seconds = self.infer_timed(batch)
            found.extend(detections)
            for i, value in enumerate(seconds):
                stage[i] += value

        for image in images:
            t0 = time.perf_counter()
            inputs, layout = self.prepare(image)
            stage[0] += time.perf_counter() - t0
            pending = self.stack([pending, inputs])
            layouts.append(layout)
            if len(pending) >= self.chunk_size * self.OVERLAP_CHUNKS:  # whole chunks now, the rest waits
                ready, pending = pending.split(len(pending) // self.chunk_size * self.chunk_size)
                run_inputs(ready)
        if len(pending):
            run_inputs(pending)
        t0 = time.perf_counter()
        results = self.postprocess(found, layouts, [image.shape[:2] for image in images])
        stage[2] += time.perf_counter() - t0
        if timings is not None:
            timings.preprocess_ms += stage[0] * 1e3
            timings.inference_ms += stage[1] * 1e3
            timings.postprocess_ms += stage[2] * 1e3
            timings.images += len(images)
            timings.slices += len(found)
        return results


def with_slices(pipeline: BatchPipeline, slices: SliceSettings | None) -> BatchPipeline:
    """``pipeline``'s settings and backend in a pipeline that slices with ``slices`` (None: a
    plain :class:`BatchPipeline`)."""
    state = {k: v for k, v in vars(pipeline).items() if k not in ("slices", "answer", "_noted_small", "_noted_low_conf")}
    if slices is None:
        plain = BatchPipeline.__new__(BatchPipeline)
        plain.__dict__.update(state)
        return plain
    if not isinstance(slices, SliceSettings):
        raise InvalidInputError(f"slices must be a SliceSettings or None, got {type(slices).__name__}")
    sliced = SlicedPipeline.__new__(SlicedPipeline)
    sliced.__dict__.update(state, slices=slices)
    if sliced.static_batch == 1:
        log.warning("note: %s has a static batch of 1, so each slice is its own backend call (export with "
                    "--dynamic, and slices go %d at a time)", pipeline.backend.path.name, SLICE_BATCH)
    elif sliced.static_batch is None and not sliced.batch_size_given:
        log.info("slices go to the backend %d at a time (the fastest batch measured; batch_size= sets another)",
                 SLICE_BATCH)
    return sliced


__all__ = ["SliceInputs", "SliceLayout", "SliceSettings", "SlicedPipeline", "with_slices"]
