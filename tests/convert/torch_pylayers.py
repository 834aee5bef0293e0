"""The PyTorch side of caffe_pylayers.py: a --plugin module for the converter tests."""

import torch
from torch import nn


class ScaledTanh(nn.Module):
    def __init__(self, param_str: str = ""):
        super().__init__()
        scale, shift = (float(v) for v in param_str.split(","))
        self.scale = scale
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(x) + self.shift
