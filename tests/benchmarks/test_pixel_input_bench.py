"""benchmarks/pixel_input_bench.py: both detectors timed, one table row each."""
from __future__ import annotations

import cv2
import numpy as np

from yolox_deploy.benchmarks import pixel_input_bench


def test_table_has_a_float_and_a_pixel_row(tiny_onnx, tmp_path, capsys):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    pixel_input_bench.main(["--model", str(tiny_onnx), "--image", str(image), "--rounds", "2", "--block", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| float input", "| pixel input"]
    assert all(cell.strip() for line in lines[2:] for cell in line.strip("|").split("|"))
