"""Segmentation scores from a confusion histogram (the FCN reference's definitions).

hist[t, p] counts pixels of true class t predicted as p; pixels labelled outside [0, n) (255 = ignore)
are not counted. Classes absent from both truth and prediction give NaN IoU and are left out of means.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt


def fast_hist(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    truth = np.asarray(truth).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    keep = (truth >= 0) & (truth < n)
    return np.bincount(n * truth[keep] + pred[keep], minlength=n * n).reshape(n, n)


def scores(hist: np.ndarray) -> dict[str, float | list[float]]:
    """overall pixel accuracy, mean class accuracy, per-class IoU, mean IoU, frequency-weighted IoU."""
    hist = hist.astype(np.float64)
    diag, rows, cols = np.diag(hist), hist.sum(1), hist.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag.sum() / hist.sum() if hist.sum() else np.nan
        cls_acc = diag / rows
        iou = diag / (rows + cols - diag)
        freq = rows / hist.sum() if hist.sum() else rows * np.nan
    return {
        "pixel_acc": float(acc),
        "mean_acc": float(np.nanmean(cls_acc)) if np.isfinite(cls_acc).any() else float("nan"),
        "iou": [float(x) for x in iou],
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "fwavacc": float(np.nansum(freq * iou)),
    }


# ---------------------------------------------------------------------------------------------------------------
# Per-image metrics: foreground Jaccard (%) and the Hausdorff distance between contours (lrn-head-torso.txt).
#
# Conventions (label values: 0 background, 1 foreground, 255 ignore):
# * Jaccard(L, P) = |L ∩ P| / |L ∪ P| over the foreground class, in percent, pixels with truth 255 left out.
#   Both masks empty -> 100.0 (the prediction is exactly right); exactly one empty -> 0.0.
# * A mask's contour is its set of foreground pixels that have a 4-neighbour outside the mask; the image
#   border counts as outside, so a mask touching the border has a contour along it. Ignore pixels (255)
#   count as background of the truth (they do not count for Jaccard, but a contour needs a closed shape).
# * Hausdorff = max(sup_l inf_p d, sup_p inf_l d) between the two contours, Euclidean, in pixels.
#   Both masks empty -> 0.0. Exactly one empty -> the image diagonal, the largest distance the frame allows,
#   so that missing the object entirely (or hallucinating one) is penalised rather than dropped from the mean.
# * Dataset figures: pixel acc, mean acc, IoU and mean IoU come from the confusion histogram summed over all
#   images (FCN's score.py); Jaccard % and Hausdorff are per-image values reported as mean ± std (population
#   std, ddof=0), as the LRN paper's table does.
# ---------------------------------------------------------------------------------------------------------------


def foreground_jaccard(truth: np.ndarray, pred: np.ndarray, fg: int = 1, ignore: int = 255) -> float:
    """Foreground Jaccard index in percent (see the conventions above)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    keep = truth != ignore
    t = (truth == fg) & keep
    p = (pred == fg) & keep
    union = int(np.count_nonzero(t | p))
    if union == 0:
        return 100.0
    return 100.0 * int(np.count_nonzero(t & p)) / union


def contour(mask: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels of `mask` with a 4-neighbour outside it (the image border is outside)."""
    m = np.asarray(mask, bool)
    padded = np.pad(m, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~inner


def _directed(a: np.ndarray, b: np.ndarray) -> float:
    """sup over pixels of a of the Euclidean distance to the nearest pixel of b (b non-empty)."""
    dist = distance_transform_edt(~b)
    return float(dist[a].max())


def hausdorff(truth: np.ndarray, pred: np.ndarray, fg: int = 1) -> float:
    """Symmetric Hausdorff distance in pixels between the foreground contours (see the conventions above)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    lc, pc = contour(truth == fg), contour(pred == fg)
    has_l, has_p = bool(lc.any()), bool(pc.any())
    if not has_l and not has_p:
        return 0.0
    if has_l != has_p:
        h, w = truth.shape
        return float(np.hypot(h, w))
    return max(_directed(lc, pc), _directed(pc, lc))


def image_scores(truth: np.ndarray, pred: np.ndarray, n: int = 2) -> dict:
    """All per-image figures: FCN scores of this image's histogram, foreground Jaccard % and Hausdorff."""
    hist = fast_hist(truth, pred, n)
    out = scores(hist)
    out["jaccard"] = foreground_jaccard(truth, pred)
    out["hausdorff"] = hausdorff(truth, pred)
    out["hist"] = hist
    return out


def mean_std(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def aggregate(per_image: list[dict], n: int = 2) -> dict:
    """Dataset figures from per-image results: FCN scores of the summed histogram + Jaccard/Hausdorff mean ± std."""
    hist = np.zeros((n, n), np.int64)
    for r in per_image:
        hist += r["hist"]
    out = scores(hist)
    out["jaccard_mean"], out["jaccard_std"] = mean_std(r["jaccard"] for r in per_image)
    out["hausdorff_mean"], out["hausdorff_std"] = mean_std(r["hausdorff"] for r in per_image)
    out["images"] = len(per_image)
    out["hist"] = hist
    return out
