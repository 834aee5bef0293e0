"""A PyTorch model's training recipe: a typed field of its `ModelSpec` (`spec.recipe`), and the same with
command-line or preset overrides (`Recipe.of`). `fcnkit.training` trains by it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from fcnkit.errors import UserError

LOSSES = ("bce", "bce_iou", "deep_bce", "patch_bce")
FREEZE = (None, "always", "plateau")
SCHEDULES = (None, "cosine", "onecycle")
WARMUP = 0.3      # "onecycle": the share of the steps that warm up from lr / WARMUP_DIV to lr (OneCycleLR's defaults)
WARMUP_DIV = 25.0


@dataclass
class Recipe:
    lr: float
    batch_size: int
    epochs: int
    loss: str = "bce"                 # "bce"; "bce_iou": BCE + soft Jaccard (1 - soft IoU per image);
    #                                   "deep_bce": summed over every supervision level; "patch_bce"
    augment: dict | None = None       # {"flip": bool, "zoom": z, "rotate_deg": r}: image and mask together
    patience: int = 0                 # a plateau: no val Jaccard gain for this many epochs (0: never stop early)
    freeze_encoder: str | None = None  # "always" (frozen pretrained encoder), "plateau" (frozen, then unfrozen)
    pretrained: str | None = None     # Caffe Model Zoo release loaded into the encoder before training
    task: str = "images"              # "images" (whole images + masks) or "patches" (patch CNN, box labels)
    patches_per_epoch: int = 0
    relabel_every: int = 0            # patches: relabel by the derived masks every N epochs (0: never)
    lr_schedule: str | None = None    # None: `lr` throughout; "cosine": from `lr` down to 0 over all epochs' steps;
    #                                   "onecycle": up from lr / 25 to `lr` (cosine, 30 % of the steps), then down to 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}")
        if self.freeze_encoder not in FREEZE:
            raise ValueError(f"freeze_encoder must be one of {FREEZE}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}")

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate of optimiser step `step` (0-based) of `total`."""
        step, total = min(step, total), max(1, total)
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
        if self.lr_schedule == "onecycle":
            warm = max(1, round(WARMUP * total))
            if step < warm:
                lo = self.lr / WARMUP_DIV
                return lo + (self.lr - lo) * 0.5 * (1.0 - math.cos(math.pi * step / warm))
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return self.lr

    @classmethod
    def of(cls, spec, **overrides) -> Recipe:
        """The recipe `spec` registers, with `overrides` (None values ignored), checked."""
        if spec.recipe is None:
            raise UserError(f"{spec.name} has no training recipe; train it with `{spec.how_to_train()}`")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise UserError(f"{spec.name}: no training setting {bad[0]!r}")
        given = {k: v for k, v in overrides.items() if v is not None}
        for k in ("epochs", "batch_size"):
            if k in given and given[k] < 1:
                raise UserError(f"--{k.replace('_', '-')} must be at least 1, got {given[k]}")
        if "lr" in given and not given["lr"] > 0:
            raise UserError(f"--lr must be positive, got {given['lr']}")
        return replace(spec.recipe, **given)

    def to_json(self) -> dict:
        return asdict(self)
