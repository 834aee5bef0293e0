"""U-Net reference of lrn-head-torso.txt §2.2: the LRN's VGG-16 encoder, a U-Net decoder, one output map.

Decoder, deepest first, for levels k = 4..1: a 2x2 stride-2 transposed convolution of the decoder state to
level k's channels, concatenated with level k's feature maps (the skip), two 3x3 convolutions + ReLU;
then a 1x1 convolution to one logit map at full resolution. `batch_norm=True` (the real-photo CPU models)
adds BatchNorm after every convolution but the last, encoder included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.models.encoders.releases import load_pretrained
from fcnkit.models.encoders.vgg import VGGEncoder
from fcnkit.models.native import glorot_


class UNet(nn.Module):
    def __init__(self, width: float = 1.0, batch_norm: bool = False):
        super().__init__()
        self.encoder = VGGEncoder(16, width, batch_norm=batch_norm)
        chans = self.encoder.channels
        for k in range(len(chans) - 1, 0, -1):
            c = chans[k - 1]
            self.add_module(f"up{k}", nn.ConvTranspose2d(chans[k], c, 2, stride=2))
            self.add_module(f"dec{k}_1", nn.Conv2d(2 * c, c, 3, padding=1))
            self.add_module(f"dec{k}_2", nn.Conv2d(c, c, 3, padding=1))
            self.add_module(f"norm{k}_1", nn.BatchNorm2d(c) if batch_norm else nn.Identity())
            self.add_module(f"norm{k}_2", nn.BatchNorm2d(c) if batch_norm else nn.Identity())
        self.score = nn.Conv2d(chans[0], 1, 1)
        glorot_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        h = feats[-1]
        for k in range(len(feats) - 1, 0, -1):
            h = getattr(self, f"up{k}")(h)
            h = torch.cat([h, feats[k - 1]], 1)
            h = F.relu(getattr(self, f"norm{k}_1")(getattr(self, f"dec{k}_1")(h)))
            h = F.relu(getattr(self, f"norm{k}_2")(getattr(self, f"dec{k}_2")(h)))
        return self.score(h)

    def load_pretrained(self, folder=None) -> dict:
        return load_pretrained(self.encoder, "vgg16", folder)


def build(width: float = 1.0, batch_norm: bool = False) -> UNet:
    return UNet(width=width, batch_norm=batch_norm)
