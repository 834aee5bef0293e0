"""Metrics against small cases worked out by hand, including empty masks and ignore pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fcnkit.evaluation.metrics import aggregate, contour, foreground_jaccard, hausdorff, image_scores

TRUTH = np.array([[0, 0, 0, 0],
                  [0, 1, 1, 0],
                  [0, 1, 1, 0],
                  [0, 0, 0, 0]], np.uint8)
PRED = np.array([[0, 0, 0, 0],
                 [0, 1, 1, 1],
                 [0, 1, 1, 0],
                 [0, 0, 0, 0]], np.uint8)


def test_hand_computed_4x4():
    r = image_scores(TRUTH, PRED)
    assert r["hist"].tolist() == [[11, 1], [0, 4]]
    assert r["pixel_acc"] == pytest.approx(15 / 16)
    assert r["mean_acc"] == pytest.approx((11 / 12 + 1) / 2)
    assert r["iou"] == pytest.approx([11 / 12, 4 / 5])
    assert r["mean_iou"] == pytest.approx((11 / 12 + 4 / 5) / 2)
    assert r["fwavacc"] == pytest.approx(12 / 16 * 11 / 12 + 4 / 16 * 4 / 5)
    assert r["jaccard"] == pytest.approx(80.0)
    assert r["hausdorff"] == pytest.approx(1.0)  # the extra pixel (1,3) is 1 px from truth's contour pixel (1,2)


def test_contour_of_a_square_is_its_ring_and_the_border_closes_it():
    m = np.zeros((10, 10), bool)
    m[2:7, 2:7] = True
    c = contour(m)
    assert c.sum() == 16 and not c[3:6, 3:6].any() and c[2, 2:7].all()
    full = contour(np.ones((5, 5), bool))
    assert full.sum() == 16 and not full[1:4, 1:4].any()


def test_hausdorff_shift_and_outlier():
    t = np.zeros((10, 10), np.uint8)
    t[2:7, 2:7] = 1
    shifted = np.roll(t, 3, axis=1)
    assert hausdorff(t, shifted) == pytest.approx(3.0)
    outlier = t.copy()
    outlier[9, 9] = 1
    assert hausdorff(t, outlier) == pytest.approx(math.sqrt(18))  # (9,9) -> corner (6,6)
    assert hausdorff(outlier, t) == pytest.approx(math.sqrt(18))  # symmetric


def test_hausdorff_matches_scipy_point_set_definition():
    from scipy.spatial.distance import directed_hausdorff

    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.random((20, 30)) < 0.3
        b = rng.random((20, 30)) < 0.3
        pa, pb = np.argwhere(contour(a)), np.argwhere(contour(b))
        ref = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
        assert hausdorff(a.astype(np.uint8), b.astype(np.uint8)) == pytest.approx(ref)


def test_empty_masks_convention():
    empty = np.zeros((4, 4), np.uint8)
    both = image_scores(empty, empty)
    assert both["jaccard"] == 100.0 and both["hausdorff"] == 0.0
    assert math.isnan(both["iou"][1]) and both["mean_iou"] == 1.0  # absent class left out of the mean
    missed = image_scores(TRUTH, empty)
    assert missed["jaccard"] == 0.0 and missed["hausdorff"] == pytest.approx(math.hypot(4, 4))
    assert missed["iou"] == pytest.approx([12 / 16, 0.0])
    invented = image_scores(empty, PRED)
    assert invented["jaccard"] == 0.0 and invented["hausdorff"] == pytest.approx(math.hypot(4, 4))


def test_ignore_pixels_do_not_count():
    t = TRUTH.copy()
    t[1, 3] = 255  # the one wrong pixel is now "don't care"
    r = image_scores(t, PRED)
    assert r["hist"].tolist() == [[11, 0], [0, 4]]
    assert r["pixel_acc"] == 1.0 and r["jaccard"] == 100.0
    assert foreground_jaccard(np.full((3, 3), 255, np.uint8), np.ones((3, 3), np.uint8)) == 100.0


def test_aggregate_sums_histograms_and_reports_mean_std():
    a, b = image_scores(TRUTH, PRED), image_scores(TRUTH, TRUTH)
    agg = aggregate([a, b])
    assert agg["hist"].tolist() == [[23, 1], [0, 8]]
    assert agg["pixel_acc"] == pytest.approx(31 / 32)
    assert agg["iou"][1] == pytest.approx(8 / 9)
    assert agg["jaccard_mean"] == pytest.approx(90.0) and agg["jaccard_std"] == pytest.approx(10.0)
    assert agg["hausdorff_mean"] == pytest.approx(0.5) and agg["hausdorff_std"] == pytest.approx(0.5)
    assert agg["images"] == 2


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        hausdorff(np.zeros((3, 3)), np.zeros((3, 4)))
