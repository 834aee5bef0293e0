"""Training batches for whole-image nets: shuffled, with the seeds' augmentation (flip, zoom, rotation of image
and label together). The patch CNN's patch batches are in `training.patches`."""

from __future__ import annotations

import cv2
import numpy as np

from fcnkit.data.preprocessing import Preprocessing
from fcnkit.data.splits import Split


def augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, opts: dict) -> tuple:
    """Flip, zoom and rotate image and label together (labels by nearest neighbour; uncovered label = 255)."""
    if opts.get("flip") and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    zoom, rot = float(opts.get("zoom", 0)), float(opts.get("rotate_deg", 0))
    if zoom or rot:
        h, w = label.shape
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), rng.uniform(-rot, rot), 1 + rng.uniform(0, zoom))
        image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        label = cv2.warpAffine(np.ascontiguousarray(label), m, (w, h), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


class ImageTask:
    """Shuffled batches of (augmented) whole images: x (B, 3, S, S) float32, y (B, 1, S, S) float32 0/1/255."""

    def __init__(self, split: Split, preprocessing: Preprocessing, batch_size: int, augment_opts: dict | None):
        self.split, self.pre, self.batch, self.aug = split, preprocessing, batch_size, augment_opts or {}

    def steps(self) -> int:
        return max(1, -(-len(self.split) // self.batch))

    def batches(self, rng: np.random.Generator):
        order = rng.permutation(len(self.split))
        for k in range(0, len(order), self.batch):
            xs, ys = [], []
            for i in order[k:k + self.batch]:
                im, lab = self.split.images[i], self.split.labels[i]
                if self.aug:
                    im, lab = augment(im, lab, rng, self.aug)
                xs.append(self.pre.to_input(im))
                ys.append(lab[None].astype(np.float32))
            yield np.stack(xs), np.stack(ys)

    def end_epoch(self, model, epoch: int, device: str) -> None:
        pass
