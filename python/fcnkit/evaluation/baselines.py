"""ExtractNet's classical baseline (extractnet-report.txt §4.2); its mask post-processing (§2) is in
fcnkit.inference.postprocess.

Baseline (§4.2, after OpenCV's watershed tutorial): grayscale -> Otsu threshold -> connected regions ->
watershed -> each segment weighted by a centre-prioritised weight matrix, the heaviest segment is the mask.
Details the report leaves open, and what is done here:

* Otsu polarity: the side of the threshold that covers less of the image border is foreground (product
  photos have background at the border; a dark shoe on white and a light one on black both work).
* Connected regions / markers, as in the tutorial: 3x3 opening (2 passes) removes speckle, the dilated
  mask (3 passes) is "sure background", pixels whose distance to background exceeds 0.5 of the largest
  distance in their own region are "sure foreground"; each connected sure-foreground region is one marker.
* Watershed floods the colour image from those markers; the segments are the marker labels.
* Centre weights: a 2-D Gaussian centred on the image with sigma = half the image side per axis; a
  segment's score is the sum of the weights under it (area and centrality both count).
"""

from __future__ import annotations

import cv2
import numpy as np


def centre_weights(h: int, w: int) -> np.ndarray:
    yy = (np.arange(h, dtype=np.float64) - (h - 1) / 2) / (h / 2)
    xx = (np.arange(w, dtype=np.float64) - (w - 1) / 2) / (w / 2)
    return np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))


def _otsu_foreground(gray: np.ndarray) -> np.ndarray:
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    return binary if border.mean() <= 0.5 else 1 - binary


def extractnet_baseline(bgr: np.ndarray, return_steps: bool = False):
    """(H, W, 3) uint8 BGR -> (H, W) uint8 0/1 mask of the most prominent segment."""
    bgr = np.ascontiguousarray(bgr, np.uint8)
    h, w = bgr.shape[:2]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    fg = _otsu_foreground(gray)
    k3 = np.ones((3, 3), np.uint8)
    opened = cv2.morphologyEx(fg, cv2.MORPH_OPEN, k3, iterations=2)
    sure_bg = cv2.dilate(opened, k3, iterations=3)
    n_regions, regions = cv2.connectedComponents(opened)
    dist = cv2.distanceTransform(opened, cv2.DIST_L2, 5)
    sure_fg = np.zeros_like(opened)
    for r in range(1, n_regions):  # per region, so a small shoe next to a big blob still gets a marker
        inside = regions == r
        sure_fg[inside & (dist > 0.5 * dist[inside].max())] = 1
    unknown = (sure_bg == 1) & (sure_fg == 0)
    n_markers, markers = cv2.connectedComponents(sure_fg)
    markers = markers + 1  # background marker 1, regions 2..
    markers[unknown] = 0
    markers = cv2.watershed(bgr, markers.astype(np.int32))
    weights = centre_weights(h, w)
    best, best_score = None, 0.0
    for label in range(2, n_markers + 1):
        seg = markers == label
        s = float(weights[seg].sum())
        if s > best_score:
            best, best_score = label, s
    mask = (markers == best).astype(np.uint8) if best is not None else np.zeros((h, w), np.uint8)
    if return_steps:
        return mask, {"gray": gray, "otsu": fg, "regions": regions, "markers": markers}
    return mask
