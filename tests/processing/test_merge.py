"""The merge of sliced detections: the NumPy reference against the sahi package's own
postprocess, the C++ kernel against the NumPy reference, and sahi's re-check quirk."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_sahi

from yolox_deploy.errors import InvalidInputError
from yolox_deploy.processing.merge import kernel_available, merge, merge_detections, slice_windows

needs_kernel = pytest.mark.skipif(not kernel_available(), reason="C++ kernel not built")


def sahi_merge(xyxy, scores, classes, merge, match, threshold, agnostic):
    from sahi.postprocess.combine import GreedyNMMPostprocess, NMSPostprocess
    from sahi.prediction import ObjectPrediction

    predictions = [ObjectPrediction(bbox=[float(v) for v in box], category_id=int(c), category_name=str(c),
                                    score=float(s), shift_amount=[0, 0], full_shape=[2000, 2000])
                   for box, s, c in zip(xyxy, scores, classes)]
    cls = NMSPostprocess if merge == "nms" else GreedyNMMPostprocess
    merged = cls(match_threshold=threshold, match_metric=match.upper(), class_agnostic=agnostic)(predictions)
    return (np.array([p.bbox.to_xyxy() for p in merged]).reshape(-1, 4), np.array([p.score.value for p in merged]),
            np.array([p.category.id for p in merged]))


def canonical(boxes, scores, classes):
    order = np.lexsort((boxes[:, 1], boxes[:, 0], classes, -np.round(scores, 6)))
    return boxes[order], scores[order], classes[order]


@pytest.mark.parametrize("merge", ["nms", "greedy_nmm"])
@pytest.mark.parametrize("match", ["iou", "ios"])
@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_merge_equals_sahis(merge, match, agnostic, seed):
    needs_sahi()
    rng = np.random.default_rng(seed)
    n = 60
    xy = rng.uniform(0, 1500, (n // 3, 2))
    base = np.concatenate([xy, xy + rng.uniform(10, 200, (n // 3, 2))], axis=1)
    boxes = np.repeat(base, 3, axis=0) + rng.normal(0, 8, (n, 4))  # clusters of three, as slices give
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    boxes = np.round(np.clip(boxes, 0, 2000), 2)  # sahi clips boxes to the image itself
    scores = np.round(rng.uniform(0.25, 1.0, n), 4)
    classes = rng.integers(0, 3, n)
    ours = canonical(*merge_detections(boxes, scores, classes, merge, match, 0.5, agnostic))
    theirs = canonical(*sahi_merge(boxes, scores, classes, merge, match, 0.5, agnostic))
    assert len(ours[0]) == len(theirs[0])
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-3)
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-6)
    np.testing.assert_array_equal(ours[2], theirs[2])


@pytest.mark.parametrize("size", [(416, 416), (320, 640), (1000, 1000)])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.5])
def test_the_windows_equal_sahis(size, overlap):
    needs_sahi()
    from sahi.slicing import get_slice_bboxes

    for h, w in [(1080, 1920), (416, 416), (500, 3000), (2000, 700)]:
        assert slice_windows(h, w, size, overlap) == [tuple(b) for b in get_slice_bboxes(
            h, w, size[0], size[1], False, overlap, overlap)]


@pytest.mark.parametrize("merge", ["nms", "greedy_nmm"])
@pytest.mark.parametrize("match", ["iou", "ios"])
@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("recheck", [True, False])
@pytest.mark.parametrize("seed", range(10))
@needs_kernel
def test_the_kernel_equals_the_numpy_reference(merge, match, agnostic, recheck, seed):
    from yolox_deploy.processing import _kernel

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(0, 80))
    xy = rng.uniform(0, 1000, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 150, (n, 2))], axis=1)
    boxes[rng.random(n) < 0.3] = boxes[0] if n else boxes[:0]  # exact duplicates: the tie order matters
    scores = np.round(rng.uniform(0.2, 1.0, n), 2)  # ties
    classes = rng.integers(0, 3, n)
    ours = merge_detections(boxes, scores, classes, merge, match, 0.5, agnostic,
                            recheck="sahi" if recheck else "none")
    kernel = _kernel.merge(boxes, scores, classes, merge, match, 0.5, agnostic, recheck)
    for a, b in zip(ours, kernel):
        np.testing.assert_array_equal(a, b)


# IoU 0.71 of the first box with each other one; once the second is merged in, the grown box has
# IoU 0.56 with the third: below 0.6, so sahi drops the third (neither merged nor kept)
QUIRK = (np.array([[0, 4, 10, 14], [0, 4, 10, 18], [0, 0, 10, 14]], dtype=np.float64), np.array([0.9, 0.8, 0.7]),
         np.array([0, 0, 0]))


@pytest.mark.parametrize("impl", ["numpy", pytest.param("cpp", marks=needs_kernel)])
def test_sahis_recheck_drops_a_matched_box_and_none_merges_it(impl):
    boxes, scores, classes = merge(*QUIRK, "greedy_nmm", "iou", 0.6, recheck="sahi", impl=impl)
    np.testing.assert_array_equal(boxes, [[0, 4, 10, 18]])
    np.testing.assert_array_equal(scores, [0.9])
    boxes, scores, _ = merge(*QUIRK, "greedy_nmm", "iou", 0.6, recheck="none", impl=impl)
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 18]])


def test_sahi_drops_it_too():
    needs_sahi()
    boxes, scores, _ = sahi_merge(*QUIRK, "greedy_nmm", "iou", 0.6, False)
    np.testing.assert_array_equal(boxes, [[0, 4, 10, 18]])


@pytest.mark.parametrize("impl", ["numpy", pytest.param("cpp", marks=needs_kernel)])
@pytest.mark.parametrize("bad", ["box", "score"])
def test_non_finite_input_is_refused_in_one_line(impl, bad):
    boxes, scores, classes = (a.copy() for a in QUIRK)
    if bad == "box":
        boxes[1, 2] = np.nan
    else:
        scores[2] = np.inf
    with pytest.raises(InvalidInputError, match=r"^merge takes finite boxes and scores \(NaN or inf given\)$"):
        merge(boxes, scores, classes, "nms", "iou", 0.5, impl=impl)


@pytest.mark.parametrize("kwargs,message", [
    (dict(merge="wbf"), "merge is one of"), (dict(match="giou"), "match one of"), (dict(recheck="x"), "recheck one of"),
])
def test_unknown_kinds_are_refused(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        merge(*QUIRK, **kwargs)


# The edges where a strict and a non-strict comparison differ: the grown box's metric with the third box
# is exactly the threshold (representable in binary), so sahi's re-check (has_match: metric >= t in
# sahi 0.12.8) keeps merging it, and so must ours; and threshold 0, where every same-class pair matches.
EXACT = [("iou", 0.5, [0, 0, 8, 8], [0, 2, 14, 12]), ("iou", 0.25, [0, 0, 8, 8], [4, 4, 12, 14]),
         ("ios", 0.5, [0, 0, 8, 8], [2, 4, 14, 12])]


@pytest.mark.parametrize("match,threshold,second,third", EXACT)
@pytest.mark.parametrize("impl", ["numpy", pytest.param("cpp", marks=needs_kernel)])
def test_a_metric_exactly_at_the_threshold_matches_as_in_sahi(match, threshold, second, third, impl):
    needs_sahi()
    boxes = np.array([[0, 0, 10, 10], second, third], dtype=np.float64)
    scores, classes = np.array([0.9, 0.8, 0.7]), np.zeros(3, np.int64)
    ours = merge(boxes, scores, classes, "greedy_nmm", match, threshold, impl=impl)
    theirs = sahi_merge(boxes, scores, classes, "greedy_nmm", match, threshold, False)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert len(ours[0]) == 1 and ours[0][0].tolist() == [0, 0, max(second[2], third[2]), max(second[3], third[3])]


@pytest.mark.parametrize("kind", ["nms", "greedy_nmm"])
@pytest.mark.parametrize("match", ["iou", "ios"])
@pytest.mark.parametrize("impl", ["numpy", pytest.param("cpp", marks=needs_kernel)])
def test_threshold_zero_fuses_every_same_class_box_as_sahi_does(kind, match, impl):
    needs_sahi()
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1500, (20, 2))
    boxes = np.round(np.concatenate([xy, xy + rng.uniform(10, 200, (20, 2))], axis=1), 2)  # most do not touch
    scores, classes = np.round(rng.uniform(0.25, 1, 20), 4), rng.integers(0, 3, 20)
    ours = canonical(*merge(boxes, scores, classes, kind, match, 0.0, impl=impl))
    theirs = canonical(*sahi_merge(boxes, scores, classes, kind, match, 0.0, False))
    assert len(ours[0]) == len(theirs[0]) == len(np.unique(classes))
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-3)
    np.testing.assert_array_equal(ours[2], theirs[2])


@pytest.mark.parametrize("impl", ["numpy", pytest.param("cpp", marks=needs_kernel)])
def test_arrays_of_different_lengths_are_refused_in_one_line(impl):
    boxes, scores, classes = QUIRK
    with pytest.raises(InvalidInputError, match=r"^merge takes as many boxes, scores and class ids"):
        merge(boxes, scores[:2], classes, "nms", "iou", 0.5, impl=impl)
