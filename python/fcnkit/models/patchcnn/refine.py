"""Refining rectangular tags with the patch CNN (contour-refining-patch-cnn.txt), and its options.

* `refine_image(bgr, box)`: train the seed's net on this image's own patches (centre inside the box ->
  foreground, outside -> background) unless a trained model is given, apply it densely, threshold at 0.5;
* options, the seed's list of ideas: `step` (denser application, smoother mask), `clip` (keep the mask
  inside the tag), `relabel` rounds (patches inside the box but outside the derived contour become
  background, and the net trains again), `largest` (keep the largest connected component), and the
  tag-free mode (`box=None`: patches near the border are background, the rest foreground).
* `derive_masks`: the same post-processing for many images (the trainer's relabelling, the dataset mode).
"""

from __future__ import annotations

import cv2
import numpy as np

from fcnkit.config.seeds import PATCH_BATCH, PATCH_LR
from fcnkit.models.registry import Preprocessing


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(np.uint8)
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def finish_mask(logit: np.ndarray, box, *, clip: bool = True, largest: bool = False) -> np.ndarray:
    from fcnkit.training.data import box_label_map  # noqa: PLC0415

    mask = (logit > 0).astype(np.uint8)
    if clip and box is not None:
        mask &= box_label_map(mask.shape, box)
    if largest:
        mask = largest_component(mask)
    return mask


def derive_masks(model, images, preprocessing: Preprocessing, boxes, *, device: str = "cpu", clip: bool = True,
                 largest: bool = False) -> list[np.ndarray]:
    from fcnkit.inference.backends import module_predictor  # noqa: PLC0415

    logits = module_predictor(model, preprocessing, device=device).logits(list(images))
    return [finish_mask(g, b, clip=clip, largest=largest) for g, b in zip(logits, boxes, strict=True)]


def fit_patches(model, task, steps: int, *, lr: float = PATCH_LR, seed: int = 0, device: str = "cpu") -> float:
    """A short Adam run on a PatchTask's patches; returns the mean loss of the last 20 steps."""
    import torch  # noqa: PLC0415

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
    from fcnkit import models  # noqa: PLC0415
    from fcnkit.training.data import PatchTask, Split, box_label_map, tagfree_label_map  # noqa: PLC0415

    spec = models.get("patchcnn")
    pre = preprocessing or spec.preprocessing
    if model is None:
        import torch  # noqa: PLC0415

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
        from fcnkit.inference.backends import module_predictor  # noqa: PLC0415

        logit = module_predictor(model, pre, device=device).logit(bgr)
        mask = finish_mask(logit, box, clip=clip, largest=largest)
        label_map = mask if box is None else mask & box_label_map((h, w), box)
    return {"mask": mask, "logit": logit, "losses": losses, "model": model}
