"""ResNet-50 / ResNet-152 (Kaiming He's Caffe release) with its layer names.

Caffe's layout, kept so the released weights load by name and behave as they did in Caffe:
`conv1` 7x7/2 (with bias) -> `bn_conv1` + `scale_conv1` -> ReLU -> `pool1` 3x3/2 max-pooling rounded up
(Caffe's ceil rule); four stages of bottleneck blocks `res{S}{B}` whose first block downsamples in its
1x1 `branch2a` and its projection `branch1` (stride 2, stages 3-5); every residual convolution without
bias, each followed by BatchNorm `bn{S}{B}_branchX` and Scale `scale{S}{B}_branchX`. Here one
`nn.BatchNorm2d` named `bn...` holds both (Caffe's Scale gamma/beta become its weight/bias).
Block names: ResNet-50 `a, b, c, ...`; ResNet-152 `a, b1, b2, ...` in stages 3 and 4 (as released).

`forward` returns the five downsampling levels: conv1 (stride 2), res2 (4), res3 (8), res4 (16), res5 (32).
"""

from __future__ import annotations

import string

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.models.encoders import scaled

RESNET_BLOCKS = {50: (3, 4, 6, 3), 152: (3, 8, 36, 3)}
PLANES = (64, 128, 256, 512)
EXPANSION = 4


def block_names(depth: int, stage: int, n: int) -> list[str]:
    """Caffe's block suffixes: 'a', 'b', ... or, in ResNet-152's long stages, 'a', 'b1', 'b2', ..."""
    if depth == 152 and stage in (3, 4):
        return ["a"] + [f"b{i}" for i in range(1, n)]
    return list(string.ascii_lowercase[:n])


class ResNetEncoder(nn.Module):
    def __init__(self, depth: int = 50, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
        self.depth = depth
        self.conv_bn: list[tuple[str, str]] = []  # (conv name, bn name)
        c1 = scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, c1, 7, stride=2, padding=3)
        self.bn_conv1 = nn.BatchNorm2d(c1)
        self.conv_bn.append(("conv1", "bn_conv1"))
        self.stages: list[list[tuple[str, bool]]] = []
        c_in = c1
        for stage, (n, planes) in enumerate(zip(RESNET_BLOCKS[depth], PLANES, strict=True), start=2):
            p = scaled(planes, width)
            blocks = []
            for i, suffix in enumerate(block_names(depth, stage, n)):
                prefix = f"res{stage}{suffix}"
                stride = 2 if (i == 0 and stage > 2) else 1
                convs = [("branch2a", c_in, p, 1, stride), ("branch2b", p, p, 3, 1),
                         ("branch2c", p, p * EXPANSION, 1, 1)]
                if i == 0:
                    convs.insert(0, ("branch1", c_in, p * EXPANSION, 1, stride))
                for branch, ci, co, k, s in convs:
                    self._conv_bn(f"{prefix}_{branch}", ci, co, k, s)
                blocks.append((prefix, i == 0))
                c_in = p * EXPANSION
            self.stages.append(blocks)
        self.channels = [c1] + [scaled(p, width) * EXPANSION for p in PLANES]
        # From scratch, each residual branch starts as identity (its last BatchNorm's gamma = 0; ours, the usual
        # remedy for deep ResNets trained without ImageNet weights); released weights overwrite it.
        for blocks in self.stages:
            for prefix, _ in blocks:
                nn.init.zeros_(getattr(self, f"bn{prefix[3:]}_branch2c").weight)

    def _conv_bn(self, name: str, c_in: int, c_out: int, k: int, stride: int) -> None:
        bn = "bn" + name[3:]  # res2a_branch1 -> bn2a_branch1
        self.add_module(name, nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False))
        self.add_module(bn, nn.BatchNorm2d(c_out))
        self.conv_bn.append((name, bn))

    def _unit(self, name: str, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
        y = getattr(self, "bn" + name[3:])(getattr(self, name)(x))
        return F.relu(y) if relu else y

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn_conv1(self.conv1(x)))
        feats = [x]
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for blocks in self.stages:
            for prefix, project in blocks:
                y = self._unit(f"{prefix}_branch2a", x)
                y = self._unit(f"{prefix}_branch2b", y)
                y = self._unit(f"{prefix}_branch2c", y, relu=False)
                shortcut = self._unit(f"{prefix}_branch1", x, relu=False) if project else x
                x = F.relu(y + shortcut)
            feats.append(x)
        return feats

    def caffe_layers(self) -> dict[str, dict[str, str]]:
        """Caffe layer name -> {converter state key: this module's state_dict key}."""
        out: dict[str, dict[str, str]] = {}
        for conv, bn in self.conv_bn:
            out[conv] = {"weight": f"{conv}.weight"} | ({"bias": f"{conv}.bias"} if conv == "conv1" else {})
            out[bn] = {"running_mean": f"{bn}.running_mean", "running_var": f"{bn}.running_var"}
            out["scale" + bn[2:]] = {"weight": f"{bn}.weight", "bias": f"{bn}.bias"}
        return out
