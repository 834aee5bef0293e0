"""Numbers the paper states, and the choices made where it is silent (each with its source).

Paper: Falkenhainer, "Semantic Image Segmentation via Fully Convolutional Networks" (the sneaker study).
Every module that needs one of these numbers imports it from here; `fcnkit fidelity` checks the committed
solvers and nets against the paper's own sentences.
"""

from __future__ import annotations

# -- numbers the paper states ------------------------------------------------------------------
IMAGE_SIZE = 224        # "each with a size of 224x224"
DATASET_SIZE = 4500     # "4,500 sneakers"
BATCH_SIZE = 15
MOMENTUM = 0.99
CLASSES = 2             # white background -> 0, sneaker -> 1

# -- choices where the paper is silent, with their source ---------------------------------------
VGG_MEAN_BGR = (104.00699, 116.66877, 122.67892)
IGNORE_LABEL = 255
VAL_FRACTION = 0.1
WHITE_TOLERANCE = 20    # the near-white mask rule: background = every channel >= 255 - 20

SILENT_CHOICES = {
    "weight_decay": (0.0005, "FCN reference solver.prototxt (voc-fcn*)"),
    "lr_policy": ("fixed / step", "paper: 'fixed learning rate'; the 32s drop is a single step, gamma 0.01"),
    "loss_normalization": ("normalize: false (sum over pixels / batch)",
                           "FCN reference; the only reading under which 1e-8..1e-10 rates train"),
    "mean_bgr": (VGG_MEAN_BGR, "FCN reference / VGG-16 ImageNet mean"),
    "snapshot": (4000, "FCN reference solve.py scores and snapshots every 4 000 iterations"),
    "display": (20, "FCN reference solver.prototxt"),
    "average_loss": (20, "FCN reference solver.prototxt"),
    "ignore_label": (IGNORE_LABEL, "FCN reference / PASCAL VOC convention"),
    "val_split": (VAL_FRACTION, "not stated; 10% of images held out (data_prep default)"),
    "augmentation": ("none", "paper and FCN reference use none"),
    "init_32s": ("VGG-16 ImageNet (Model Zoo VGG_ILSVRC_16_layers), fc6/fc7 transplanted",
                 "paper: 'based off the VGG-16 network'; FCN reference surgery"),
}
