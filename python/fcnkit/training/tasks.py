"""Training batches for whole-image nets: shuffled, with the seeds' augmentation (flip, zoom, rotation of image
and label together). The patch CNN's patch batches are in `training.patches`."""

from __future__ import annotations

import cv2
import numpy as np

from fcnkit.data.preprocessing import Preprocessing
from fcnkit.data.splits import Split
from fcnkit.training.distributed import Dist


def draw(rng: np.random.Generator, opts: dict) -> tuple[bool, float, float]:
    """One image's augmentation (flip, angle, zoom), drawn from `rng` in a fixed order."""
    flip = bool(opts.get("flip")) and rng.random() < 0.5
    zoom, rot = float(opts.get("zoom", 0)), float(opts.get("rotate_deg", 0))
    if not (zoom or rot):
        return flip, 0.0, 1.0
    angle = rng.uniform(-rot, rot)
    return flip, angle, 1 + rng.uniform(0, zoom)


def augment(image: np.ndarray, label: np.ndarray, drawn: tuple[bool, float, float]) -> tuple:
    """Flip, zoom and rotate image and label together (labels by nearest neighbour; uncovered label = 255)."""
    flip, angle, scale = drawn
    if flip:
        image, label = image[:, ::-1], label[:, ::-1]
    if angle or scale != 1:
        h, w = label.shape
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, scale)
        image = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        label = cv2.warpAffine(np.ascontiguousarray(label), m, (w, h), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


class ImageTask:
    """Shuffled batches of (augmented) whole images: x (B, 3, S, S) float32, y (B, 1, S, S) float32 0/1/255.

    Under torchrun (`shard`: N ranks) each step takes N x B images of the seeded order, and this rank the
    ones at positions rank, rank + N, ... of them (DistributedSampler's split; every rank draws every
    image's augmentation, so the N ranks together see what one process with batch N x B sees). The order is
    padded to a multiple of N by repeating its start, so that every rank has a batch at every step."""

    def __init__(self, split: Split, preprocessing: Preprocessing, batch_size: int, augment_opts: dict | None,
                 shard: Dist | None = None):
        self.split, self.pre, self.batch, self.aug = split, preprocessing, batch_size, augment_opts or {}
        self.shard = shard or Dist()

    def steps(self) -> int:
        return max(1, -(-len(self.split) // (self.batch * self.shard.world)))

    def batches(self, rng: np.random.Generator):
        order = rng.permutation(len(self.split))
        n = self.shard.world
        pad = -len(order) % n
        order = np.concatenate([order, order[:pad]])
        step = self.batch * n
        for k in range(0, len(order), step):
            xs, ys = [], []
            for j, i in enumerate(order[k:k + step]):
                drawn = draw(rng, self.aug) if self.aug else None
                if not self.shard.keeps(j):
                    continue
                im, lab = self.split.images[i], self.split.labels[i]
                if drawn is not None:
                    im, lab = augment(im, lab, drawn)
                xs.append(self.pre.to_input(im))
                ys.append(lab[None].astype(np.float32))
            yield np.stack(xs), np.stack(ys)

    def end_epoch(self, model, epoch: int, device: str) -> None:
        pass
