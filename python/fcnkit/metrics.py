"""Segmentation scores from a confusion histogram (the FCN reference's definitions).

hist[t, p] counts pixels of true class t predicted as p; pixels labelled outside [0, n) (255 = ignore)
are not counted. Classes absent from both truth and prediction give NaN IoU and are left out of means.
"""

from __future__ import annotations

import numpy as np


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
