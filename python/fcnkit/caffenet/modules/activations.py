"""Caffe-semantics modules: Power, Exp, Log, AbsVal, Threshold, ReLU6, HardSigmoid.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""

import math

import torch
from torch import nn


class CaffePower(nn.Module):
    """Caffe's Power: (shift + scale * x) ^ power."""

    def __init__(self, power: float = 1.0, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.power = power
        self.scale = scale
        self.shift = shift

    def extra_repr(self) -> str:
        return f"power={self.power}, scale={self.scale}, shift={self.shift}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale + self.shift
        if self.power == 1.0:
            return y
        return torch.pow(y, self.power)



class CaffeExp(nn.Module):
    """Caffe's Exp: base ^ (shift + scale * x); base -1 means e."""

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        log_base = 1.0 if base == -1.0 else math.log(base)
        self.inner_scale = log_base * scale
        self.outer_scale = 1.0 if shift == 0.0 else math.exp(log_base * shift)
        self.base = base
        self.scale = scale
        self.shift = shift

    def extra_repr(self) -> str:
        return f"base={self.base}, scale={self.scale}, shift={self.shift}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x * self.inner_scale)
        if self.outer_scale != 1.0:
            y = y * self.outer_scale
        return y



class CaffeLog(nn.Module):
    """Caffe's Log: log_base(shift + scale * x); base -1 means e."""

    def __init__(self, base: float = -1.0, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.base_scale = 1.0 if base == -1.0 else 1.0 / math.log(base)
        self.base = base
        self.scale = scale
        self.shift = shift

    def extra_repr(self) -> str:
        return f"base={self.base}, scale={self.scale}, shift={self.shift}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.log(x * self.scale + self.shift)
        if self.base_scale != 1.0:
            y = y * self.base_scale
        return y



class CaffeAbsVal(nn.Module):
    """Caffe's AbsVal: |x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)



class CaffeThreshold(nn.Module):
    """Caffe's Threshold: 1 where x > threshold, else 0."""

    def __init__(self, threshold: float = 0.0):
        super().__init__()
        self.threshold = threshold

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)



class CaffeReLU6(nn.Module):
    """This Caffe's ReLU6: min(max(x, 0) + negative_slope * min(x, 0), threshold)."""

    def __init__(self, negative_slope: float = 0.0, threshold: float = 6.0):
        super().__init__()
        self.negative_slope = negative_slope
        self.threshold = threshold

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}, threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.clamp(x, min=0.0) + self.negative_slope * torch.clamp(x, max=0.0)
        return torch.clamp(y, max=self.threshold)



class CaffeHardSigmoid(nn.Module):
    """This Caffe's HardSigmoid: max(0, min(1, alpha * x + beta))."""

    def __init__(self, alpha: float = 0.2, beta: float = 0.5):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.alpha + self.beta, 0.0, 1.0)

