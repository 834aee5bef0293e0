"""Mask post-processing: ExtractNet's (extractnet-report.txt §2), for every model's masks.

Gaussian blur k=27 -> threshold 0.5 -> morphological opening k=39, for 224x224 masks. Kernel sizes are
scaled with the mask's shorter side relative to 224 (odd, at least 1) so a 112-px or a 2000-px mask is
smoothed by the same fraction of its size; `reference=None` uses the report's sizes as is.
"""

from __future__ import annotations

import cv2
import numpy as np

from fcnkit.config.seeds import EXTRACTNET_BLUR, EXTRACTNET_OPEN, EXTRACTNET_SIZE, EXTRACTNET_THRESHOLD
from fcnkit.data.boxes import box_label_map

POSTPROCESSING = ("none", "extractnet")


def _odd(k: float) -> int:
    k = max(1, int(round(k)))
    return k if k % 2 else k + 1


def postprocess_extractnet(mask: np.ndarray, reference: int | None = EXTRACTNET_SIZE) -> np.ndarray:
    """Binary (H, W) mask -> blurred, re-thresholded and opened binary uint8 mask (0/1)."""
    m = (np.asarray(mask) == 1).astype(np.float32)
    scale = 1.0 if reference is None else min(m.shape) / reference
    kb, ko = _odd(EXTRACTNET_BLUR * scale), _odd(EXTRACTNET_OPEN * scale)
    blurred = cv2.GaussianBlur(m, (kb, kb), 0)  # sigma derived from k, as cv2 does for sigma=0
    binary = (blurred >= EXTRACTNET_THRESHOLD).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ko, ko))
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(np.uint8)
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def finish_mask(logit: np.ndarray, box, *, clip: bool = True, largest: bool = False) -> np.ndarray:
    mask = (logit > 0).astype(np.uint8)
    if clip and box is not None:
        mask &= box_label_map(mask.shape, box)
    if largest:
        mask = largest_component(mask)
    return mask
