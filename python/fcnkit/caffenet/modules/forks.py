"""Caffe-semantics modules: layers of Caffe forks (BN of PSPNet/SegNet, ShuffleChannel, Axpy).

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""


import torch
from torch import nn


class CaffeBN(nn.Module):
    """The BN layer of yjxiong's Caffe (PSPNet; in this sdist but not registered): per-channel
    slope * (x - mean) / sqrt(var + eps) + bias with the stored statistics (four (1, C, 1, 1) blobs).
    With batch_stats (SegNet's BN in LEARN mode, two blobs) the batch's own statistics are used, with
    var = E(x^2) - E(x)^2."""

    def __init__(self, num_features: int, eps: float = 1e-5, batch_stats: bool = False):
        super().__init__()
        self.eps = eps
        self.batch_stats = batch_stats
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, batch_stats={self.batch_stats}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        if self.batch_stats:
            dims: list[int] = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims, keepdim=True)
            var = (x * x).mean(dim=dims, keepdim=True) - mean * mean
        else:
            mean = self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)



class CaffeShuffleChannel(nn.Module):
    """ShuffleNet's ShuffleChannel: channels viewed as (group, C / group), transposed."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def extra_repr(self) -> str:
        return f"group={self.group}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        rest: list[int] = list(x.shape[2:])
        y = x.reshape([n, self.group, c // self.group] + rest).transpose(1, 2)
        return y.reshape(x.shape)



class CaffeAxpy(nn.Module):
    """SENet's Axpy: a (N, C[, 1, 1]) * x + y, a broadcast over x's spatial axes."""

    def forward(self, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape: list[int] = [x.shape[0], x.shape[1]] + [1] * (x.dim() - 2)
        return a.reshape(shape) * x + y

