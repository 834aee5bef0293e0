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
    "Conv2dGemm", "CaffePool2d", "CaffeInnerProduct", "CaffeBatchNorm", "CaffeScale", "CaffeScaleByBlob",
    "CaffeBias", "CaffeBiasByBlob", "CaffeLRN", "CaffePower", "CaffeExp", "CaffeLog", "CaffeAbsVal",
    "CaffeThreshold", "CaffeEltwise", "CaffeConcat", "CaffeSlice", "CaffeSplit", "CaffeReshape",
    "CaffeCrop", "CaffeArgMax", "CaffeTile", "CaffeReduction",
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


class CaffePool2d(nn.Module):
    """Caffe's Pooling layer (MAX or AVE) with Caffe's output size rule.

    Caffe sizes the output with ceil (default) or floor of (H + 2*pad - kernel) / stride, + 1; then,
    only when some padding is set, it drops the last window if that window would start in the padding.
    MAX ignores padding; AVE divides by the window area clipped to the padded input (padding counts,
    the ceil overhang does not); a window that lies entirely outside the input gives -FLT_MAX (MAX)
    or NaN (AVE), as in Caffe. `torch.nn.functional` pooling is used directly when it agrees.
    """

    def __init__(self, method: str, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] = (0, 0), ceil_mode: bool = True, global_pooling: bool = False):
        super().__init__()
        if method not in ("max", "ave"):
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

    def _size(self, n: int, k: int, s: int, p: int) -> int:
        span = n + 2 * p - k
        if self.ceil_mode:
            return -((-span) // s) + 1
        return span // s + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2]
        w = x.shape[-1]
        if self.global_pooling:
            kh, kw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
        else:
            kh, kw = self.kernel_size
            sh, sw = self.stride
            ph, pw = self.padding
        oh = self._size(h, kh, sh, ph)
        ow = self._size(w, kw, sw, pw)
        if ph > 0 or pw > 0:
            if (oh - 1) * sh >= h + ph:
                oh -= 1
            if (ow - 1) * sw >= w + pw:
                ow -= 1
        # torch's own rule: same formula, but the "starts in the padding" fix is applied without padding too
        th = self._size(h, kh, sh, ph)
        tw = self._size(w, kw, sw, pw)
        if self.ceil_mode:
            if (th - 1) * sh >= h + ph:
                th -= 1
            if (tw - 1) * sw >= w + pw:
                tw -= 1
        if th == oh and tw == ow and 2 * ph <= kh and 2 * pw <= kw:
            if self.method == "max":
                return F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=self.ceil_mode)
            return F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=self.ceil_mode,
                                count_include_pad=True)
        # General case: pad explicitly so that windows 0..o-1 tile the padded input exactly.
        bottom = (oh - 1) * sh + kh - h - ph
        right = (ow - 1) * sw + kw - w - pw
        if self.method == "max":
            # -FLT_MAX: Caffe's initial maximum, and so what a window lying outside the input yields
            xp = F.pad(x, [pw, right, ph, bottom], value=-3.4028234663852886e38)
            return F.max_pool2d(xp, (kh, kw), (sh, sw))
        xp = F.pad(x, [pw, right, ph, bottom], value=0.0)
        total = F.avg_pool2d(xp, (kh, kw), (sh, sw), divisor_override=1)
        start_h = torch.arange(oh, device=x.device) * sh - ph
        start_w = torch.arange(ow, device=x.device) * sw - pw
        area_h = torch.clamp(start_h + kh, max=h + ph) - start_h
        area_w = torch.clamp(start_w + kw, max=w + pw) - start_w
        area = (area_h[:, None] * area_w[None, :]).to(x.dtype)
        return total / area


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

    def __init__(self, num_features: int, eps: float = 1e-5, use_global_stats: bool = True):
        super().__init__()
        self.eps = eps
        self.use_global_stats = use_global_stats
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.running_mean.shape[0]}, eps={self.eps}, use_global_stats={self.use_global_stats}"

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
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
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
