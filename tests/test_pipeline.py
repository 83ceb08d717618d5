"""BatchPipeline: the one batch path (letterbox -> backend -> postprocess) under Detector and video."""
from __future__ import annotations

import numpy as np
import pytest

from yolox_deploy import Detector
from yolox_deploy.pipeline import BatchPipeline, StageTimings
from yolox_deploy.processing.images import read_image


@pytest.fixture(scope="module")
def images(coco_images):
    return [read_image(p) for p in coco_images[:5]]


def test_detector_is_its_pipeline(nano_onnx, images):
    det = Detector(nano_onnx, batch_size=2)
    timings = StageTimings()
    direct = det.pipeline.run(images, timings)
    for a, b in zip(direct, det(images)):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert timings.images == 5 and timings.inference_ms > 0


def test_the_three_steps_give_the_run_answer(tiny_onnx, images):
    pipeline = Detector(tiny_onnx, conf=0.01, batch_size=3).pipeline  # dynamic batch: three in one call
    tensors, ratios = zip(*(pipeline.prepare(image) for image in images[:3]))
    outputs = pipeline.infer(pipeline.stack(list(tensors)))
    assert outputs.shape[0] == 3
    stepped = pipeline.postprocess(outputs, list(ratios), [image.shape[:2] for image in images[:3]])
    assert sum(len(d) for d in stepped) > 0
    for a, b in zip(stepped, pipeline.run(images[:3])):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_detector_settings_are_the_pipelines(nano_onnx, images):
    det = Detector(nano_onnx)
    det.conf = 0.6
    assert det.pipeline.conf == 0.6
    assert det(images[0]).scores.min() >= 0.6
    det.pipeline.max_det = 1
    assert det.max_det == 1 and len(det(images[0])) == 1


def test_with_settings_leaves_the_original_alone(nano_onnx):
    pipeline = Detector(nano_onnx, conf=0.3).pipeline
    low = pipeline.with_settings(conf=0.1, max_det=None)
    assert (pipeline.conf, pipeline.max_det) == (0.3, 300) and (low.conf, low.max_det) == (0.1, None)
    assert low.backend is pipeline.backend
    with pytest.raises(AttributeError, match="no setting 'threshold'"):
        pipeline.with_settings(threshold=0.5)


class _StaticBatch:
    """Just what stack() reads of a backend: a model with a fixed batch of 4."""

    input_shape = (4, 3, 64, 64)
    metadata = type("Meta", (), {"strides": (8, 16, 32)})()


def test_stack_pads_a_static_batch_with_the_last_input():
    pipeline = BatchPipeline(_StaticBatch(), (64, 64), conf=0.25, iou=0.45, class_agnostic=False, max_det=None,
                             clip_boxes=True, postprocess_impl="auto", class_names=None, batch_size=4)
    tensors = [np.full((3, 64, 64), i, np.float32) for i in range(2)]
    batch = pipeline.stack(tensors)
    assert batch.shape == (4, 3, 64, 64)
    assert [float(batch[i, 0, 0, 0]) for i in range(4)] == [0.0, 1.0, 1.0, 1.0]
