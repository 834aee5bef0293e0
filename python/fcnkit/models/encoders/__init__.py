"""Pure-PyTorch encoders whose layers carry the Caffe Model Zoo's names, so ImageNet weights load by name.

- `vgg.VGGEncoder` (VGG-16 / VGG-19): `conv1_1` ... `conv5_3` (`conv5_4`), 3x3 padded convolutions + ReLU in
  five levels separated by 2x2 max-pooling; it returns every level's feature maps (the skips).
- `resnet.ResNetEncoder` (ResNet-50 / ResNet-152, Kaiming He's Caffe release): `conv1`, `bn_conv1`,
  `res2a_branch2a`, `bn2a_branch2a`, ... with Caffe's pooling and stride placement.
- `zoo`: the Model Zoo releases (files, URLs, checksums, structural checks, `fetch-weights`) and
  `load_pretrained(encoder, release)`, which converts a release's caffemodel with the project's own
  converter (`fcnkit.caffenet.graph`) and loads it into an encoder layer by layer name.

A width multiplier shrinks every layer's channels (`width=1/16` for CPU stand-ins); only width 1 can take
the released weights. Nothing here downloads anything.
"""

from __future__ import annotations


def scaled(channels: int, width: float) -> int:
    """Channels of a layer at a width multiplier (at least 2)."""
    return max(2, int(round(channels * width)))
