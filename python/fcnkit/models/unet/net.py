"""U-Net reference of lrn-head-torso.txt §2.2: the LRN's VGG-16 encoder, a U-Net decoder, one output map.

Decoder, deepest first, for levels k = 4..1: a 2x2 stride-2 transposed convolution of the decoder state to
level k's channels, concatenated with level k's feature maps (the skip), two 3x3 convolutions + ReLU;
then a 1x1 convolution to one logit map at full resolution. `batch_norm=True` (the real-photo CPU models)
adds BatchNorm after every convolution but the last, encoder included.

Options of the DUTS model (issue 20; ours, not the reference's): `coords` adds each pixel's row and column as
two input channels (salient objects sit near the centre: a prior a fully convolutional net cannot see by
itself), `contrast` adds a classical border-contrast saliency map computed from the input (`border_contrast`),
and `flip_average` makes the net, in eval mode, average its logits over the photo and its mirror image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.models.encoders.releases import load_pretrained
from fcnkit.models.encoders.vgg import VGGEncoder
from fcnkit.models.native import glorot_


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W): each pixel's row and column, -1 at the top / left edge to 1 at the bottom / right."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([ys, xs], 1)


def border_contrast(x: torch.Tensor, band: float = 0.1) -> torch.Tensor:
    """(N, 1, H, W): a classical background-contrast saliency map. Each pixel's colour (smoothed 5x5) against
    the mean colour of each of the image's four border bands (`band` of the side): the distance to the
    nearest of the four, divided by the image's mean distance (a pixel unlike every border is salient)."""
    h, w = x.shape[-2:]
    b = max(1, round(band * min(h, w)))
    smooth = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    sides = [x[..., :b, :], x[..., -b:, :], x[..., :, :b], x[..., :, -b:]]
    dist = torch.stack([(smooth - s.mean((2, 3), keepdim=True)).square().sum(1, keepdim=True).sqrt()
                        for s in sides]).amin(0)
    return dist / dist.mean((2, 3), keepdim=True).clamp(min=1e-6)


class UNet(nn.Module):
    def __init__(self, width: float = 1.0, batch_norm: bool = False, coords: bool = False, contrast: bool = False,
                 flip_average: bool = False):
        super().__init__()
        self.coords, self.contrast, self.flip_average = coords, contrast, flip_average
        self.encoder = VGGEncoder(16, width, in_channels=3 + 2 * coords + contrast, batch_norm=batch_norm)
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
        if self.flip_average and not self.training:  # test time: the mean of the photo's and its mirror's logits
            return 0.5 * (self._logits(x) + self._logits(x.flip(-1)).flip(-1))
        return self._logits(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        extra = ([coordinates(x)] if self.coords else []) + ([border_contrast(x)] if self.contrast else [])
        feats = self.encoder(torch.cat([x, *extra], 1) if extra else x)
        h = feats[-1]
        for k in range(len(feats) - 1, 0, -1):
            h = getattr(self, f"up{k}")(h)
            h = torch.cat([h, feats[k - 1]], 1)
            h = F.relu(getattr(self, f"norm{k}_1")(getattr(self, f"dec{k}_1")(h)))
            h = F.relu(getattr(self, f"norm{k}_2")(getattr(self, f"dec{k}_2")(h)))
        return self.score(h)

    def load_pretrained(self, folder=None) -> dict:
        return load_pretrained(self.encoder, "vgg16", folder)


def build(width: float = 1.0, batch_norm: bool = False, coords: bool = False, contrast: bool = False,
          flip_average: bool = False) -> UNet:
    return UNet(width=width, batch_norm=batch_norm, coords=coords, contrast=contrast, flip_average=flip_average)
