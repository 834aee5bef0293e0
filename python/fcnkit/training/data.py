"""Training data: the prepared datasets the FCN uses (paired LMDBs, or photo + mask folders), at the model's
input size, with the seeds' augmentation, as batches for whole-image nets or labelled patches for the
patch CNN.

`load_split` returns uint8 BGR images (N, H, W, 3) and labels (N, H, W) (0, 1, 255 = ignore) at the size
the model's preprocessing feeds the net at inference (the Predictor's rule: a fixed side, or sides rounded
to a multiple of the downsampling), or S x S with `size` (which must suit that rule). Images are resized
area/linear, labels by nearest neighbour. Training batches need one size: data of mixed sizes needs
`--size`, and one line says so, naming the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.seeds import PATCH_BORDER, PATCH_SIZE
from fcnkit.errors import UserError
from fcnkit.models.registry import Preprocessing


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
    from fcnkit.evaluation.samples import load_samples  # noqa: PLC0415

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
    from fcnkit.evaluation.samples import load_samples  # noqa: PLC0415

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


# ----------------------------------------------------------------------------------- patches (patch CNN)
def box_of(label: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) bounding box of the foreground (label 1), None if there is none."""
    ys, xs = np.nonzero(label == 1)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


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


class PatchTask:
    """Random 32x32 patches (centres uniform over each image), labelled by the label map at their centre."""

    def __init__(self, split: Split, preprocessing: Preprocessing, batch_size: int, per_epoch: int,
                 label_maps: list[np.ndarray] | None = None, relabel_every: int = 0, boxes=None):
        self.split, self.pre, self.batch = split, preprocessing, batch_size
        self.per_epoch = per_epoch or 20 * len(split) * 64
        half = PATCH_SIZE // 2
        self.padded = np.pad(split.images, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
        if boxes is None:
            boxes = [box_of(lab) for lab in split.labels]
        self.boxes = boxes
        self.maps = label_maps or [box_label_map(lab.shape, b) for lab, b in zip(split.labels, boxes, strict=True)]
        self.relabel_every = relabel_every

    def steps(self) -> int:
        return max(1, self.per_epoch // self.batch)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.split.images.shape[1:3]
        idx = rng.integers(0, len(self.split), n)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        x = np.stack([self.pre.to_input(self.padded[i, y:y + PATCH_SIZE, c:c + PATCH_SIZE])
                      for i, y, c in zip(idx, ys, xs, strict=True)])
        t = np.array([self.maps[i][y, c] for i, y, c in zip(idx, ys, xs, strict=True)], np.float32)
        return x, t

    def batches(self, rng: np.random.Generator):
        for _ in range(self.steps()):
            yield self.sample(rng, self.batch)

    def end_epoch(self, model, epoch: int, device: str) -> None:
        """Iterative relabelling: patches outside the contour derived so far (or outside the box) become
        background for the next epochs."""
        if self.relabel_every and epoch % self.relabel_every == 0:
            from fcnkit.models.patchcnn.refine import derive_masks  # noqa: PLC0415

            masks = derive_masks(model, self.split.images, self.pre, self.boxes, device=device)
            self.maps = [m & box_label_map(m.shape, b) for m, b in zip(masks, self.boxes, strict=True)]
