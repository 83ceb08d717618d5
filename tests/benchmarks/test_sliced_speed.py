"""benchmarks/sliced_speed.py counts the model inputs our pipeline and sahi's loop actually run."""
from __future__ import annotations

import numpy as np

from yolox_deploy.benchmarks.sliced_speed import model_inputs
from yolox_deploy.processing.merge import slice_windows


def test_an_image_within_one_window_is_one_input_not_two():
    assert model_inputs(np.zeros((400, 416, 3), np.uint8)) == 1  # counted as 1 window + 1 whole pass before
    windows = len(slice_windows(480, 640, (416, 416), 0.2))
    assert windows > 1 and model_inputs(np.zeros((480, 640, 3), np.uint8)) == windows + 1
