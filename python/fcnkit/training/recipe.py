"""A model's training recipe: the registry's `extra["train"]` plus command-line overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from fcnkit.errors import UserError

LOSSES = ("bce", "deep_bce", "patch_bce")
FREEZE = (None, "always", "plateau")


@dataclass
class Recipe:
    lr: float
    batch_size: int
    epochs: int
    loss: str = "bce"                 # "bce"; "deep_bce": summed over every supervision level; "patch_bce"
    augment: dict | None = None       # {"flip": bool, "zoom": z, "rotate_deg": r}: image and mask together
    patience: int = 0                 # a plateau: no val Jaccard gain for this many epochs (0: never stop early)
    freeze_encoder: str | None = None  # "always" (frozen pretrained encoder), "plateau" (frozen, then unfrozen)
    pretrained: str | None = None     # Caffe Model Zoo release loaded into the encoder before training
    task: str = "images"              # "images" (whole images + masks) or "patches" (patch CNN, box labels)
    patches_per_epoch: int = 0
    relabel_every: int = 0            # patches: relabel by the derived masks every N epochs (0: never)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}")
        if self.freeze_encoder not in FREEZE:
            raise ValueError(f"freeze_encoder must be one of {FREEZE}")

    @classmethod
    def of(cls, spec, **overrides) -> Recipe:
        known = {f.name for f in fields(cls)}
        base = {k: v for k, v in spec.extra.get("train", {}).items() if k in known}
        bad = sorted(set(overrides) - known)
        if bad:
            raise UserError(f"{spec.name}: no training setting {bad[0]!r}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        for k, v in (("epochs", base.get("epochs")), ("batch_size", base.get("batch_size"))):
            if v is not None and v < 1:
                raise UserError(f"--{k.replace('_', '-')} must be at least 1, got {v}")
        if base.get("lr") is not None and not base["lr"] > 0:
            raise UserError(f"--lr must be positive, got {base['lr']}")
        return cls(**base)

    def to_json(self) -> dict:
        return asdict(self)
