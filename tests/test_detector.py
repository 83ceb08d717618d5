"""Detector: inputs of every accepted form, backends agree, settings and errors."""
from __future__ import annotations

import numpy as np
import pytest

from yolox_deploy import Detections, Detector
from yolox_deploy.errors import InvalidInputError, ModelFileError
from yolox_deploy.processing.images import read_image


def test_official_onnx_detects_people_on_a_real_image(nano_onnx, coco_images):
    det = Detector(nano_onnx)
    assert det.input_size == (416, 416) and det.backend.name == "onnxruntime"
    result = det(coco_images[0])
    assert isinstance(result, Detections) and len(result) > 0
    image = read_image(coco_images[0])
    assert result.image_size == image.shape[:2]
    assert (result.xyxy[:, 2] <= image.shape[1]).all() and (result.xyxy[:, 3] <= image.shape[0]).all()
    assert (np.diff(result.scores) <= 0).all() and result.scores.min() >= 0.25
    t = det.timings
    assert t.images == 1 and t.preprocess_ms > 0 and t.inference_ms > 0 and t.postprocess_ms > 0


def test_torch_and_onnxruntime_backends_agree(nano_pth, nano_onnx, coco_images):
    a = Detector(nano_pth)(coco_images[:4])
    b = Detector(nano_onnx)(coco_images[:4])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.class_ids, y.class_ids)
        np.testing.assert_allclose(x.xyxy, y.xyxy, atol=0.05)
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)


def test_pixel_input_gives_exactly_the_float_input_detections(nano_onnx, coco_images):
    native, plain = Detector(nano_onnx), Detector(nano_onnx, pixel_input=False)
    assert native.backend.native_pixels and not plain.backend.native_pixels
    for a, b in zip(native(coco_images[:6]), plain(coco_images[:6])):
        assert len(a) > 0
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_all_image_forms_give_the_same_detections(nano_onnx, coco_images):
    from PIL import Image

    det = Detector(nano_onnx)
    bgr = read_image(coco_images[1])
    want = det(bgr)
    forms = [coco_images[1], str(coco_images[1]), Image.fromarray(bgr[:, :, ::-1]),
             np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])]
    for got in det(forms):
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
    gray = det(bgr[:, :, 1])
    assert gray.image_size == bgr.shape[:2]


def test_batches_of_a_dynamic_model_equal_single_calls(tiny_onnx):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + 10 * i, 70, 3), dtype=np.uint8) for i in range(5)]
    single = Detector(tiny_onnx, conf=0.01)
    batched = Detector(tiny_onnx, conf=0.01, batch_size=2)
    for a, b in zip([single(im) for im in images], batched(images)):
        assert len(a) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    assert batched.timings.images == 5
    assert single(images[0]).class_names[:1] in ((), ("cat",), ("dog",), ("bird",))


def test_numpy_and_cpp_paths_agree_through_the_detector(nano_onnx, coco_images):
    a = Detector(nano_onnx, conf=0.01, postprocess_impl="cpp")(coco_images[:3])
    b = Detector(nano_onnx, conf=0.01, postprocess_impl="numpy")(coco_images[:3])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.scores, y.scores)
        np.testing.assert_allclose(x.xyxy, y.xyxy, atol=1e-4)


def test_settings_and_their_errors(nano_onnx, tiny_onnx, tiny_checkpoint):
    with pytest.raises(InvalidInputError, match="static input of 416x416"):
        Detector(nano_onnx, input_size=(640, 640))
    with pytest.raises(InvalidInputError, match="conf and iou must be in"):
        Detector(nano_onnx, conf=1.5)
    with pytest.raises(InvalidInputError, match="3 class names given but the model predicts 80"):
        Detector(nano_onnx, class_names=["a", "b", "c"])(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="not a positive multiple of 32"):
        Detector(tiny_checkpoint, input_size=(100, 100))
    assert Detector(tiny_checkpoint, input_size=(96, 128)).input_size == (96, 128)
    with pytest.raises(ModelFileError, match="unknown model file kind .xyz"):
        Detector("model.xyz")


def test_max_det_and_agnostic(nano_onnx, coco_images):
    many = Detector(nano_onnx, conf=0.001, max_det=None)(coco_images[2])
    capped = Detector(nano_onnx, conf=0.001, max_det=10)(coco_images[2])
    assert len(many) > 10 and len(capped) == 10
    np.testing.assert_array_equal(capped.scores, many.scores[:10])
    agnostic = Detector(nano_onnx, conf=0.001, max_det=None, class_agnostic=True)(coco_images[2])
    assert len(agnostic) < len(many)
