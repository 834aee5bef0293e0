"""The Label Refinement Network of lrn-head-torso.txt §2.1 on a VGG-16 encoder.

Encoder: VGG-16's 13 convolutions in five levels (`VGGEncoder`, Model Zoo names), 2x2 max-pooling between
levels, so level k has stride 2^(k-1) and the deepest (level 5) stride 16.
Refinement units, coarsest first:
* unit 5 on level 5's feature maps: conv 64 + ReLU, conv 1 -> the coarsest label map (stride 16);
* unit k = 4..1: level k's feature maps through the skip, concatenated with the previous label map
  upsampled x2 (its sigmoid, i.e. the label probabilities), then conv 64 + ReLU, conv 1 -> label map at
  level k's resolution; unit 1's is the full-resolution output.
Variant `skip_conv=True` is the original LRN (Islam et al.): the skip first goes through a convolution
with as many filters as output channels (here 1) before the concatenation; the seed drops it because with
one output channel the net "was unable to learn properly".
All convolutions 3x3, padded; `batch_norm=True` (the real-photo CPU models) adds BatchNorm after the
encoder's and the refinement units' hidden convolutions.
Outputs are logits (the sigmoid is in the loss and in `fcnkit.inference`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.config.seeds import LRN_REFINE_FILTERS
from fcnkit.models.encoders import scaled
from fcnkit.models.encoders.releases import load_pretrained
from fcnkit.models.encoders.vgg import VGGEncoder
from fcnkit.models.native import glorot_


class LRN(nn.Module):
    def __init__(self, width: float = 1.0, skip_conv: bool = False, batch_norm: bool = False):
        super().__init__()
        self.encoder = VGGEncoder(16, width, batch_norm=batch_norm)
        self.skip_conv = skip_conv
        f = scaled(LRN_REFINE_FILTERS, width)
        chans = self.encoder.channels
        self.levels = len(chans)
        for k in range(self.levels, 0, -1):
            c_in = chans[k - 1]
            if k < self.levels:
                if skip_conv:
                    self.add_module(f"skip{k}", nn.Conv2d(c_in, 1, 3, padding=1))
                    c_in = 1
                c_in += 1  # the previous unit's label map
            self.add_module(f"refine{k}_conv", nn.Conv2d(c_in, f, 3, padding=1))
            self.add_module(f"refine{k}_norm", nn.BatchNorm2d(f) if batch_norm else nn.Identity())
            self.add_module(f"refine{k}_label", nn.Conv2d(f, 1, 3, padding=1))
        glorot_(self)

    def supervised(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Label-map logits at every level, coarsest (stride 16) first, full resolution last."""
        feats = self.encoder(x)
        outs: list[torch.Tensor] = []
        prev = None
        for k in range(self.levels, 0, -1):
            h = feats[k - 1]
            if prev is not None:
                if self.skip_conv:
                    h = getattr(self, f"skip{k}")(h)
                up = F.interpolate(torch.sigmoid(prev), size=h.shape[-2:], mode="bilinear", align_corners=False)
                h = torch.cat([h, up], 1)
            h = F.relu(getattr(self, f"refine{k}_norm")(getattr(self, f"refine{k}_conv")(h)))
            prev = getattr(self, f"refine{k}_label")(h)
            outs.append(prev)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supervised(x)[-1]

    def load_pretrained(self, folder=None) -> dict:
        return load_pretrained(self.encoder, "vgg16", folder)


def build(width: float = 1.0, skip_conv: bool = False, batch_norm: bool = False) -> LRN:
    return LRN(width=width, skip_conv=skip_conv, batch_norm=batch_norm)
