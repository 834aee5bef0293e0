"""The study's training schedule: the one table every net, solver, driver and fidelity check reads.

Paper (Falkenhainer, "Semantic Image Segmentation via Fully Convolutional Networks"):
  * FCN-32s: 50 000 iterations, lr 1e-8, dropping to 1e-10 after the first 20 000; momentum 0.99; batch 15;
  * FCN-16s, FCN-8s: 20 000 iterations each at 1e-10, momentum 0.99; each from the previous stage's weights;
  * all three on 224x224 sneakers on white backgrounds (4 500 images);
  * FCN-8s again on sneakers pasted onto PASCAL VOC 2012 scenes, from the white FCN-8s:
    10 000 iterations at 1e-10, then fine-tuned for another 20 000 at 1e-10.
Where the paper is silent the FCN reference (fcn.berkeleyvision.org voc-fcn*) decides: see SILENT_CHOICES.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- numbers the paper states ------------------------------------------------------------------
PAPER = {
    "dataset_size": 4500,
    "image_size": 224,
    "batch_size": 15,
    "momentum": 0.99,
    "classes": 2,  # white background -> 0, sneaker -> 1
}

# -- choices where the paper is silent, with their source ---------------------------------------
VGG_MEAN_BGR = (104.00699, 116.66877, 122.67892)
SILENT_CHOICES = {
    "weight_decay": (0.0005, "FCN reference solver.prototxt (voc-fcn*)"),
    "lr_policy": ("fixed / step", "paper: 'fixed learning rate'; the 32s drop is a single step, gamma 0.01"),
    "loss_normalization": ("normalize: false (sum over pixels / batch)",
                           "FCN reference; the only reading under which 1e-8..1e-10 rates train"),
    "mean_bgr": (VGG_MEAN_BGR, "FCN reference / VGG-16 ImageNet mean"),
    "snapshot": (4000, "FCN reference solve.py scores and snapshots every 4 000 iterations"),
    "display": (20, "FCN reference solver.prototxt"),
    "average_loss": (20, "FCN reference solver.prototxt"),
    "ignore_label": (255, "FCN reference / PASCAL VOC convention"),
    "val_split": (0.1, "not stated; 10% of images held out (data_prep default)"),
    "augmentation": ("none", "paper and FCN reference use none"),
    "init_32s": ("VGG-16 ImageNet (Model Zoo VGG_ILSVRC_16_layers), fc6/fc7 transplanted",
                 "paper: 'based off the VGG-16 network'; FCN reference surgery"),
}


@dataclass(frozen=True)
class Stage:
    name: str  # solver/prototxt name
    stride: int  # 32, 16 or 8
    data: str  # "white" or "composite": which LMDB set under data/
    base_lr: float
    max_iter: int
    init_from: str  # previous stage name, or "vgg16"
    step_at: int | None = None  # iteration where lr is multiplied by `gamma`
    gamma: float = 0.01

    @property
    def net_dir(self) -> str:
        """Directory under prototxt/ holding train/val/deploy for this stage."""
        return f"fcn{self.stride}s" if self.data == "white" else f"fcn{self.stride}s_{self.data}"


STAGES = (
    Stage("fcn32s", 32, "white", 1e-8, 50_000, "vgg16", step_at=20_000),
    Stage("fcn16s", 16, "white", 1e-10, 20_000, "fcn32s"),
    Stage("fcn8s", 8, "white", 1e-10, 20_000, "fcn16s"),
    Stage("fcn8s_composite", 8, "composite", 1e-10, 10_000, "fcn8s"),
    Stage("fcn8s_finetune", 8, "composite", 1e-10, 20_000, "fcn8s_composite"),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}

