"""The layers whose training behaviour differs from inference, with Caffe's semantics, for the torch engine.

The converter (`fcnkit.caffenet.registry`) builds every compute layer; these replace or add what training
needs: Dropout with Caffe's scaling (a mask of Bernoulli(1 - ratio) times 1 / (1 - ratio), identity in the
TEST phase), BatchNorm with batch statistics and Caffe's moving-average blobs, and the loss layers with
Caffe's normalisation and gradients (SoftmaxWithLoss's gradient is prob - onehot scaled by
loss_weight / normalizer, also where the log is clamped at FLT_MIN), plus the metric layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

FLT_MIN = float(np.finfo(np.float32).tiny)
# LossParameter.NormalizationMode
FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3


class CaffeDropout(nn.Module):
    def __init__(self, ratio: float, generator: torch.Generator | None, train_phase: bool):
        super().__init__()
        self.ratio = np.float32(ratio)
        self.scale = float(np.float32(1.0) / (np.float32(1.0) - self.ratio))
        self.generator = generator
        self.train_phase = train_phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.train_phase or self.ratio == 0:
            return x
        keep = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        keep.bernoulli_(1.0 - float(self.ratio), generator=self.generator)
        return x * (keep * self.scale)


class CaffeBatchNormTrain(nn.Module):
    """Caffe's BatchNorm: blobs mean, variance (both times the factor) and the factor itself, as buffers
    shared with the test net. With batch statistics (TRAIN default) the blobs follow Caffe's moving average:
    factor = factor * maf + 1, mean = batch mean + maf * mean, var = m/(m-1) * batch var + maf * var."""

    def __init__(self, channels: int, eps: float, maf: float, use_global_stats: bool):
        super().__init__()
        self.eps = float(np.float32(eps))
        self.maf = float(np.float32(maf))
        self.use_global_stats = use_global_stats
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.zeros(channels))
        self.register_buffer("factor", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, 1) if x.dim() == 1 else x
        shape = [1, -1] + [1] * (x2.dim() - 2)
        dims = [0] + list(range(2, x2.dim()))
        if self.use_global_stats:
            f = self.factor[0]
            scale = torch.where(f == 0, torch.zeros_like(f), 1 / f)
            mean, var = self.mean * scale, self.variance * scale
        else:
            mean = x2.mean(dim=dims)
            var = ((x2 - mean.reshape(shape)) ** 2).mean(dim=dims)
            with torch.no_grad():
                m = x2.numel() // x2.shape[1]
                self.factor.mul_(self.maf).add_(1)
                self.mean.mul_(self.maf).add_(mean)
                self.variance.mul_(self.maf).add_(var * (m / (m - 1) if m > 1 else 1.0))
        y = (x2 - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        return y.reshape(x.shape)


def normalizer(mode: int, outer: int, inner: int, valid: int) -> float:
    """LossLayer::GetNormalizer (at least 1)."""
    n = {FULL: outer * inner, VALID: valid, BATCH_SIZE: outer, NONE: 1}[mode]
    return max(1.0, float(np.float32(n)))


class _SoftmaxLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, label, axis: int, ignore: int | None, mode: int):
        prob = torch.softmax(x, dim=axis)
        outer = int(np.prod(x.shape[:axis]))
        inner = int(np.prod(x.shape[axis + 1:]))
        lab = label.reshape(outer, 1, inner).to(torch.int64)
        p = prob.reshape(outer, x.shape[axis], inner)
        valid = torch.ones_like(lab, dtype=torch.bool) if ignore is None else lab != ignore
        idx = torch.where(valid, lab, torch.zeros_like(lab))
        logs = torch.log(p.gather(1, idx).clamp_min(FLT_MIN))[valid]
        # Caffe subtracts the terms one by one from a float accumulator, in this order: so does numpy's
        # add.accumulate (a pairwise or double sum would differ from Caffe's by ~sqrt(pixels) float ulps)
        total = np.add.accumulate(logs.detach().cpu().numpy(), dtype=np.float32)[-1] if logs.numel() else 0.0
        norm = normalizer(mode, outer, inner, logs.numel())
        ctx.save_for_backward(prob, idx, valid)
        ctx.meta = (axis, x.shape[axis], norm)
        return torch.tensor(-np.float32(total) / np.float32(norm), dtype=x.dtype, device=x.device), prob

    @staticmethod
    def backward(ctx, grad_loss, grad_prob):
        prob, idx, valid = ctx.saved_tensors
        axis, channels, norm = ctx.meta
        outer = idx.shape[0]
        g = prob.clone().reshape(outer, channels, -1)
        g.scatter_add_(1, idx, -valid.to(g.dtype))
        g.mul_(valid.to(g.dtype))
        g.mul_((grad_loss.to(torch.float32) / np.float32(norm)).to(g.dtype))
        return g.reshape(prob.shape), None, None, None, None


class SoftmaxWithLoss(nn.Module):
    def __init__(self, axis: int = 1, ignore_label: int | None = None, normalization: int = VALID,
                 with_prob: bool = False):
        super().__init__()
        self.axis, self.ignore_label, self.normalization, self.with_prob = axis, ignore_label, normalization, with_prob

    def forward(self, x: torch.Tensor, label: torch.Tensor):
        loss, prob = _SoftmaxLoss.apply(x, label, self.axis, self.ignore_label, self.normalization)
        return [loss, prob] if self.with_prob else loss


class SigmoidCrossEntropyLoss(nn.Module):
    """Summed over all elements, divided by num (this Caffe's version: no normalization field)."""

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pos = (x >= 0).to(x.dtype)
        terms = x * (target - pos) - torch.log1p(torch.exp(x - 2 * x * pos))
        return -terms.sum() / x.shape[0]


class EuclideanLoss(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a - b.reshape(a.shape)
        return (d * d).sum() / a.shape[0] / 2


class Accuracy(nn.Module):
    """Caffe's Accuracy (top_k, axis, ignore_label): the fraction of counted positions whose label is among
    the top_k scores, ties ranked by the larger class index first (Caffe sorts (score, index) pairs).
    A metric: no gradient."""

    def __init__(self, top_k: int = 1, axis: int = 1, ignore_label: int | None = None):
        super().__init__()
        self.top_k, self.axis, self.ignore_label = top_k, axis, ignore_label

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            outer = int(np.prod(x.shape[:self.axis]))
            s = x.reshape(outer, x.shape[self.axis], -1)
            lab = label.reshape(outer, 1, -1).to(torch.int64)
            valid = torch.ones_like(lab, dtype=torch.bool) if self.ignore_label is None else lab != self.ignore_label
            idx = torch.where(valid, lab, torch.zeros_like(lab))
            mine = s.gather(1, idx)
            k = torch.arange(s.shape[1], device=s.device).reshape(1, -1, 1)
            rank = ((s > mine) | ((s == mine) & (k > idx))).sum(1, keepdim=True)  # classes ranked above
            hit = (rank < self.top_k) & valid
            return (hit.sum() / valid.sum()).to(x.dtype)


class PixelAccuracy(nn.Module):
    """fcnkit.caffe.pylayers.PixelAccuracy: argmax(score) == label over pixels not labelled `ignore`."""

    def __init__(self, ignore: int = 255):
        super().__init__()
        self.ignore = ignore

    def forward(self, score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            lab = label[:, 0]
            valid = lab != self.ignore
            total = valid.sum()
            hits = ((score.argmax(1) == lab) & valid).sum()
            return torch.where(total > 0, hits / total.clamp_min(1), torch.nan).reshape(1).to(score.dtype)


class PairedMirror(nn.Module):
    """fcnkit.caffe.pylayers.PairedMirror: each sample of (image, label) flipped left-right together with
    probability 0.5, drawn from numpy's default_rng(seed) exactly as the Caffe Python layer draws."""

    def __init__(self, seed: int | None):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
        flip = torch.from_numpy(self.rng.random(image.shape[0]) < 0.5).to(image.device)
        sel = flip.reshape(-1, *([1] * (image.dim() - 1)))
        return [torch.where(sel, image.flip(-1), image), torch.where(sel, label.flip(-1), label)]


class Silence(nn.Module):
    def forward(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        return []
