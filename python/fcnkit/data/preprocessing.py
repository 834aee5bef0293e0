"""How a model's input is made from an image: `Preprocessing` (channel order, mean, scale, size rule), shared by
the model registry, the training data and inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded image (H, W, 3) uint8 BGR becomes the net's (3, H', W') float32 input."""

    channel_order: str = "BGR"      # channel order the net expects
    mean: tuple[float, ...] = ()    # subtracted from 0-255 values, in the net's channel order
    scale: float = 1.0              # multiplied after subtracting the mean (Caffe's DataTransformer order)
    size_rule: str = "any"          # "any": the image's own size; "multiple:N": each side rounded to a
                                    # multiple of N; "fixed:S": resized to S x S
    def __post_init__(self):
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"channel_order must be BGR or RGB, got {self.channel_order!r}")
        kind, _, n = self.size_rule.partition(":")
        if kind not in ("any", "multiple", "fixed") or (kind != "any" and not n.isdigit()):
            raise ValueError(f"size_rule must be any, multiple:N or fixed:S, got {self.size_rule!r}")

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) the net runs at for an h x w image."""
        kind, _, n = self.size_rule.partition(":")
        if kind == "fixed":
            return int(n), int(n)
        if kind == "multiple":
            m = int(n)
            return max(m, round(h / m) * m), max(m, round(w / m) * m)
        return h, w

    def to_input(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR at the net's input size -> (3, H, W) float32, mean subtracted, scaled."""
        x = bgr if self.channel_order == "BGR" else bgr[..., ::-1]
        x = x.astype(np.float32)
        if self.mean:
            x -= np.asarray(self.mean, np.float32)
        if self.scale != 1.0:
            x *= np.float32(self.scale)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def describe(self) -> str:
        parts = [f"{self.channel_order} 0-255"]
        if self.mean:
            parts.append("minus mean (" + ", ".join(f"{m:g}" for m in self.mean) + ")")
        if self.scale != 1.0:
            parts.append(f"x {self.scale:g}")
        parts.append({"any": "any size", "multiple": "sides rounded to multiples of", "fixed": "resized to"}
                     [self.size_rule.partition(":")[0]] + (f" {self.size_rule.partition(':')[2]}"
                                                           if ":" in self.size_rule else ""))
        return ", ".join(parts)
