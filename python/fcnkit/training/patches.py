"""The patch CNN (contour-refining-patch-cnn.txt): training on patches labelled by a rectangle, and refining a tag.

* `PatchTask`: random 32x32 patches labelled by the label map at their centre (inside the box ->
  foreground), with iterative relabelling by the contours derived so far;
* `refine_image(bgr, box)`: train the seed's net on this image's own patches unless a trained model is
  given, apply it densely, threshold at 0.5; options, the seed's list of ideas: `step` (denser application,
  smoother mask), `clip` (keep the mask inside the tag), `relabel` rounds (patches inside the box but
  outside the derived contour become background, and the net trains again), `largest` (keep the largest
  connected component), and the tag-free mode (`box=None`: patches near the border are background);
* `derive_masks`: the same post-processing for many images (relabelling, the dataset mode).
"""

from __future__ import annotations

import numpy as np
import torch

from fcnkit import models
from fcnkit.config.seeds import PATCH_BATCH, PATCH_LR, PATCH_SIZE
from fcnkit.data.boxes import box_label_map, box_of, tagfree_label_map
from fcnkit.data.preprocessing import Preprocessing
from fcnkit.data.splits import Split
from fcnkit.inference.backends import module_predictor
from fcnkit.inference.postprocess import finish_mask


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
            masks = derive_masks(model, self.split.images, self.pre, self.boxes, device=device)
            self.maps = [m & box_label_map(m.shape, b) for m, b in zip(masks, self.boxes, strict=True)]


def derive_masks(model, images, preprocessing: Preprocessing, boxes, *, device: str = "cpu", clip: bool = True,
                 largest: bool = False) -> list[np.ndarray]:
    logits = module_predictor(model, preprocessing, device=device).logits(list(images))
    return [finish_mask(g, b, clip=clip, largest=largest) for g, b in zip(logits, boxes, strict=True)]


def fit_patches(model, task, steps: int, *, lr: float = PATCH_LR, seed: int = 0, device: str = "cpu") -> float:
    """A short Adam run on a PatchTask's patches; returns the mean loss of the last 20 steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        x, t = task.sample(rng, task.batch)
        logit = model.patch_logits(torch.from_numpy(x).to(device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.from_numpy(t).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return float(np.mean(losses[-20:]))


def refine_image(bgr: np.ndarray, box=None, *, model=None, preprocessing: Preprocessing | None = None,
                 step: int | None = None, steps: int = 300, relabel: int = 0, clip: bool = True,
                 largest: bool = False, seed: int = 0, device: str = "cpu", batch: int = PATCH_BATCH) -> dict:
    """Mask of the object in `box` (x, y, w, h), or tag-free with box=None; returns mask, logit and losses."""
    spec = models.get("patchcnn")
    pre = preprocessing or spec.preprocessing
    if model is None:
        torch.manual_seed(seed)
        model = spec.build(**spec.config).to(device)
    if step is not None:
        model.step = step
    h, w = bgr.shape[:2]
    label_map = box_label_map((h, w), box) if box is not None else tagfree_label_map((h, w))
    split = Split("image", bgr[None], np.zeros((1, h, w), np.uint8), ["image"])
    losses = []
    rounds = relabel + 1 if steps else 1
    for r in range(rounds):
        if steps:
            task = PatchTask(split, pre, batch, steps * batch, label_maps=[label_map], boxes=[box])
            losses.append(fit_patches(model, task, steps, seed=seed + r, device=device))
        logit = module_predictor(model, pre, device=device).logit(bgr)
        mask = finish_mask(logit, box, clip=clip, largest=largest)
        label_map = mask if box is None else mask & box_label_map((h, w), box)
    return {"mask": mask, "logit": logit, "losses": losses, "model": model}
