"""How the converter's checks compare a converted net with its reference (Caffe, or PyTorch for model.onnx):
the largest absolute difference relative to the reference blob's largest magnitude, against one tolerance.
`--verify`, the ONNX check and the model zoo all use these functions and this default."""

from __future__ import annotations

import math

import numpy as np

TOL = 1e-4  # max |ref - out| / max |ref|: float32 rounding through deep nets stays below it


def magnitude_and_diff(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """(max |ref|, max |ref - out|), computed in float64; (0, 0) for empty blobs. Shapes must agree."""
    if not ref.size:
        return 0.0, 0.0
    ref = ref.astype(np.float64, copy=False)
    return float(np.abs(ref).max()), float(np.abs(ref - out.astype(np.float64, copy=False)).max())


def relative(diff: float, scale: float) -> float:
    """diff / scale; exact agreement with an all-zero reference is 0, any difference from it infinite."""
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def rel_diff(ref: np.ndarray, out: np.ndarray) -> float:
    """Max |ref - out| relative to max |ref|; infinite when the shapes differ."""
    if ref.shape != out.shape:
        return math.inf
    scale, diff = magnitude_and_diff(ref, out)
    return relative(diff, scale)


def fraction_beyond(ref: np.ndarray, out: np.ndarray, tol: float = TOL) -> float:
    """Fraction of the values that differ by more than tol of max |ref| (1.0 when the shapes differ)."""
    if ref.shape != out.shape:
        return 1.0
    if not ref.size:
        return 0.0
    ref = ref.astype(np.float64, copy=False)
    return float((np.abs(ref - out) > tol * float(np.abs(ref).max())).mean())
