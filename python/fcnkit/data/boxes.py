"""Rectangular tags: the box of a mask, and the label maps a box (or no box) gives the patch CNN's weak
supervision (contour-refining-patch-cnn.txt)."""

from __future__ import annotations

import numpy as np

from fcnkit.config.seeds import PATCH_BORDER
from fcnkit.io.boxes import box_of, read_boxes

__all__ = ["box_of", "read_boxes", "box_label_map", "tagfree_label_map"]


def box_label_map(shape: tuple[int, int], box: tuple[int, int, int, int] | None) -> np.ndarray:
    """1 where a patch centred there counts as foreground: inside the rectangle."""
    m = np.zeros(shape, np.uint8)
    if box is not None:
        x, y, w, h = box
        m[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = 1
    return m


def tagfree_label_map(shape: tuple[int, int], border: float = PATCH_BORDER) -> np.ndarray:
    """The seed's tag-free idea: patches near the image border are background, all others foreground."""
    h, w = shape
    b = max(1, int(round(border * min(h, w))))
    m = np.zeros(shape, np.uint8)
    m[b:h - b, b:w - b] = 1
    return m
