"""VGG-16 / VGG-19 convolutional trunk (configurations D and E) with Model Zoo layer names.

Level k (1..5) holds `conv{k}_1 ... conv{k}_n` (3x3, pad 1, ReLU), 64, 128, 256, 512, 512 filters
(times `width`); a 2x2 max-pooling precedes levels 2..5. `forward` returns the five levels' outputs, so
level k has stride 2^(k-1); `pooled(x)` is VGG's pool5 (stride 32). `batch_norm=True` adds a BatchNorm
`bn{k}_{i}` after each convolution (for nets trained from scratch on real photos; the Model Zoo releases
have none, so such an encoder takes no released weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.models.encoders import scaled

VGG_CHANNELS = (64, 128, 256, 512, 512)
VGG_REPEATS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


class VGGEncoder(nn.Module):
    def __init__(self, depth: int = 16, width: float = 1.0, in_channels: int = 3, batch_norm: bool = False):
        super().__init__()
        if depth not in VGG_REPEATS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_REPEATS)}, got {depth}")
        self.depth = depth
        self.batch_norm = batch_norm
        self.channels = [scaled(c, width) for c in VGG_CHANNELS]
        self.levels: list[list[str]] = []
        c_in = in_channels
        for level, (reps, ch) in enumerate(zip(VGG_REPEATS[depth], self.channels, strict=True), start=1):
            names = []
            for i in range(1, reps + 1):
                name = f"conv{level}_{i}"
                self.add_module(name, nn.Conv2d(c_in, ch, 3, padding=1))
                if batch_norm:
                    self.add_module(f"bn{level}_{i}", nn.BatchNorm2d(ch))
                names.append(name)
                c_in = ch
            self.levels.append(names)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k, names in enumerate(self.levels):
            if k:
                x = F.max_pool2d(x, 2)
            for name in names:
                x = getattr(self, name)(x)
                if self.batch_norm:
                    x = getattr(self, name.replace("conv", "bn"))(x)
                x = F.relu(x)
            feats.append(x)
        return feats

    def pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five levels and pool5 (stride 32) last."""
        feats = self.forward(x)
        return [*feats, F.max_pool2d(feats[-1], 2)]

    def caffe_layers(self) -> dict[str, dict[str, str]]:
        """Caffe layer name -> {Caffe blob role: this module's state_dict key}."""
        return {name: {"weight": f"{name}.weight", "bias": f"{name}.bias"} for names in self.levels for name in names}
