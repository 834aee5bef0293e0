"""Caffe-semantics modules: BatchNorm, Scale and Bias (by parameter or by a second bottom), LRN and MVN.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""


import torch
import torch.nn.functional as F
from torch import nn


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm (normalisation only; Caffe puts the affine part in a separate Scale layer).

    `running_mean`/`running_var` hold Caffe's stored statistics already divided by its moving-average
    scale factor. With `use_global_stats=False` Caffe normalises with the statistics of the batch
    itself, even at test time; so does this module.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, use_global_stats: bool = True, affine: bool = False):
        super().__init__()
        self.eps = eps
        self.use_global_stats = use_global_stats
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        # BatchNormKyle's use_alpha_beta: a per-channel scale and shift after the normalisation
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    def extra_repr(self) -> str:
        return (f"{self.running_mean.shape[0]}, eps={self.eps}, use_global_stats={self.use_global_stats}, "
                f"affine={self.weight is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            x2 = x.reshape(-1, 1)
        else:
            x2 = x
        if self.use_global_stats:
            y = F.batch_norm(x2, self.running_mean, self.running_var, None, None, False, 0.0, self.eps)
        else:
            dims: list[int] = [0] + list(range(2, x2.dim()))
            mean = x2.mean(dim=dims, keepdim=True)
            var = ((x2 - mean) ** 2).mean(dim=dims, keepdim=True)
            y = (x2 - mean) / torch.sqrt(var + self.eps)
        wt = self.weight
        b = self.bias
        if wt is not None and b is not None:
            shape = [1, x2.shape[1]] + [1] * (x2.dim() - 2)
            y = y * wt.reshape(shape) + b.reshape(shape)
        return y.reshape(x.shape)



def _broadcast_shape(p: torch.Tensor, axis: int, ndim: int) -> list[int]:
    """Shape that lines up a parameter covering axes [axis, axis + p.dim()) with an ndim tensor."""
    shape: list[int] = [1] * axis + list(p.shape)
    return shape + [1] * (ndim - len(shape))



class CaffeScale(nn.Module):
    """Caffe's Scale layer with a learned scale (and optional bias) over axes [axis, axis+num_axes)."""

    def __init__(self, shape: list[int], axis: int = 1, bias: bool = False):
        super().__init__()
        self.axis = axis
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None

    def extra_repr(self) -> str:
        return f"{list(self.weight.shape)}, axis={self.axis}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = _broadcast_shape(self.weight, self.axis, x.dim())
        y = x * self.weight.reshape(shape)
        b = self.bias
        if b is not None:
            y = y + b.reshape(shape)
        return y



class CaffeScaleByBlob(nn.Module):
    """Caffe's Scale layer with two bottoms: the second bottom is the scale (optional learned bias)."""

    def __init__(self, axis: int = 1, bias_shape: list[int] | None = None):
        super().__init__()
        self.axis = axis
        self.bias = nn.Parameter(torch.zeros(bias_shape)) if bias_shape is not None else None

    def extra_repr(self) -> str:
        return f"axis={self.axis}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        shape = _broadcast_shape(scale, self.axis, x.dim())
        y = x * scale.reshape(shape)
        b = self.bias
        if b is not None:
            y = y + b.reshape(shape)
        return y



class CaffeBias(nn.Module):
    """Caffe's Bias layer with a learned bias over axes [axis, axis+num_axes)."""

    def __init__(self, shape: list[int], axis: int = 1):
        super().__init__()
        self.axis = axis
        self.bias = nn.Parameter(torch.zeros(shape))

    def extra_repr(self) -> str:
        return f"{list(self.bias.shape)}, axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.reshape(_broadcast_shape(self.bias, self.axis, x.dim()))



class CaffeBiasByBlob(nn.Module):
    """Caffe's Bias layer with two bottoms: the second bottom is added, broadcast from `axis`."""

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + bias.reshape(_broadcast_shape(bias, self.axis, x.dim()))



class CaffeLRN(nn.Module):
    """Caffe's LRN. ACROSS_CHANNELS: x / (k + alpha/size * sum of squares over `size` channels)^beta.
    WITHIN_CHANNEL: x * (1 + alpha * mean of squares over a size x size window, zero padded)^-beta
    (Caffe ignores k there)."""

    def __init__(self, size: int, alpha: float = 1.0, beta: float = 0.75, k: float = 1.0,
                 within_channel: bool = False):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.within_channel = within_channel

    def extra_repr(self) -> str:
        region = "WITHIN_CHANNEL" if self.within_channel else "ACROSS_CHANNELS"
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, {region}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.within_channel:
            # sum of squares over `size` channels (Caffe's window: (size - 1) // 2 before), as shifted adds
            sq = x * x
            pre = (self.size - 1) // 2
            rest: list[int] = list(x.shape[2:])
            padded = torch.cat([sq.new_zeros([x.shape[0], pre] + rest), sq,
                                sq.new_zeros([x.shape[0], self.size - 1 - pre] + rest)], 1)
            c = x.shape[1]
            total = padded.narrow(1, 0, c)
            for i in range(1, self.size):
                total = total + padded.narrow(1, i, c)
            return x * torch.pow(total * (self.alpha / self.size) + self.k, -self.beta)
        pad = (self.size - 1) // 2
        mean_sq = F.avg_pool2d(x * x, self.size, 1, pad, count_include_pad=True)
        return x * torch.pow(1.0 + self.alpha * mean_sq, -self.beta)



class CaffeMVN(nn.Module):
    """Caffe's MVN: subtract the mean over each channel's spatial axes (or over all but the first axis with
    across_channels), then divide by (std + eps) -- eps is added after the square root."""

    def __init__(self, normalize_variance: bool = True, across_channels: bool = False, eps: float = 1e-9):
        super().__init__()
        self.normalize_variance = normalize_variance
        self.across_channels = across_channels
        self.eps = eps

    def extra_repr(self) -> str:
        return (f"normalize_variance={self.normalize_variance}, across_channels={self.across_channels}, "
                f"eps={self.eps}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.shape[0] if self.across_channels else x.shape[0] * x.shape[1]
        flat = x.reshape(groups, -1)
        y = flat - flat.mean(dim=1, keepdim=True)
        if self.normalize_variance:
            std = torch.sqrt((y * y).mean(dim=1, keepdim=True))
            y = y / (std + self.eps)
        return y.reshape(x.shape)

