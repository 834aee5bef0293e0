"""PyTorch modules that reproduce Caffe layer semantics where stock `torch.nn` differs.

This file is the single source of truth for two things:
  * the converter instantiates these classes (on the meta device) to infer blob shapes;
  * the code generator copies the source of the classes a net needs, verbatim, into the generated
    `model.py`, which therefore imports nothing but torch.

Rules for everything in this file: import only `math` and torch; keep every class
TorchScript-compatible (annotated, no *args, no closures); no project imports.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

# The helper classes, in the order the generator writes them.
__all__ = [
    "Conv2dGemm", "CaffePool2d", "CaffeMaxPoolMask", "CaffeInnerProduct", "CaffeBatchNorm", "CaffeScale",
    "CaffeScaleByBlob", "CaffeBias", "CaffeBiasByBlob", "CaffeLRN", "CaffePower", "CaffeExp", "CaffeLog",
    "CaffeAbsVal", "CaffeThreshold", "CaffeEltwise", "CaffeConcat", "CaffeSlice", "CaffeSplit", "CaffeReshape",
    "CaffeCrop", "CaffeArgMax", "CaffeTile", "CaffeReduction", "CaffeMVN", "CaffeSPP", "CaffeEmbed",
    "CaffeIm2col", "CaffeFilter", "CaffeBatchReindex", "CaffeParameter", "CaffeLSTM", "CaffeRNN",
    "CaffeLSTMUnit", "CaffeReLU6", "CaffeHardSigmoid", "CaffeUpsampleNearest", "CaffeMaxUnpool", "CaffePad",
    "CaffeResize", "CaffeInterp", "CaffeBN", "CaffeShuffleChannel", "CaffeAxpy", "CaffePermute",
    "CaffeNormalize", "CaffePriorBox", "CaffeDetectionOutput", "CaffeProposal", "CaffePSROIPooling",
]


class Conv2dGemm(nn.Conv2d):
    """nn.Conv2d (same parameters, same results up to float rounding) that runs as unfold + one matrix
    multiply when the kernel is large and the output small, e.g. FCN's fc6 (7x7, 512 -> 4096 channels on
    a ~22x22 map), where that is about twice as fast on CPU as the direct convolution. Above 4096 output
    positions or a 256 MiB column buffer it is the ordinary convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups != 1 or x.dim() != 4:
            return self._conv_forward(x, self.weight, self.bias)
        kh, kw = self.kernel_size
        oh = (x.shape[2] + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (x.shape[3] + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        k = x.shape[1] * kh * kw
        cols_bytes = x.shape[0] * k * oh * ow * x.element_size()
        if oh * ow > 4096 or cols_bytes > 1 << 28:
            return self._conv_forward(x, self.weight, self.bias)
        cols = F.unfold(x.contiguous(), (kh, kw), self.dilation, self.padding, self.stride)  # N, C*kh*kw, L
        if self.weight.is_contiguous():
            w = self.weight.reshape(self.out_channels, k)
        else:  # channels-last weights: (O, kh, kw, C) in memory; match the columns to it, not a 400 MB copy
            w = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, k)
            n = x.shape[0]
            cols = cols.reshape(n, x.shape[1], kh * kw, -1).transpose(1, 2).reshape(n, k, -1)
        y = torch.matmul(w, cols)
        b = self.bias
        if b is not None:
            y = y + b.reshape(1, -1, 1)
        return y.reshape(x.shape[0], self.out_channels, oh, ow)


def _pool_size(n: int, k: int, s: int, p: int, ceil_mode: bool, last_inside: bool) -> int:
    """Pooled size along one axis: ceil (or floor) of (n + 2p - k) / s, plus 1; with `last_inside`, minus 1
    if the last window would start in the padding. Caffe sets `last_inside` when any padding is set,
    torch whenever ceil_mode is on."""
    span = n + 2 * p - k
    # ceil as (span + s - 1) // s, not -(-span // s): a trace for ONNX turns // into a division that truncates,
    # which differs from floor on negative numbers
    out = (span + s - 1) // s + 1 if ceil_mode else span // s + 1
    if last_inside and (out - 1) * s >= n + p:
        out -= 1
    return out


def _channels_last(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """torch's CPU pooling is several times faster on channels-last tensors: (the tensor in that layout,
    whether it was NCHW-contiguous, i.e. whether the result should go back to that layout)."""
    if x.dim() == 4 and x.is_contiguous() and x.shape[1] > 1:
        return x.contiguous(memory_format=torch.channels_last), True
    return x, False


def _pool_window_sum(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int) -> torch.Tensor:
    """Sum over each (kh, kw) window of an already padded tensor (no padding, floor windows)."""
    return F.avg_pool2d(x, (kh, kw), (sh, sw)) * float(kh * kw)


def _caffe_pool(x: torch.Tensor, method: str, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                ceil_mode: bool) -> torch.Tensor:
    """MAX or AVE pooling with Caffe's size rule and divisor (see CaffePool2d)."""
    x, back = _channels_last(x)
    y = _caffe_pool_any_layout(x, method, kh, kw, sh, sw, ph, pw, ceil_mode)
    return y.contiguous() if back else y


def _caffe_pool_any_layout(x: torch.Tensor, method: str, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                           ceil_mode: bool) -> torch.Tensor:
    h = x.shape[-2]
    w = x.shape[-1]
    padded = ph > 0 or pw > 0
    oh = _pool_size(h, kh, sh, ph, ceil_mode, padded)
    ow = _pool_size(w, kw, sw, pw, ceil_mode, padded)
    th = _pool_size(h, kh, sh, ph, ceil_mode, ceil_mode)
    tw = _pool_size(w, kw, sw, pw, ceil_mode, ceil_mode)
    if th == oh and tw == ow and 2 * ph <= kh and 2 * pw <= kw:
        if method == "max":
            return F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil_mode)
        return F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil_mode, count_include_pad=True)
    # General case: pad explicitly so that windows 0..o-1 tile the padded input exactly.
    bottom = (oh - 1) * sh + kh - h - ph
    right = (ow - 1) * sw + kw - w - pw
    if method == "max":
        # -FLT_MAX: Caffe's initial maximum, and so what a window lying outside the input yields
        xp = F.pad(x, [pw, right, ph, bottom], value=-3.4028234663852886e38)
        return F.max_pool2d(xp, (kh, kw), (sh, sw))
    total = _pool_window_sum(F.pad(x, [pw, right, ph, bottom], value=0.0), kh, kw, sh, sw)
    start_h = torch.arange(oh, device=x.device) * sh - ph
    start_w = torch.arange(ow, device=x.device) * sw - pw
    area_h = torch.clamp(start_h + kh, max=h + ph) - start_h
    area_w = torch.clamp(start_w + kw, max=w + pw) - start_w
    area = (area_h[:, None] * area_w[None, :]).to(x.dtype)
    return total / area


def _pool_params(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], global_pooling: bool) -> tuple[int, int, int, int, int, int]:
    if global_pooling:
        return x.shape[-2], x.shape[-1], 1, 1, 0, 0
    return kernel_size[0], kernel_size[1], stride[0], stride[1], padding[0], padding[1]


class CaffePool2d(nn.Module):
    """Caffe's Pooling layer (MAX, AVE, or STOCHASTIC at test time) with Caffe's output size rule.

    Caffe sizes the output with ceil (default) or floor of (H + 2*pad - kernel) / stride, + 1; then,
    only when some padding is set, it drops the last window if that window would start in the padding.
    MAX ignores padding; AVE divides by the window area clipped to the padded input (padding counts,
    the ceil overhang does not); a window that lies entirely outside the input gives -FLT_MAX (MAX)
    or NaN (AVE), as in Caffe. `torch.nn.functional` pooling is used directly when it agrees.
    STOCHASTIC ("sto") at test time is Caffe's StoPoolForwardTest: sum(x^2) / (FLT_MIN + sum(x)) over
    windows that start at index * stride and ignore the padding.
    """

    def __init__(self, method: str, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), ceil_mode: bool = True, global_pooling: bool = False):
        super().__init__()
        if method not in ("max", "ave", "sto"):
            raise ValueError(f"unknown pooling method {method!r}")
        self.method = method
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.global_pooling = global_pooling

    def extra_repr(self) -> str:
        if self.global_pooling:
            return f"{self.method}, global_pooling=True"
        return (f"{self.method}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, ceil_mode={self.ceil_mode}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pooling and self.method == "max":
            return torch.amax(x, dim=(-2, -1), keepdim=True)
        if self.global_pooling and self.method == "ave":
            return x.mean(dim=(-2, -1), keepdim=True)
        kh, kw, sh, sw, ph, pw = _pool_params(x, self.kernel_size, self.stride, self.padding, self.global_pooling)
        if self.method != "sto":
            return _caffe_pool(x, self.method, kh, kw, sh, sw, ph, pw, self.ceil_mode)
        padded = ph > 0 or pw > 0
        oh = _pool_size(x.shape[-2], kh, sh, ph, self.ceil_mode, padded)
        ow = _pool_size(x.shape[-1], kw, sw, pw, self.ceil_mode, padded)
        bottom = max((oh - 1) * sh + kh - x.shape[-2], 0)
        right = max((ow - 1) * sw + kw - x.shape[-1], 0)
        xp = F.pad(x, [0, right, 0, bottom], value=0.0)
        s1 = _pool_window_sum(xp, kh, kw, sh, sw)[..., :oh, :ow]
        s2 = _pool_window_sum(xp * xp, kh, kw, sh, sw)[..., :oh, :ow]
        return s2 / (s1 + 1.1754943508222875e-38)


class CaffeMaxPoolMask(nn.Module):
    """Caffe's MAX Pooling with its second top: the argmax mask (index h * W + w inside each channel, as a
    float; the first maximum in row-major order wins; -1 for a window that covers no input)."""

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), ceil_mode: bool = True, global_pooling: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.global_pooling = global_pooling

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, global_pooling={self.global_pooling}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.shape[-2]
        w = x.shape[-1]
        kh, kw, sh, sw, ph, pw = _pool_params(x, self.kernel_size, self.stride, self.padding, self.global_pooling)
        padded = ph > 0 or pw > 0
        oh = _pool_size(h, kh, sh, ph, self.ceil_mode, padded)
        ow = _pool_size(w, kw, sw, pw, self.ceil_mode, padded)
        bottom = (oh - 1) * sh + kh - h - ph
        right = (ow - 1) * sw + kw - w - pw
        xp = F.pad(x, [pw, max(right, 0), ph, max(bottom, 0)], value=-3.4028234663852886e38)
        xp, back = _channels_last(xp)
        top, idx = F.max_pool2d_with_indices(xp, (kh, kw), (sh, sw))
        top = top[..., :oh, :ow]
        idx = idx[..., :oh, :ow]
        if back:
            top = top.contiguous()
            idx = idx.contiguous()
        wp = xp.shape[-1]
        r = torch.div(idx, wp, rounding_mode="floor") - ph
        c = idx - (r + ph) * wp - pw
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        mask = torch.where(inside, r * w + c, torch.full_like(idx, -1))
        return [top, mask.to(x.dtype)]


class CaffeInnerProduct(nn.Linear):
    """Caffe's InnerProduct: flattens every axis from `axis` on, then a linear map.

    The weight is stored in torch's (out, in) layout; a Caffe net with `transpose: true` had it
    transposed at conversion time.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, axis: int = 1):
        super().__init__(in_features, out_features, bias=bias)
        self.axis = axis

    def extra_repr(self) -> str:
        return super().extra_repr() + f", axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        if axis != x.dim() - 1:
            x = x.flatten(axis)
        return F.linear(x, self.weight, self.bias)


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


class CaffeEltwise(nn.Module):
    """Caffe's Eltwise: SUM (with per-input coefficients), PROD or MAX over the bottoms."""

    coeffs: list[float]

    def __init__(self, operation: str = "sum", coeffs: list[float] | None = None):
        super().__init__()
        if operation not in ("sum", "prod", "max"):
            raise ValueError(f"unknown eltwise operation {operation!r}")
        self.operation = operation
        self.coeffs = [] if coeffs is None else coeffs

    def extra_repr(self) -> str:
        return f"{self.operation}" + (f", coeffs={self.coeffs}" if self.coeffs else "")

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        y = xs[0]
        if self.operation == "sum" and len(self.coeffs) > 0 and self.coeffs[0] != 1.0:
            y = y * self.coeffs[0]
        for i in range(1, len(xs)):
            if self.operation == "sum":
                if len(self.coeffs) > 0 and self.coeffs[i] != 1.0:
                    y = y + xs[i] * self.coeffs[i]
                else:
                    y = y + xs[i]
            elif self.operation == "prod":
                y = y * xs[i]
            else:
                y = torch.maximum(y, xs[i])
        return y


class CaffeConcat(nn.Module):
    """Caffe's Concat along `axis`."""

    def __init__(self, axis: int = 1):
        super().__init__()
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)


class CaffeSlice(nn.Module):
    """Caffe's Slice along `axis` at `points` (or into `count` equal parts when no points are given)."""

    points: list[int]

    def __init__(self, axis: int = 1, points: list[int] | None = None, count: int = 2):
        super().__init__()
        self.axis = axis
        self.points = [] if points is None else points
        self.count = count

    def extra_repr(self) -> str:
        if self.points:
            return f"axis={self.axis}, points={self.points}"
        return f"axis={self.axis}, count={self.count}"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[self.axis]
        if len(self.points) > 0:
            bounds = [0] + self.points + [n]
        else:
            step = n // self.count
            bounds = [i * step for i in range(self.count + 1)]
        outs: list[torch.Tensor] = []
        for i in range(len(bounds) - 1):
            outs.append(x.narrow(self.axis, bounds[i], bounds[i + 1] - bounds[i]))
        return outs


class CaffeSplit(nn.Module):
    """Caffe's Split: the same blob under `count` names."""

    def __init__(self, count: int = 2):
        super().__init__()
        self.count = count

    def extra_repr(self) -> str:
        return f"count={self.count}"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x for _ in range(self.count)]


class CaffeReshape(nn.Module):
    """Caffe's Reshape: replaces axes [axis, axis+num_axes) by `shape` (0 = copy that axis, -1 = infer)."""

    shape: list[int]

    def __init__(self, shape: list[int], axis: int = 0, num_axes: int = -1):
        super().__init__()
        self.shape = shape
        self.axis = axis
        self.num_axes = num_axes

    def extra_repr(self) -> str:
        return f"shape={self.shape}, axis={self.axis}, num_axes={self.num_axes}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nd = x.dim()
        start = self.axis if self.axis >= 0 else nd + self.axis + 1
        end = nd if self.num_axes == -1 else start + self.num_axes
        new: list[int] = list(x.shape[:start])
        for i, d in enumerate(self.shape):
            new.append(x.shape[start + i] if d == 0 else d)
        new = new + list(x.shape[end:])
        return x.reshape(new)


class CaffeCrop(nn.Module):
    """Caffe's Crop: crops axes >= `axis` of x to the size of `like`, starting at `offsets`
    (one offset for all cropped axes, or one per axis)."""

    offsets: list[int]

    def __init__(self, axis: int = 2, offsets: list[int] | None = None):
        super().__init__()
        self.axis = axis
        self.offsets = [] if offsets is None else offsets

    def extra_repr(self) -> str:
        return f"axis={self.axis}, offsets={self.offsets}"

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        axis = self.axis if self.axis >= 0 else self.axis + x.dim()
        for i in range(axis, x.dim()):
            off = 0
            if len(self.offsets) == 1:
                off = self.offsets[0]
            elif len(self.offsets) > 1:
                off = self.offsets[i - axis]
            size = like.shape[i]
            if off + size > x.shape[i]:
                raise RuntimeError(f"Crop: axis {i} (size {x.shape[i]}) too small for {size} at offset {off}")
            x = x.narrow(i, off, size)
        return x


class CaffeArgMax(nn.Module):
    """Caffe's ArgMax (indices as floats, ties to the larger index, as Caffe's sort does).

    Without `axis`: over all axes but the first, output (N, 1 or 2, top_k, 1...): indices, then the
    values when `out_max_val`. With `axis`: indices (or values when `out_max_val`) along that axis.
    """

    def __init__(self, top_k: int = 1, out_max_val: bool = False, axis: int | None = None):
        super().__init__()
        self.top_k = top_k
        self.out_max_val = out_max_val
        self.axis = axis

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, out_max_val={self.out_max_val}, axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis
        if axis is None:
            flat = x.reshape(x.shape[0], -1)
            n = flat.shape[1]
            values, idx = torch.sort(flat.flip(1), dim=1, descending=True, stable=True)
            values = values[:, : self.top_k]
            idx = (n - 1 - idx[:, : self.top_k]).to(x.dtype)
            if self.out_max_val:
                out = torch.stack([idx, values], dim=1)
            else:
                out = idx.unsqueeze(1)
            shape: list[int] = [x.shape[0], out.shape[1], self.top_k]
            shape = shape + [1] * (max(x.dim(), 3) - 3)
            return out.reshape(shape)
        a = axis if axis >= 0 else axis + x.dim()
        n = x.shape[a]
        values, idx = torch.sort(x.flip(a), dim=a, descending=True, stable=True)
        if self.out_max_val:
            return values.narrow(a, 0, self.top_k)
        return (n - 1 - idx.narrow(a, 0, self.top_k)).to(x.dtype)


class CaffeTile(nn.Module):
    """Caffe's Tile: repeats the blob `tiles` times along `axis`."""

    def __init__(self, axis: int = 1, tiles: int = 1):
        super().__init__()
        self.axis = axis
        self.tiles = tiles

    def extra_repr(self) -> str:
        return f"axis={self.axis}, tiles={self.tiles}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reps: list[int] = [1] * x.dim()
        reps[self.axis] = self.tiles
        return x.repeat(reps)


class CaffeReduction(nn.Module):
    """Caffe's Reduction: SUM, ASUM, SUMSQ or MEAN over all axes from `axis` on, times `coeff`."""

    def __init__(self, operation: str = "sum", axis: int = 0, coeff: float = 1.0):
        super().__init__()
        if operation not in ("sum", "asum", "sumsq", "mean"):
            raise ValueError(f"unknown reduction {operation!r}")
        self.operation = operation
        self.axis = axis
        self.coeff = coeff

    def extra_repr(self) -> str:
        return f"{self.operation}, axis={self.axis}, coeff={self.coeff}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(list(x.shape[: self.axis]) + [-1])
        if self.operation == "asum":
            flat = torch.abs(flat)
        elif self.operation == "sumsq":
            flat = flat * flat
        if self.operation == "mean":
            y = flat.mean(dim=-1)
        else:
            y = flat.sum(dim=-1)
        if self.coeff != 1.0:
            y = y * self.coeff
        return y


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


class CaffeSPP(nn.Module):
    """Caffe's SPP: for level l < pyramid_height, pool into 2^l x 2^l bins (kernel ceil(H / bins), padding
    (kernel * bins - H + 1) // 2, stride = kernel, Caffe's pooling rules); flatten and concatenate the
    levels. With one level the pooled 4-D blob itself is the output."""

    def __init__(self, pyramid_height: int, method: str = "max"):
        super().__init__()
        self.pyramid_height = pyramid_height
        self.method = method

    def extra_repr(self) -> str:
        return f"pyramid_height={self.pyramid_height}, {self.method}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        w = x.shape[-1]
        outs: list[torch.Tensor] = []
        for level in range(self.pyramid_height):
            bins = 1 << level
            kh = (h + bins - 1) // bins
            kw = (w + bins - 1) // bins
            ph = (kh * bins - h + 1) // 2
            pw = (kw * bins - w + 1) // 2
            y = _caffe_pool(x, self.method, kh, kw, kh, kw, ph, pw, True)
            if self.pyramid_height == 1:
                return y
            outs.append(y.flatten(1))
        return torch.cat(outs, dim=1)


class CaffeEmbed(nn.Module):
    """Caffe's Embed: each input value, truncated to an integer index, selects a row of the (input_dim,
    num_output) weight; plus the bias. The top has the bottom's shape plus a num_output axis."""

    def __init__(self, input_dim: int, num_output: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(input_dim, num_output))
        self.bias = nn.Parameter(torch.zeros(num_output)) if bias else None

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.embedding(x.to(torch.int64), self.weight)
        b = self.bias
        if b is not None:
            y = y + b
        return y


class CaffeIm2col(nn.Module):
    """Caffe's Im2col for 2-D inputs: (N, C * kh * kw, out_h, out_w), channel-major like F.unfold."""

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1)):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        oh = (x.shape[2] + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (x.shape[3] + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        return cols.reshape(x.shape[0], cols.shape[1], oh, ow)


class CaffeFilter(nn.Module):
    """Caffe's Filter: keeps the items (first axis) whose selector value (last input) is non-zero, in
    every other input."""

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        selector = xs[len(xs) - 1].reshape(-1)
        keep = torch.nonzero(selector != 0).reshape(-1)
        outs: list[torch.Tensor] = []
        for i in range(len(xs) - 1):
            outs.append(xs[i].index_select(0, keep))
        return outs


class CaffeBatchReindex(nn.Module):
    """Caffe's BatchReindex: the items (first axis) of x at the indices given by the second input."""

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, index.reshape(-1).to(torch.int64))


class CaffeParameter(nn.Module):
    """Caffe's Parameter layer: a learned blob as a top (no bottoms)."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))

    def extra_repr(self) -> str:
        return f"{list(self.weight.shape)}"

    def forward(self) -> torch.Tensor:
        return self.weight


def _lstm_unit(c_prev: torch.Tensor, gates: torch.Tensor, cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit step: gates in the order i, f, o, g on the last axis; f is multiplied by cont."""
    hs = c_prev.shape[-1]
    i_gate = torch.sigmoid(gates[..., :hs])
    f_gate = torch.sigmoid(gates[..., hs:2 * hs]) * cont
    o_gate = torch.sigmoid(gates[..., 2 * hs:3 * hs])
    c = f_gate * c_prev + i_gate * torch.tanh(gates[..., 3 * hs:])
    return c, o_gate * torch.tanh(c)


def _recurrent_inputs(xs: list[torch.Tensor], static: bool, n_hidden: int) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """Caffe's recurrent bottoms: x (T, N, ...), cont (T, N), optional x_static (N, ...), then the exposed
    initial hidden state blobs (1, N, H) when expose_hidden."""
    k = 2
    x_static: torch.Tensor | None = None
    if static:
        x_static = xs[2]
        k = 3
    hidden: list[torch.Tensor] = []
    for i in range(n_hidden):
        hidden.append(xs[k + i])
    return xs[0], xs[1], x_static, hidden


class CaffeLSTM(nn.Module):
    """Caffe's LSTM (its unrolled net, computed directly): gates W_xc x_t + b_c (+ W_xc_static x_static)
    + W_hc (cont_t * h_{t-1}), in Caffe's order i, f, o, g; c_t = cont_t * sigmoid(f) * c_{t-1} +
    sigmoid(i) * tanh(g); h_t = sigmoid(o) * tanh(c_t). Without expose_hidden h_0 = c_0 = 0 (Caffe
    carries the last call's h_T/c_T over, which cont_1 = 0 at a sequence start cancels)."""

    def __init__(self, input_size: int, hidden_size: int, static_size: int = 0, expose_hidden: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.expose_hidden = expose_hidden
        self.weight_x = nn.Parameter(torch.zeros(4 * hidden_size, input_size))
        self.bias_x = nn.Parameter(torch.zeros(4 * hidden_size))
        self.weight_static = nn.Parameter(torch.zeros(4 * hidden_size, static_size)) if static_size else None
        self.weight_h = nn.Parameter(torch.zeros(4 * hidden_size, hidden_size))

    def extra_repr(self) -> str:
        return (f"{self.weight_x.shape[1]}, {self.hidden_size}, static={self.weight_static is not None}, "
                f"expose_hidden={self.expose_hidden}")

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ws = self.weight_static
        x, cont, x_static, hidden = _recurrent_inputs(xs, ws is not None, 2 if self.expose_hidden else 0)
        t_steps, n = x.shape[0], x.shape[1]
        hs = self.hidden_size
        gx = F.linear(x.reshape(t_steps, n, -1), self.weight_x, self.bias_x)
        if ws is not None and x_static is not None:
            gx = gx + F.linear(x_static.reshape(n, -1), ws).unsqueeze(0)
        if len(hidden) == 2:
            h = hidden[0].reshape(n, hs)
            c = hidden[1].reshape(n, hs)
        else:
            h = x.new_zeros(n, hs)
            c = x.new_zeros(n, hs)
        outs: list[torch.Tensor] = []
        for t in range(t_steps):
            ct = cont[t].reshape(n, 1).to(x.dtype)
            c, h = _lstm_unit(c, gx[t] + F.linear(h * ct, self.weight_h), ct)
            outs.append(h)
        result = [torch.stack(outs, 0)]
        if self.expose_hidden:
            result.append(h.unsqueeze(0))
            result.append(c.unsqueeze(0))
        return result


class CaffeRNN(nn.Module):
    """Caffe's RNN (its unrolled net): h_t = tanh(W_xh x_t + b_h (+ W_xh_static x_static) +
    W_hh (cont_t * h_{t-1})), o_t = tanh(W_ho h_t + b_o). h_0 = 0 unless expose_hidden (see CaffeLSTM)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, static_size: int = 0,
                 expose_hidden: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.expose_hidden = expose_hidden
        self.weight_x = nn.Parameter(torch.zeros(hidden_size, input_size))
        self.bias_x = nn.Parameter(torch.zeros(hidden_size))
        self.weight_static = nn.Parameter(torch.zeros(hidden_size, static_size)) if static_size else None
        self.weight_h = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        self.weight_o = nn.Parameter(torch.zeros(output_size, hidden_size))
        self.bias_o = nn.Parameter(torch.zeros(output_size))

    def extra_repr(self) -> str:
        return (f"{self.weight_x.shape[1]}, {self.hidden_size}, {self.weight_o.shape[0]}, "
                f"static={self.weight_static is not None}, expose_hidden={self.expose_hidden}")

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ws = self.weight_static
        x, cont, x_static, hidden = _recurrent_inputs(xs, ws is not None, 1 if self.expose_hidden else 0)
        t_steps, n = x.shape[0], x.shape[1]
        hx = F.linear(x.reshape(t_steps, n, -1), self.weight_x, self.bias_x)
        if ws is not None and x_static is not None:
            hx = hx + F.linear(x_static.reshape(n, -1), ws).unsqueeze(0)
        h = hidden[0].reshape(n, self.hidden_size) if len(hidden) == 1 else x.new_zeros(n, self.hidden_size)
        outs: list[torch.Tensor] = []
        for t in range(t_steps):
            ct = cont[t].reshape(n, 1).to(x.dtype)
            h = torch.tanh(hx[t] + F.linear(h * ct, self.weight_h))
            outs.append(torch.tanh(F.linear(h, self.weight_o, self.bias_o)))
        result = [torch.stack(outs, 0)]
        if self.expose_hidden:
            result.append(h.unsqueeze(0))
        return result


class CaffeLSTMUnit(nn.Module):
    """Caffe's LSTMUnit: bottoms c_{t-1} (1, N, H), gate inputs (1, N, 4H) in the order i, f, o, g, and
    cont (1, N); tops c_t and h_t."""

    def forward(self, c_prev: torch.Tensor, gates: torch.Tensor, cont: torch.Tensor) -> list[torch.Tensor]:
        c, h = _lstm_unit(c_prev, gates, cont.unsqueeze(-1).to(gates.dtype))
        return [c, h]


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


class CaffeUpsampleNearest(nn.Module):
    """This Caffe's one-input Upsample: each value repeated `scale` times along the last two axes
    (dims_num 4) or the last axis (dims_num 3)."""

    def __init__(self, scale: int = 2, axes: int = 2):
        super().__init__()
        self.scale = scale
        self.axes = axes

    def extra_repr(self) -> str:
        return f"scale={self.scale}, axes={self.axes}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.repeat_interleave(self.scale, dim=x.dim() - 1)
        if self.axes == 2:
            y = y.repeat_interleave(self.scale, dim=x.dim() - 2)
        return y


class CaffeMaxUnpool(nn.Module):
    """Unpooling by a MAX-pooling mask (this Caffe's MaxUnPool; SegNet's two-input Upsample): zeros, with
    each input value written at the position its mask names (h * W + w in the output channel). The
    output is height x width, or the input size times scale minus pad_out when no size is given."""

    def __init__(self, height: int = 0, width: int = 0, scale_h: int = 2, scale_w: int = 2,
                 pad_out_h: int = 0, pad_out_w: int = 0):
        super().__init__()
        self.height = height
        self.width = width
        self.scale_h = scale_h
        self.scale_w = scale_w
        self.pad_out_h = pad_out_h
        self.pad_out_w = pad_out_w

    def extra_repr(self) -> str:
        if self.height > 0:
            return f"height={self.height}, width={self.width}"
        return (f"scale=({self.scale_h}, {self.scale_w}), pad_out=({self.pad_out_h}, {self.pad_out_w})")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        oh, ow = self.height, self.width
        if oh <= 0:
            oh = x.shape[2] * self.scale_h - self.pad_out_h
            ow = x.shape[3] * self.scale_w - self.pad_out_w
        out = x.new_zeros(n, c, oh * ow)
        out = out.scatter(2, mask.reshape(n, c, -1).to(torch.int64), x.reshape(n, c, -1))
        return out.reshape(n, c, oh, ow)


class CaffePad(nn.Module):
    """This Caffe's Pad layer on (N, C, H, W): constant, replicate or reflect padding of (top, bottom,
    left, right); all four negative crops instead."""

    def __init__(self, pads: list[int], mode: str = "constant", value: float = 0.0):
        super().__init__()
        self.pads = pads  # top, bottom, left, right
        self.mode = mode
        self.value = value

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode}, value={self.value}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, d, left, r = self.pads[0], self.pads[1], self.pads[2], self.pads[3]
        if u < 0 and d < 0 and left < 0 and r < 0:
            return x[:, :, -u:x.shape[2] + d, -left:x.shape[3] + r]
        if self.mode == "constant":
            return F.pad(x, [left, r, u, d], mode="constant", value=self.value)
        return F.pad(x, [left, r, u, d], mode=self.mode)


def _bilinear_taps(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This Caffe's Resize sampling along one axis, in float32 as Caffe computes it: source position
    i * (n_in / n_out), its floor, and the fraction."""
    scale = torch.tensor(float(n_in), dtype=torch.float32) / float(n_out)
    pos = torch.arange(n_out, dtype=torch.float32, device=device) * scale.to(device)
    lo = torch.floor(pos)
    return lo.to(torch.int64), pos - lo


class CaffeResize(nn.Module):
    """This Caffe's Resize (ResizeBlob_cpu): bilinear with source position out_index * in / out (no
    half-pixel shift) and zero beyond the last row/column. Output height x width, or in
    is_pyramid_test mode int(scale * input size)."""

    def __init__(self, height: int = 0, width: int = 0, height_scale: float = 0.0, width_scale: float = 0.0):
        super().__init__()
        self.height = height
        self.width = width
        self.height_scale = height_scale
        self.width_scale = width_scale

    def extra_repr(self) -> str:
        if self.height > 0:
            return f"height={self.height}, width={self.width}"
        return f"height_scale={self.height_scale}, width_scale={self.width_scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        oh, ow = self.height, self.width
        if oh <= 0:
            oh = int((torch.tensor(self.height_scale, dtype=torch.float32) * h).item())
            ow = int((torch.tensor(self.width_scale, dtype=torch.float32) * w).item())
        h0, fh = _bilinear_taps(h, oh, x.device)
        w0, fw = _bilinear_taps(w, ow, x.device)
        xp = F.pad(x, [0, 1, 0, 1])  # the missing neighbour past the edge counts as 0
        fh = fh.to(x.dtype).reshape(-1, 1)
        fw = fw.to(x.dtype)
        rows0 = xp.index_select(2, h0)
        rows1 = xp.index_select(2, h0 + 1)
        top = rows0.index_select(3, w0) * (1.0 - fw) + rows0.index_select(3, w0 + 1) * fw
        bot = rows1.index_select(3, w0) * (1.0 - fw) + rows1.index_select(3, w0 + 1) * fw
        return top * (1.0 - fh) + bot * fh


class CaffeInterp(nn.Module):
    """Bilinear resize with align-corners sampling, after cropping the input by -pad_beg / -pad_end
    (DeepLab/PSPNet Interp; this Caffe's BilinearInterpolate). Output size: fixed (height, width), or
    derived per call: shrink then zoom of the cropped size ((n - 1) // shrink + 1, then
    n + (n - 1) * (zoom - 1)), or the size of a second input."""

    def __init__(self, height: int = 0, width: int = 0, zoom_factor: int = 1, shrink_factor: int = 1,
                 pad_beg: int = 0, pad_end: int = 0, align_corners: bool = True):
        super().__init__()
        self.height = height
        self.width = width
        self.zoom_factor = zoom_factor
        self.shrink_factor = shrink_factor
        self.pad_beg = pad_beg
        self.pad_end = pad_end
        self.align_corners = align_corners

    def extra_repr(self) -> str:
        size = f"height={self.height}, width={self.width}" if self.height > 0 else (
            f"zoom_factor={self.zoom_factor}, shrink_factor={self.shrink_factor}")
        return f"{size}, pad=({self.pad_beg}, {self.pad_end}), align_corners={self.align_corners}"

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        x = xs[0]
        h = x.shape[2] + self.pad_beg + self.pad_end
        w = x.shape[3] + self.pad_beg + self.pad_end
        if self.pad_beg != 0 or self.pad_end != 0:
            x = x[:, :, -self.pad_beg:-self.pad_beg + h, -self.pad_beg:-self.pad_beg + w]
        if len(xs) > 1:
            oh, ow = xs[1].shape[2], xs[1].shape[3]
        elif self.height > 0:
            oh, ow = self.height, self.width
        else:
            oh = (h - 1) // self.shrink_factor + 1
            ow = (w - 1) // self.shrink_factor + 1
            oh = oh + (oh - 1) * (self.zoom_factor - 1)
            ow = ow + (ow - 1) * (self.zoom_factor - 1)
        if oh == h and ow == w:
            return x.clone()
        return F.interpolate(x, size=[oh, ow], mode="bilinear", align_corners=self.align_corners)


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


class CaffePermute(nn.Module):
    """SSD's Permute: the axes in the given order (the unlisted ones follow in their order)."""

    order: list[int]

    def __init__(self, order: list[int]):
        super().__init__()
        self.order = order

    def extra_repr(self) -> str:
        return f"order={self.order}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order).contiguous()


class CaffeNormalize(nn.Module):
    """SSD's Normalize: x / sqrt(sum of squares + eps) (eps inside the root), summed over C x H x W per
    item (across_spatial) or over the channels at each position, then times a learned scale (one value
    or one per channel)."""

    def __init__(self, channels: int, across_spatial: bool = True, channel_shared: bool = True,
                 eps: float = 1e-10):
        super().__init__()
        self.across_spatial = across_spatial
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1 if channel_shared else channels))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, across_spatial={self.across_spatial}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.across_spatial:
            sq = (x * x).reshape(x.shape[0], -1).sum(dim=1)
            norm = torch.sqrt(sq + self.eps).reshape([x.shape[0]] + [1] * (x.dim() - 1))
        else:
            norm = torch.sqrt((x * x).sum(dim=1, keepdim=True) + self.eps)
        y = x / norm
        if self.weight.shape[0] == 1:
            return y * self.weight
        return y * self.weight.reshape([1, -1] + [1] * (x.dim() - 2))


class CaffePriorBox(nn.Module):
    """SSD's PriorBox: for every cell of the feature map (first input) the prior boxes (xmin, ymin, xmax,
    ymax), normalised by the image size (second input, or img_h/img_w), then the variances:
    (1, 2, H * W * num_priors * 4). Box sizes per cell: min_size (truncated to an integer as Caffe
    does), sqrt(min_size * max_size), then min_size * sqrt(ar) x min_size / sqrt(ar) per aspect ratio."""

    min_sizes: list[int]
    max_sizes: list[int]
    aspect_ratios: list[float]
    variance: list[float]

    def __init__(self, min_sizes: list[int], max_sizes: list[int], aspect_ratios: list[float],
                 variance: list[float], clip: bool = True, img_h: int = 0, img_w: int = 0,
                 step_h: float = 0.0, step_w: float = 0.0, offset: float = 0.5):
        super().__init__()
        self.min_sizes = min_sizes
        self.max_sizes = max_sizes
        self.aspect_ratios = aspect_ratios  # 1.0 first, then the others (flipped ones included)
        self.variance = variance
        self.clip = clip
        self.img_h = img_h
        self.img_w = img_w
        self.step_h = step_h
        self.step_w = step_w
        self.offset = offset

    def extra_repr(self) -> str:
        return (f"min_sizes={self.min_sizes}, max_sizes={self.max_sizes}, aspect_ratios={self.aspect_ratios}, "
                f"clip={self.clip}")

    def forward(self, feature: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        fh, fw = feature.shape[-2], feature.shape[-1]
        img_h, img_w = self.img_h, self.img_w
        if img_h == 0 or img_w == 0:
            img_h, img_w = image.shape[-2], image.shape[-1]
        step_h, step_w = self.step_h, self.step_w
        if step_h == 0.0 or step_w == 0.0:
            step_h = float(img_h) / fh
            step_w = float(img_w) / fw
        # box sizes per prior, in Caffe's order and, like Caffe, as float32 values (whatever the spelling of
        # the ratios: 0.33333334 and 0.3333333432674408 are the same float32)
        dev = feature.device
        f32 = torch.float32
        widths: list[torch.Tensor] = []
        heights: list[torch.Tensor] = []
        other: list[float] = []
        for ar in self.aspect_ratios:
            if abs(ar - 1.0) >= 1e-6:
                other.append(ar)
        others = torch.tensor(other, dtype=f32, device=dev)
        for s in range(len(self.min_sizes)):
            m = torch.full([1], float(self.min_sizes[s]), dtype=f32, device=dev)
            widths.append(m)
            heights.append(m)
            if len(self.max_sizes) > 0:
                side = torch.full([1], math.sqrt(float(self.min_sizes[s] * self.max_sizes[s])), dtype=f32, device=dev)
                widths.append(side)
                heights.append(side)
            widths.append(m * torch.sqrt(others))
            heights.append(m / torch.sqrt(others))
        cx = (torch.arange(fw, device=dev, dtype=f32) + self.offset) * step_w
        cy = (torch.arange(fh, device=dev, dtype=f32) + self.offset) * step_h
        hw = torch.cat(widths).to(torch.float64) / 2.0
        hh = torch.cat(heights).to(torch.float64) / 2.0
        cx = cx.to(torch.float64).reshape(1, fw, 1)
        cy = cy.to(torch.float64).reshape(fh, 1, 1)
        boxes = torch.stack([((cx - hw) / img_w).expand(fh, fw, hw.shape[0]),
                             ((cy - hh) / img_h).expand(fh, fw, hw.shape[0]),
                             ((cx + hw) / img_w).expand(fh, fw, hw.shape[0]),
                             ((cy + hh) / img_h).expand(fh, fw, hw.shape[0])], dim=3)
        boxes = boxes.to(f32).to(feature.dtype).reshape(-1)
        if self.clip:
            boxes = torch.clamp(boxes, 0.0, 1.0)
        var = torch.tensor(self.variance, dtype=torch.float32, device=dev).to(feature.dtype)
        var = var.repeat(boxes.shape[0] // len(self.variance))
        return torch.stack([boxes, var], dim=0).unsqueeze(0)


def _box_area(b: torch.Tensor) -> torch.Tensor:
    """SSD's BBoxSize for normalised boxes: width * height, 0 for an inverted box."""
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    return torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)


def _jaccard_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """SSD's JaccardOverlap (normalised) between all pairs of boxes: (..., K, 4) -> (..., K, K)."""
    a = boxes.unsqueeze(-2)
    b = boxes.unsqueeze(-3)
    apart = (b[..., 0] > a[..., 2]) | (b[..., 2] < a[..., 0]) | (b[..., 1] > a[..., 3]) | (b[..., 3] < a[..., 1])
    iw = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    ih = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = iw * ih
    iou = inter / (_box_area(a) + _box_area(b) - inter)
    return torch.where(apart | (iw <= 0) | (ih <= 0), torch.zeros_like(iou), iou)


def _jaccard(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """SSD's JaccardOverlap (normalised) of one box against many."""
    apart = (boxes[:, 0] > box[2]) | (boxes[:, 2] < box[0]) | (boxes[:, 1] > box[3]) | (boxes[:, 3] < box[1])
    iw = torch.minimum(boxes[:, 2], box[2]) - torch.maximum(boxes[:, 0], box[0])
    ih = torch.minimum(boxes[:, 3], box[3]) - torch.maximum(boxes[:, 1], box[1])
    inter = iw * ih
    iou = inter / (_box_area(box) + _box_area(boxes) - inter)
    return torch.where(apart | (iw <= 0) | (ih <= 0), torch.zeros_like(iou), iou)


class CaffeDetectionOutput(nn.Module):
    """SSD's DetectionOutput: decode the location predictions against the priors (CORNER, CENTER_SIZE or
    CORNER_SIZE, variances from the prior blob unless encoded in the target), then per image and class
    (background skipped) keep scores above confidence_threshold, the top_k highest, and greedy NMS (a box
    is dropped when its overlap with a kept one exceeds the threshold; adaptive eta); then keep_top_k over
    all classes. Rows (image, label, score, xmin, ymin, xmax, ymax), by image, then label, then score;
    (1, 1, num_kept, 7), or one row of -1 per image (image id first) when nothing is kept."""

    def __init__(self, num_classes: int, share_location: bool = True, background_label_id: int = 0,
                 code_type: int = 1, variance_encoded_in_target: bool = False, keep_top_k: int = -1,
                 confidence_threshold: float = -3.4028234663852886e38, nms: bool = True,
                 nms_threshold: float = 0.3, top_k: int = -1, eta: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.share_location = share_location
        self.background_label_id = background_label_id
        self.code_type = code_type
        self.variance_encoded_in_target = variance_encoded_in_target
        self.keep_top_k = keep_top_k
        self.confidence_threshold = confidence_threshold
        self.nms = nms
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.eta = eta

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, code_type={self.code_type}, keep_top_k={self.keep_top_k}, "
                f"nms_threshold={self.nms_threshold}, top_k={self.top_k}")

    def _decode(self, loc: torch.Tensor, prior: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        if not self.variance_encoded_in_target:
            loc = loc * var
        if self.code_type == 1:  # CORNER
            return prior + loc
        pw = prior[..., 2] - prior[..., 0]
        ph = prior[..., 3] - prior[..., 1]
        if self.code_type == 3:  # CORNER_SIZE
            return prior + loc * torch.stack([pw, ph, pw, ph], dim=-1)
        cx = loc[..., 0] * pw + (prior[..., 0] + prior[..., 2]) / 2.0
        cy = loc[..., 1] * ph + (prior[..., 1] + prior[..., 3]) / 2.0
        w = torch.exp(loc[..., 2]) * pw
        h = torch.exp(loc[..., 3]) * ph
        return torch.stack([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0], dim=-1)

    def _nms(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cand = torch.nonzero(scores > self.confidence_threshold).reshape(-1)
        order = torch.sort(scores[cand], descending=True, stable=True)[1]
        cand = cand[order]
        if self.top_k > -1 and self.top_k < cand.shape[0]:
            cand = cand[: self.top_k]
        if not self.nms:
            return torch.arange(scores.shape[0], device=scores.device)
        kept = torch.zeros(cand.shape[0], dtype=torch.int64, device=scores.device)
        n_kept = 0
        threshold = self.nms_threshold
        for j in range(cand.shape[0]):
            idx = cand[j]
            keep = True
            if n_kept > 0:
                keep = bool((_jaccard(boxes[idx], boxes[kept[:n_kept]]) <= threshold).all())
            if keep:
                kept[n_kept] = idx
                n_kept += 1
                if self.eta < 1.0 and threshold > 0.5:
                    threshold = threshold * self.eta
        return kept[:n_kept]

    def _nms_classes(self, boxes: torch.Tensor, scores: torch.Tensor) -> list[torch.Tensor]:
        """_nms for all classes at once (boxes (C, P, 4), scores (C, P)): the greedy loop runs over the
        top_k candidates once, vectorised across classes, on their precomputed overlaps."""
        n_cls, n = scores.shape[0], scores.shape[1]
        above = scores > self.confidence_threshold
        ranked = torch.where(above, scores, torch.full_like(scores, float("-inf")))
        order = torch.sort(ranked, dim=1, descending=True, stable=True)[1]
        k = n if self.top_k < 0 else min(self.top_k, n)
        order = order[:, :k]
        valid = torch.gather(above, 1, order)
        cand = torch.gather(boxes, 1, order.unsqueeze(-1).expand(n_cls, k, 4))
        iou = _jaccard_matrix(cand)
        keep = torch.zeros(n_cls, k, dtype=torch.bool, device=scores.device)
        threshold = torch.full([n_cls], self.nms_threshold, dtype=scores.dtype, device=scores.device)
        for j in range(int(valid.sum(1).max().item()) if k > 0 else 0):
            ok = valid[:, j]
            if j > 0:
                ok = ok & ((iou[:, j, :j] <= threshold.unsqueeze(1)) | ~keep[:, :j]).all(1)
            keep[:, j] = ok
            if self.eta < 1.0:
                threshold = torch.where(ok & (threshold > 0.5), threshold * self.eta, threshold)
        return [order[c][keep[c]] for c in range(n_cls)]

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        num = loc.shape[0]
        n_priors = prior.shape[2] // 4
        n_loc = 1 if self.share_location else self.num_classes
        priors = prior[0, 0].reshape(n_priors, 4)
        var = prior[0, 1].reshape(n_priors, 4)
        boxes_all = self._decode(loc.reshape(num, n_priors, n_loc, 4), priors.unsqueeze(1), var.unsqueeze(1))
        scores_all = conf.reshape(num, n_priors, self.num_classes)
        labels: list[int] = []
        for c in range(self.num_classes):
            if c != self.background_label_id:
                labels.append(c)
        label_idx = torch.tensor(labels, dtype=torch.int64, device=loc.device)
        rows: list[torch.Tensor] = []
        for i in range(num):
            picks: list[torch.Tensor] = []
            scores = scores_all[i].index_select(1, label_idx).t()  # (classes, priors)
            if self.share_location:
                boxes = boxes_all[i, :, 0].unsqueeze(0).expand(len(labels), n_priors, 4)
            else:
                boxes = boxes_all[i].index_select(1, label_idx).transpose(0, 1)
            k = n_priors if self.top_k < 0 else min(self.top_k, n_priors)
            if self.nms and len(labels) * k * k <= 1 << 22:
                picks = self._nms_classes(boxes, scores)
            else:  # no top_k: the overlaps of all candidates would not fit, one class at a time
                for c in range(len(labels)):
                    picks.append(self._nms(boxes[c], scores[c]))
            total = 0
            for p in picks:
                total += p.shape[0]
            if self.keep_top_k > -1 and total > self.keep_top_k:
                all_scores: list[torch.Tensor] = []
                all_labels: list[torch.Tensor] = []
                for k in range(len(labels)):
                    all_scores.append(scores_all[i, picks[k], labels[k]])
                    all_labels.append(torch.full_like(picks[k], labels[k]))
                flat_scores = torch.cat(all_scores)
                flat_labels = torch.cat(all_labels)
                flat_idx = torch.cat(picks)
                best = torch.sort(flat_scores, descending=True, stable=True)[1][: self.keep_top_k]
                for k in range(len(labels)):
                    chosen = best[flat_labels[best] == labels[k]]
                    picks[k] = flat_idx[chosen]
            for k in range(len(labels)):
                idx = picks[k]
                if idx.shape[0] == 0:
                    continue
                c = labels[k]
                boxes = boxes_all[i, idx, 0 if self.share_location else c]
                head = torch.stack([torch.full_like(idx, i).to(loc.dtype), torch.full_like(idx, c).to(loc.dtype),
                                    scores_all[i, idx, c]], dim=1)
                rows.append(torch.cat([head, boxes], dim=1))
        if len(rows) == 0:
            out = torch.full((num, 7), -1.0, dtype=loc.dtype, device=loc.device)
            out[:, 0] = torch.arange(num, device=loc.device).to(loc.dtype)
            return out.reshape(1, 1, num, 7)
        return torch.cat(rows, dim=0).reshape(1, 1, -1, 7)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (torch.round rounds them to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


class CaffeProposal(nn.Module):
    """Faster R-CNN's Proposal (this Caffe's C++ port): anchors shifted over the feature map, moved by the
    predicted deltas (box widths counted +1), clipped to the image (first row of im_info: height, width),
    scored by the foreground scores (0 when smaller than min_size), sorted, the best pre_nms_topn kept,
    greedy NMS (IoU with +1 sizes above nms_thresh drops a box), at most post_nms_topn per image.
    Tops: rois (R, 5) = (image, x1, y1, x2, y2) and optionally their scores (R,)."""

    def __init__(self, num_anchors: int, feat_stride: int = 16, min_size: int = 16,
                 pre_nms_topn: int = 6000, post_nms_topn: int = 300, nms_thresh: float = 0.7,
                 with_scores: bool = False):
        super().__init__()
        self.register_buffer("anchors", torch.zeros(num_anchors, 4))  # (x1, y1, x2, y2) around the origin
        self.feat_stride = feat_stride
        self.min_size = min_size
        self.pre_nms_topn = pre_nms_topn
        self.post_nms_topn = post_nms_topn
        self.nms_thresh = nms_thresh
        self.with_scores = with_scores

    def extra_repr(self) -> str:
        return (f"{self.anchors.shape[0]} anchors, feat_stride={self.feat_stride}, min_size={self.min_size}, "
                f"pre_nms_topn={self.pre_nms_topn}, post_nms_topn={self.post_nms_topn}, "
                f"nms_thresh={self.nms_thresh}")

    def forward(self, scores: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor) -> list[torch.Tensor]:
        n_anchors = self.anchors.shape[0]
        fh, fw = scores.shape[2], scores.shape[3]
        img_h = im_info.reshape(-1)[0]
        img_w = im_info.reshape(-1)[1]
        dtype = scores.dtype
        ys = torch.arange(fh, device=scores.device).to(dtype) * self.feat_stride
        xs = torch.arange(fw, device=scores.device).to(dtype) * self.feat_stride
        anchors = self.anchors.to(dtype)
        # proposals in Caffe's order: row, column, anchor
        x1 = xs.reshape(1, fw, 1) + anchors[:, 0].reshape(1, 1, -1)
        y1 = ys.reshape(fh, 1, 1) + anchors[:, 1].reshape(1, 1, -1)
        x2 = xs.reshape(1, fw, 1) + anchors[:, 2].reshape(1, 1, -1)
        y2 = ys.reshape(fh, 1, 1) + anchors[:, 3].reshape(1, 1, -1)
        rois: list[torch.Tensor] = []
        roi_scores: list[torch.Tensor] = []
        for n in range(scores.shape[0]):
            d = deltas[n].reshape(n_anchors, 4, fh, fw).permute(2, 3, 0, 1)
            w = x2 - x1 + 1.0
            h = y2 - y1 + 1.0
            cx = d[..., 0] * w + (x1 + 0.5 * w)
            cy = d[..., 1] * h + (y1 + 0.5 * h)
            pw = torch.exp(d[..., 2]) * w
            ph = torch.exp(d[..., 3]) * h
            bx1 = torch.clamp(torch.minimum(cx - 0.5 * pw, img_w - 1.0), min=0.0)
            by1 = torch.clamp(torch.minimum(cy - 0.5 * ph, img_h - 1.0), min=0.0)
            bx2 = torch.clamp(torch.minimum(cx + 0.5 * pw, img_w - 1.0), min=0.0)
            by2 = torch.clamp(torch.minimum(cy + 0.5 * ph, img_h - 1.0), min=0.0)
            big = ((bx2 - bx1 + 1.0) >= self.min_size) & ((by2 - by1 + 1.0) >= self.min_size)
            fg = scores[n, n_anchors:].permute(1, 2, 0)
            score = torch.where(big, fg, torch.zeros_like(fg)).reshape(-1)
            boxes = torch.stack([bx1, by1, bx2, by2], dim=-1).reshape(-1, 4)
            order = torch.sort(score, descending=True, stable=True)[1][: self.pre_nms_topn]
            boxes = boxes[order]
            score = score[order]
            areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
            dead = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
            keep: list[int] = []
            for i in range(boxes.shape[0]):
                if bool(dead[i]):
                    continue
                keep.append(i)
                if len(keep) == self.post_nms_topn:
                    break
                b = boxes[i]
                iw = torch.clamp(torch.minimum(boxes[:, 2], b[2]) - torch.maximum(boxes[:, 0], b[0]) + 1.0, min=0.0)
                ih = torch.clamp(torch.minimum(boxes[:, 3], b[3]) - torch.maximum(boxes[:, 1], b[1]) + 1.0, min=0.0)
                apart = (b[0] > boxes[:, 2]) | (b[1] > boxes[:, 3]) | (b[2] < boxes[:, 0]) | (b[3] < boxes[:, 1])
                inter = iw * ih
                iou = torch.where(apart, torch.zeros_like(inter), inter / (areas[i] + areas - inter))
                later = torch.arange(boxes.shape[0], device=boxes.device) > i
                dead = dead | (later & (iou > self.nms_thresh))
            idx = torch.tensor(keep, dtype=torch.int64, device=boxes.device)
            rois.append(torch.cat([torch.full((idx.shape[0], 1), float(n), dtype=dtype, device=boxes.device),
                                   boxes[idx]], dim=1))
            roi_scores.append(score[idx])
        out = [torch.cat(rois, dim=0)]
        if self.with_scores:
            out.append(torch.cat(roi_scores, dim=0))
        return out


class CaffePSROIPooling(nn.Module):
    """R-FCN's PSROIPooling (the CUDA kernel's rule; this Caffe has no CPU version): for each RoI (batch,
    x1, y1, x2, y2), rounded, +1 on the far edge, times spatial_scale, a group_size x group_size grid of
    bins (floor/ceil edges, clipped); bin (i, j) of output channel k averages input channel
    (k * group_size + i) * group_size + j over the bin (0 for an empty bin)."""

    def __init__(self, spatial_scale: float, output_dim: int, group_size: int):
        super().__init__()
        self.spatial_scale = spatial_scale
        self.output_dim = output_dim
        self.group_size = group_size

    def extra_repr(self) -> str:
        return f"spatial_scale={self.spatial_scale}, output_dim={self.output_dim}, group_size={self.group_size}"

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        g = self.group_size
        h, w = x.shape[2], x.shape[3]
        # integral image per channel, in float64 so that window sums keep their precision
        integral = F.pad(x.to(torch.float64).cumsum(2).cumsum(3), [1, 0, 1, 0])
        r = rois.reshape(-1, 5).to(torch.float32)
        ss = torch.tensor(self.spatial_scale, dtype=torch.float32)
        x1 = _round_half_away(r[:, 1]) * ss
        y1 = _round_half_away(r[:, 2]) * ss
        x2 = (_round_half_away(r[:, 3]) + 1.0) * ss
        y2 = (_round_half_away(r[:, 4]) + 1.0) * ss
        bin_w = torch.clamp(x2 - x1, min=0.1) / float(g)
        bin_h = torch.clamp(y2 - y1, min=0.1) / float(g)
        steps = torch.arange(g, dtype=torch.float32, device=x.device)
        hs = torch.clamp(torch.floor(steps[None, :] * bin_h[:, None] + y1[:, None]), 0, h).to(torch.int64)
        he = torch.clamp(torch.ceil((steps[None, :] + 1) * bin_h[:, None] + y1[:, None]), 0, h).to(torch.int64)
        ws = torch.clamp(torch.floor(steps[None, :] * bin_w[:, None] + x1[:, None]), 0, w).to(torch.int64)
        we = torch.clamp(torch.ceil((steps[None, :] + 1) * bin_w[:, None] + x1[:, None]), 0, w).to(torch.int64)
        chan = (torch.arange(self.output_dim, device=x.device).reshape(-1, 1, 1) * g
                + torch.arange(g, device=x.device).reshape(1, -1, 1)) * g + torch.arange(g, device=x.device)
        outs: list[torch.Tensor] = []
        for k in range(r.shape[0]):
            plane = integral[int(r[k, 0].item())]  # (C, H + 1, W + 1)
            a = plane[chan, hs[k].reshape(1, -1, 1), ws[k].reshape(1, 1, -1)]
            b = plane[chan, hs[k].reshape(1, -1, 1), we[k].reshape(1, 1, -1)]
            c = plane[chan, he[k].reshape(1, -1, 1), ws[k].reshape(1, 1, -1)]
            d = plane[chan, he[k].reshape(1, -1, 1), we[k].reshape(1, 1, -1)]
            area = ((he[k] - hs[k]).reshape(-1, 1) * (we[k] - ws[k]).reshape(1, -1)).to(torch.float64)
            total = d - b - c + a
            outs.append(torch.where(area > 0, total / area.clamp(min=1.0), torch.zeros_like(total)))
        return torch.stack(outs, 0).to(x.dtype)
