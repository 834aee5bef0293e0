"""The PyTorch side of caffe_pylayers.py: a --plugin module for the converter tests."""

import torch
from torch import nn


class ScaledTanh(nn.Module):
    def __init__(self, param_str: str = ""):
        super().__init__()
        scale, shift = (float(v) for v in param_str.split(","))
        self.scale = scale
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(x) + self.shift


class Upsample2x(nn.Module):
    """YOLOv3's Python interp layer: nearest-neighbour 2x upsampling, in the middle of the net."""

    def __init__(self, param_str: str = ""):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


class ProposalLayer(nn.Module):
    """A stand-in for py-faster-rcnn's rpn.proposal_layer (param_str "'feat_stride': 16"): one box per feature
    cell with a foreground score above 0.5, 16x16 at the cell's image position, as (batch, x1, y1, x2, y2).
    Its number of rows depends on the data, so it says it cannot go into model.onnx."""

    onnx_exportable = False

    def __init__(self, param_str: str = ""):
        super().__init__()
        self.stride = float(param_str.split(":")[1]) if ":" in param_str else 16.0

    def forward(self, scores: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor) -> torch.Tensor:
        fg = scores[0, scores.shape[1] // 2:].amax(0)  # (H, W)
        ys, xs = torch.nonzero(fg > 0.5, as_tuple=True)
        if ys.numel() == 0:
            ys, xs = torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
        x1, y1 = xs.float() * self.stride, ys.float() * self.stride
        return torch.stack([torch.zeros_like(x1), x1, y1, x1 + self.stride - 1, y1 + self.stride - 1], 1)
