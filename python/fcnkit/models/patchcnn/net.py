"""The patch classifier of contour-refining-patch-cnn.txt, and its dense application to whole images.

`PatchNet` is exactly the seed's net: on a 32x32 patch, conv 5x5/1 pad 2 -> 32, then 3x3/2 pad 1 -> 64,
128, 128, 128 (each with batch normalisation and leaky ReLU 0.2), and 3x3/2 pad 1 -> 1 without bias: one
score per patch (a logit here; the seed's final sigmoid is in the loss and in `fcnkit.inference`).

`DensePatchCNN` wraps it for the toolkit: `forward(images)` scores a patch centred on every `step`-th
pixel (each patch cut out on its own, borders replicated, so every score is exactly the classifier's on
that patch) and interpolates the score grid bilinearly to every pixel; a smaller step is the seed's
"denser application" for a smoother mask. `patch_logits(patches)` is the classifier itself (training).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fcnkit.config.seeds import PATCH_CHANNELS, PATCH_LEAKY_SLOPE, PATCH_SIZE, PATCH_STEP


class PatchNet(nn.Module):
    def __init__(self):
        super().__init__()
        fs = PATCH_CHANNELS
        self.conv1 = nn.Conv2d(3, fs[0], 5, 1, 2)
        for i in range(1, 5):
            self.add_module(f"conv{i + 1}", nn.Conv2d(fs[i - 1], fs[i], 3, 2, 1))
        self.conv6 = nn.Conv2d(fs[4], fs[5], 3, 2, 1, bias=False)
        for i in range(5):
            self.add_module(f"bn{i + 1}", nn.BatchNorm2d(fs[i]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = F.leaky_relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)), PATCH_LEAKY_SLOPE)
        return self.conv6(x)


class DensePatchCNN(nn.Module):
    def __init__(self, step: int = PATCH_STEP, chunk: int = 2048):
        super().__init__()
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.net = PatchNet()
        self.step = step
        self.chunk = chunk

    def patch_logits(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) -> (N,) logits."""
        return self.net(patches).reshape(-1)

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the patches centred on pixels (i*step, j*step): (N, 1, gh, gw), covering the image."""
        n, _, h, w = x.shape
        s, half = self.step, PATCH_SIZE // 2
        gh, gw = math.ceil((h - 1) / s) + 1, math.ceil((w - 1) / s) + 1
        pad_b, pad_r = (gh - 1) * s + half - h, (gw - 1) * s + half - w
        xp = F.pad(x, (half, pad_r, half, pad_b), mode="replicate")
        rows = max(1, self.chunk // max(1, n * gw))
        out = []
        for r0 in range(0, gh, rows):
            r1 = min(gh, r0 + rows)
            strip = xp[:, :, r0 * s:(r1 - 1) * s + PATCH_SIZE]
            cols = F.unfold(strip, PATCH_SIZE, stride=s)  # (N, 3*32*32, (r1-r0)*gw)
            patches = cols.transpose(1, 2).reshape(-1, x.shape[1], PATCH_SIZE, PATCH_SIZE)
            out.append(self.patch_logits(patches).reshape(n, r1 - r0, gw))
        return torch.cat(out, 1).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grid(x)
        h, w = x.shape[-2:]
        if self.step > 1:
            full = ((g.shape[2] - 1) * self.step + 1, (g.shape[3] - 1) * self.step + 1)
            g = F.interpolate(g, size=full, mode="bilinear", align_corners=True)
        return g[:, :, :h, :w]


def build(step: int = PATCH_STEP) -> DensePatchCNN:
    return DensePatchCNN(step=step)
