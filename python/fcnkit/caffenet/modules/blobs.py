"""Caffe-semantics modules: Eltwise, Concat, Slice, Split, Reshape, ArgMax, Tile, Reduction, Embed, Filter,
BatchReindex, Parameter.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""


import torch
import torch.nn.functional as F
from torch import nn


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

