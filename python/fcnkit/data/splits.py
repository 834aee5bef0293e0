"""Train and val splits of a prepared dataset (paired LMDBs, or photo + mask folders) at a model's input size.

`load_split` returns uint8 BGR images (N, H, W, 3) and labels (N, H, W) (0, 1, 255 = ignore) at the size
the model's preprocessing feeds the net at inference (the Predictor's rule: a fixed side, or sides rounded
to a multiple of the downsampling), or S x S with `size` (which must suit that rule). Images are resized
area/linear, labels by nearest neighbour. Training batches need one size: data of mixed sizes needs
`--size`, and one line says so, naming the data. `load_val` keeps the val images as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnkit.data.datasets import load_samples
from fcnkit.data.preprocessing import Preprocessing
from fcnkit.errors import UserError


@dataclass
class Split:
    source: str
    images: np.ndarray | list  # (N, S, S, 3) uint8 BGR (training), or a list of images of any size (val)
    labels: np.ndarray | list  # (N, S, S) uint8, or a list
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> dict:
        sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in self.images})
        return {"source": self.source, "images": len(self), "sizes": sizes[:5]}


def load_val(data: str | Path, *, masks: str | Path | None = None, limit: int | None = None) -> Split:
    """The val split as it is (any sizes): the Predictor runs each image at the model's input size."""

    samples = load_samples(data, split="val", masks=masks, limit=limit)
    if not samples:
        raise UserError(f"{data}: the val split holds no images")
    return Split(str(data), [s.bgr for s in samples], [s.label for s in samples], [s.name for s in samples])


def fit_size(size: int, rule: str) -> int:
    """The nearest side >= 1 that satisfies a preprocessing size rule."""
    kind, _, n = rule.partition(":")
    if kind == "fixed":
        return int(n)
    if kind == "multiple":
        m = int(n)
        return max(m, round(size / m) * m)
    return size


def load_split(data: str | Path, split: str, preprocessing: Preprocessing, *, size: int | None = None,
               masks: str | Path | None = None, limit: int | None = None) -> Split:

    samples = load_samples(data, split=split, masks=masks, limit=limit)
    if not samples:
        raise UserError(f"{data}: the {split} split holds no images")
    shapes = {s.bgr.shape[:2] for s in samples}
    if size is not None:
        if fit_size(size, preprocessing.size_rule) != size:
            raise UserError(f"--size {size} does not suit the model ({preprocessing.describe()}); use "
                            f"--size {fit_size(size, preprocessing.size_rule)}")
        hw = (size, size)
    elif len(shapes) > 1:
        sizes = ", ".join(f"{w}x{h}" for h, w in sorted(shapes)[:3])
        raise UserError(f"{data}: {split} images come in {len(shapes)} sizes ({sizes}, ...); pass --size S to "
                        "resize them all to S x S for training")
    else:
        hw = preprocessing.input_size(*next(iter(shapes)))  # what the Predictor feeds the net at inference
    h, w = hw
    images = np.empty((len(samples), h, w, 3), np.uint8)
    labels = np.empty((len(samples), h, w), np.uint8)
    for i, s in enumerate(samples):
        im, lab = s.bgr, s.label
        if im.shape[:2] != (h, w):
            shrink = im.shape[0] * im.shape[1] > h * w
            im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        images[i], labels[i] = im, lab
    return Split(str(data), images, labels, [s.name for s in samples])
