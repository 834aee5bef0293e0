"""The Label Refinement Network family (lrn-head-torso.txt): one output per resolution, BCE at every level.

Registered models:
* `lrn` - the seed's variant (no 1-filter convolution on the skips), Glorot-uniform initialisation, 224x224;
* `lrn-vgg` - the same with VGG-16 ImageNet weights in the encoder, frozen until the decoder reaches a
  plateau, then unfrozen and trained to a new one (`fcnkit fetch-weights vgg16`);
* `lrn-original` - the original LRN's refinement units (a 1-filter convolution on each skip);
* `tiny/lrn`, `tiny/lrn-original` - 1/8-width CPU stand-ins on the embedded sample data;
* `<task>/lrn`, `<task>/lrn-original` - batch-normalised CPU models for the real-photo tasks (`config.realdata`).
Training (both variants): Adam 1e-4, the sum of the per-level binary cross-entropies (labels resized to
each level), horizontal flips, zoom and rotation of image and mask together.
"""

from __future__ import annotations

from fcnkit.config.realdata import REAL_WIDTH
from fcnkit.config.seeds import LRN_AUGMENT, LRN_BATCH, LRN_EPOCHS, LRN_IMAGE_SIZE, LRN_LR, LRN_PATIENCE
from fcnkit.models.lrn.net import LRN, build
from fcnkit.models.native import SAMPLE_WORDS, TINY, TINY_SIZE, TINY_WIDTH, TINY_WORDS, native_spec, real_specs

PAPER_DATA = "your own photos + masks (the seed: 250 LFW head-torso images at 224x224)"
TRAIN = {"lr": LRN_LR, "batch_size": LRN_BATCH, "epochs": LRN_EPOCHS, "patience": LRN_PATIENCE,
         "loss": "deep_bce", "augment": LRN_AUGMENT}
TINY_TRAIN = {**TRAIN, "lr": 1e-3, "batch_size": 16, "epochs": 8, "patience": 0}  # CPU minutes: ours


def _register():
    specs = []
    for suffix, skip, words in (("", False, "the seed's LRN (no 1-filter skip convolution)"),
                                ("-original", True, "the original LRN (1-filter skip convolution)")):
        specs.append(native_spec(f"lrn{suffix}", "lrn", build, description=f"{words}, VGG-16 encoder, 224x224",
                                 config={"width": 1.0, "skip_conv": skip}, train=TRAIN,
                                 size_rule=f"fixed:{LRN_IMAGE_SIZE}", trained_on=PAPER_DATA,
                                 presets=("paper",)))
        specs.append(native_spec(f"{TINY}/lrn{suffix}", "lrn", build, description=f"{words}, {TINY_WORDS}",
                                 config={"width": TINY_WIDTH, "skip_conv": skip}, train=TINY_TRAIN,
                                 size_rule=TINY_SIZE, trained_on=SAMPLE_WORDS, presets=("quick",)))
        specs += real_specs("lrn", f"lrn{suffix}", build, description=words,
                            config={"width": REAL_WIDTH, "skip_conv": skip, "batch_norm": True},
                            train={"loss": "deep_bce"})
    specs.append(native_spec("lrn-vgg", "lrn", build, description="the seed's LRN with VGG-16 ImageNet weights",
                             config={"width": 1.0, "skip_conv": False}, size_rule=f"fixed:{LRN_IMAGE_SIZE}",
                             train={**TRAIN, "freeze_encoder": "plateau"}, trained_on=PAPER_DATA,
                             pretrained="vgg16", presets=("paper",)))
    return specs


SPECS = _register()
__all__ = ["LRN", "SPECS", "build"]
