"""ExtractNet's models (extractnet-report.txt §4): autoencoders and pretrained-encoder models.

* `AutoEncoder` (§4.1.1-4.1.2): three encoder convolutions and three decoder transposed convolutions,
  kernel 3, stride 2 (the encoder halves each side, the decoder doubles it), ReLU between layers, one
  logit map out. `interconnected=True` concatenates each encoder layer's activations onto the input of
  the layer after its mirrored decoder layer (U-Net-style links): enc2 -> after dec1, enc1 -> after dec2.
* `EncoderDecoder` (§4.1.3): a VGG-19 or ResNet-50/152 encoder (Model Zoo layer names; frozen when it
  carries ImageNet weights) to its deepest map at stride 32, then one kernel-3 stride-2 transposed
  convolution per downsampling step (five), each but the last followed by optional batch normalisation
  and ReLU or PReLU; the last gives the logit map at full resolution. No skips (the report's decoder
  "contains only upsampling layers").
Inputs must have sides divisible by the total downsampling (8 or 32): the registry's size rule rounds
them (the report's "lightweight pre-processing").
"""

from __future__ import annotations

import torch
from torch import nn

from fcnkit.config.seeds import EXTRACTNET_AE_CHANNELS, EXTRACTNET_DECODER_CHANNELS
from fcnkit.models.encoders import scaled
from fcnkit.models.encoders.releases import build_encoder, load_pretrained
from fcnkit.models.native import glorot_


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)


ACTIVATIONS = ("relu", "prelu")


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind != "relu":
        raise ValueError(f"activation must be relu or prelu, got {kind!r}")
    return nn.ReLU()


class AutoEncoder(nn.Module):
    def __init__(self, width: float = 1.0, interconnected: bool = False, batch_norm: bool = False,
                 activation: str = "relu"):
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in EXTRACTNET_AE_CHANNELS)
        self.interconnected = interconnected
        link = interconnected
        self.enc1, self.enc2, self.enc3 = (nn.Conv2d(a, b, 3, stride=2, padding=1)
                                           for a, b in ((3, c1), (c1, c2), (c2, c3)))
        self.dec1 = _up(c3, c2)
        self.dec2 = _up(c2 * (2 if link else 1), c1)
        self.dec3 = _up(c1 * (2 if link else 1), 1)
        self.norm = nn.ModuleList([nn.BatchNorm2d(c) if batch_norm else nn.Identity() for c in (c1, c2, c3, c2, c1)])
        self.act = nn.ModuleList([_act(activation, c) for c in (c1, c2, c3, c2, c1)])
        glorot_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.act[0](self.norm[0](self.enc1(x)))
        e2 = self.act[1](self.norm[1](self.enc2(e1)))
        e3 = self.act[2](self.norm[2](self.enc3(e2)))
        d1 = self.act[3](self.norm[3](self.dec1(e3)))
        d2 = self.act[4](self.norm[4](self.dec2(torch.cat([d1, e2], 1) if self.interconnected else d1)))
        return self.dec3(torch.cat([d2, e1], 1) if self.interconnected else d2)


class EncoderDecoder(nn.Module):
    def __init__(self, encoder: str = "resnet50", width: float = 1.0, batch_norm: bool = True,
                 activation: str = "relu"):
        super().__init__()

        kind, depth = ("vgg", 19) if encoder == "vgg19" else ("resnet", int(encoder.removeprefix("resnet")))
        self.release = encoder
        self.kind = kind
        self.encoder = build_encoder(kind, depth, width)
        c_in = self.encoder.channels[-1]
        layers: list[nn.Module] = []
        for c in (scaled(c, width) for c in EXTRACTNET_DECODER_CHANNELS):
            layers += [_up(c_in, c), nn.BatchNorm2d(c) if batch_norm else nn.Identity(), _act(activation, c)]
            c_in = c
        layers.append(_up(c_in, 1))
        self.decoder = nn.Sequential(*layers)
        glorot_(self.decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "vgg":
            deepest = self.encoder.pooled(x)[-1]
        else:
            deepest = self.encoder(x)[-1]
        return self.decoder(deepest)

    def load_pretrained(self, folder=None) -> dict:
        return load_pretrained(self.encoder, self.release, folder)


def build_autoencoder(width: float = 1.0, interconnected: bool = False, batch_norm: bool = False,
                      activation: str = "relu") -> AutoEncoder:
    return AutoEncoder(width, interconnected, batch_norm, activation)


def build_encoder_decoder(encoder: str = "resnet50", width: float = 1.0, batch_norm: bool = True,
                          activation: str = "relu") -> EncoderDecoder:
    return EncoderDecoder(encoder, width, batch_norm, activation)
