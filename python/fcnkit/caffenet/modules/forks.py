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



class CaffePool3d(nn.Module):
    """C3D's Pooling3D (facebook/C3D pool3d_layer.cpp): windows kernel_depth x kernel_size x kernel_size with
    strides temporal_stride / stride, output sizes ceil((L - kd) / ts) + 1 and ceil((H + 2 pad - k) / s) + 1
    (no temporal padding), windows clipped to the input. MAX takes no padding; AVE divides by the window
    clipped to the padded input (temporally to the input)."""

    def __init__(self, method: str, kernel_size: tuple[int, int, int], stride: tuple[int, int, int], pad: int = 0):
        super().__init__()
        self.method = method
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad

    def extra_repr(self) -> str:
        return f"{self.method!r}, kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kd, k, _ = self.kernel_size
        ts, s, _ = self.stride
        p = self.pad
        length, h, w = x.shape[2], x.shape[3], x.shape[4]
        out_l = -((kd - length) // ts) + 1  # ceil((length - kd) / ts) + 1
        out_h = -((k - h - 2 * p) // s) + 1
        out_w = -((k - w - 2 * p) // s) + 1
        # every window starts inside the (padded) input: torch's ceil_mode is then C3D's rule, its divisor the
        # window clipped to the padded input (count_include_pad), as C3D's
        fits = (out_l - 1) * ts < length and (out_h - 1) * s < h + p and (out_w - 1) * s < w + p
        if fits and 2 * p <= k:
            if self.method == "max":  # C3D pads AVE only
                return torch.nn.functional.max_pool3d(x, self.kernel_size, self.stride, ceil_mode=True)
            return torch.nn.functional.avg_pool3d(x, self.kernel_size, self.stride, padding=(0, p, p), ceil_mode=True,
                                                  count_include_pad=True)
        # otherwise pad the far ends so every (clipped) window is whole; the padding never wins a max / adds to a sum
        need_l = max((out_l - 1) * ts + kd - length, 0)
        need_h = max((out_h - 1) * s + k - h - p, 0)
        need_w = max((out_w - 1) * s + k - w - p, 0)
        if self.method == "max":
            xp = torch.nn.functional.pad(x, [0, need_w, 0, need_h, 0, need_l], value=float("-inf"))
            return torch.nn.functional.max_pool3d(xp, self.kernel_size, self.stride)
        xp = torch.nn.functional.pad(x, [p, need_w, p, need_h, 0, need_l])
        total = torch.nn.functional.avg_pool3d(xp, self.kernel_size, self.stride) * float(kd * k * k)
        # divisor: the window clipped to the padded input (H + pad, W + pad) and temporally to the input
        t0 = torch.arange(out_l, device=x.device) * ts
        h0 = torch.arange(out_h, device=x.device) * s - p
        w0 = torch.arange(out_w, device=x.device) * s - p
        dl = torch.clamp(t0 + kd, max=length) - t0
        dh = torch.clamp(h0 + k, max=h + p) - h0
        dw = torch.clamp(w0 + k, max=w + p) - w0
        div = (dl.reshape(-1, 1, 1) * dh.reshape(1, -1, 1) * dw.reshape(1, 1, -1)).to(x.dtype)
        return total[:, :, :out_l, :out_h, :out_w] / div
