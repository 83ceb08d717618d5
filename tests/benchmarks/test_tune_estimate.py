"""The label-free ΔmAP estimate against labelled ΔmAP on the 80 shared images, for the
ONNX Runtime candidates (the full table, OpenVINO and ncnn included, is the script's:
docs/tune.md). Two folds: no image is scored by a model calibrated on it."""
from __future__ import annotations

import pytest

from yolox_deploy.benchmarks.tune_estimate import two_fold_deltas

pytest.importorskip("pycocotools")


@pytest.mark.assets
def test_the_estimate_lies_in_the_labelled_interval_is_never_optimistic_and_never_chooses_a_bad_int8(nano_pth, coco_dir):
    reference, rows = two_fold_deltas(nano_pth, coco_dir / "images", coco_dir / "instances_val2017.json",
                                      [("onnxruntime", "fp16"), ("onnxruntime", "int8"), ("onnxruntime", "int8-all")])
    assert 0.29 < reference < 0.32
    by_name = {r["candidate"]: r for r in rows}
    for row in rows:
        # inside the labelled 95% interval, and never optimistic: at most 0.005 above the labelled ΔmAP
        low, high = row["labelled_interval"]
        assert low <= row["estimate"] <= high and row["estimate"] <= row["labelled"] + 0.005, row
        assert row["ok"], row
        assert row["estimate_interval"][0] <= row["estimate"] <= row["estimate_interval"][1]
        if row["labelled"] < -0.01:
            assert not row["estimate_chooses_within_0.01"], row
    assert by_name["onnxruntime int8-all"]["labelled"] < -0.05  # a real loss, seen by both


def test_the_criterion_accepts_a_pessimistic_estimate_and_refuses_an_optimistic_one():
    from yolox_deploy.benchmarks.tune_estimate import judged

    assert judged(-0.0057, 0.0103, -0.0099, 0.0167)["ok"]  # NNCF: a gain the estimate cannot see
    assert not judged(0.0, -0.0115, -0.0192, -0.0016)["ok"]  # outside the interval, and optimistic
    assert not judged(-0.0020, -0.0100, -0.0200, 0.0)["not_optimistic"]  # inside, yet 0.008 too kind
