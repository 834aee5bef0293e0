"""The U-Net family (lrn-head-torso.txt §2.2, the LRN's reference): same encoder, one full-resolution map.

Registered models: `unet` (Glorot-uniform, 224x224), `unet-vgg` (VGG-16 ImageNet encoder, frozen until the
decoder's plateau, then unfrozen), `tiny/unet` (1/8-width CPU stand-in), `<task>/unet` (batch-normalised CPU
models for the real-photo tasks of `config.realdata`, e.g. `duts/unet`). Training as the LRN's: Adam 1e-4,
binary cross-entropy, flips, zoom and rotation. `duts/unet` (issue 20, `config.realdata.REAL_TUNED`) is 1/4
wide, runs at 112 px, also sees coordinate and border-contrast channels, trains on BCE + soft Jaccard with a
one-cycle schedule and averages its logits with its mirror image's at test time.
"""

from __future__ import annotations

from fcnkit.config.realdata import REAL_WIDTH
from fcnkit.config.seeds import LRN_IMAGE_SIZE
from fcnkit.models.lrn import PAPER_DATA, TINY_TRAIN, TRAIN
from fcnkit.models.native import SAMPLE_WORDS, TINY, TINY_SIZE, TINY_WIDTH, TINY_WORDS, native_spec, real_specs
from fcnkit.models.unet.net import UNet, build

_TRAIN = {**TRAIN, "loss": "bce"}
SPECS = [
    native_spec("unet", "unet", build, description="U-Net on the VGG-16 encoder, 224x224", config={"width": 1.0},
                train=_TRAIN, size_rule=f"fixed:{LRN_IMAGE_SIZE}", trained_on=PAPER_DATA, presets=("paper",)),
    native_spec("unet-vgg", "unet", build, description="U-Net with VGG-16 ImageNet weights in the encoder",
                config={"width": 1.0}, train={**_TRAIN, "freeze_encoder": "plateau"},
                size_rule=f"fixed:{LRN_IMAGE_SIZE}", trained_on=PAPER_DATA, pretrained="vgg16",
                presets=("paper",)),
    native_spec(f"{TINY}/unet", "unet", build, description=f"U-Net, {TINY_WORDS}", config={"width": TINY_WIDTH},
                train={**TINY_TRAIN, "loss": "bce"}, size_rule=TINY_SIZE, trained_on=SAMPLE_WORDS,
                presets=("quick",)),
    *real_specs("unet", "unet", build, description="U-Net", config={"width": REAL_WIDTH, "batch_norm": True}),
]
__all__ = ["SPECS", "UNet", "build"]
