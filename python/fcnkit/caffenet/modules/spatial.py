"""Caffe-semantics modules: convolution as one GEMM, pooling with Caffe's size and padding rules (and SPP),
inner product, crop, im2col, padding, resizing, upsampling and unpooling.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""


import torch
import torch.nn.functional as F
from torch import nn


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

