"""An `nn.Module` held in memory as a backend, so training's validation, `refine` and `compare` score a
model through the same `Predictor` (sizes, preprocessing, log-odds) as a checkpoint loaded from disk."""

from __future__ import annotations

import numpy as np

from fcnkit.inference.predict import Predictor
from fcnkit.models.registry import Preprocessing


class ModuleBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu"):
        import torch  # noqa: PLC0415

        self.torch, self.model, self.device = torch, model, device

    def forward(self, x: np.ndarray) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            with self.torch.inference_mode():
                y = self.model(self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
        finally:
            self.model.train(was_training)
        return y.float().cpu().numpy()


def module_predictor(model, preprocessing: Preprocessing, output: str = "sigmoid1", *, device: str = "cpu",
                     batch_size: int = 8, label: str = "") -> Predictor:
    return Predictor(ModuleBackend(model, device), preprocessing, output, label=label, batch_size=batch_size)
