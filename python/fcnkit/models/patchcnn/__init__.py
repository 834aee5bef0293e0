"""The patch-CNN family (contour-refining-patch-cnn.txt): rectangles in, contours out, weakly supervised.

Training labels come only from one rectangle per image (a patch whose centre is inside is foreground,
outside background); the net learns what background looks like from the many contradicting examples.
On our data the rectangle is the true mask's bounding box (`supervision: boxes`). Applied densely it gives
a mask for any image; `fcnkit refine IMAGE --box x,y,w,h` adds the seed's ideas: denser application,
clipping to the tag, iterative relabelling, the largest connected component, and a tag-free mode.

Registered models: `patchcnn` (the seed's net; it is small enough for CPU as it is, so there is no tiny
variant), and `<task>/patchcnn` for the real-photo tasks (`config.realdata`: fashion photos, DUTS), trained
from the box of each train mask alone.
"""

from __future__ import annotations

from fcnkit.config.realdata import REAL_PATCH_TRAIN
from fcnkit.config.seeds import PATCH_BATCH, PATCH_LR, PATCH_SIZE, PATCH_STEP
from fcnkit.models.native import native_spec, real_specs
from fcnkit.models.patchcnn.net import DensePatchCNN, PatchNet, build

WORDS = "the seed's 32x32 patch classifier (32-64-128-128-128-1, BN, leaky ReLU 0.2), applied densely"
TRAIN = {"lr": PATCH_LR, "batch_size": PATCH_BATCH, "epochs": 10, "loss": "patch_bce", "task": "patches",
         "patches_per_epoch": 40_000}
INIT = "PyTorch's default initialisation (as the seed's code)"
SPECS = [native_spec(
    "patchcnn", "patchcnn", build, description=WORDS, config={"step": PATCH_STEP}, train=TRAIN,
    size_rule="any", supervision="boxes", init=INIT,
    trained_on="any photos + one rectangle each (here: the bounding box of the true mask)",
    presets=("quick", "paper"), ranges={"step": (1, PATCH_SIZE)}),  # a step past the patch leaves pixels unseen
    *real_specs("patchcnn", "patchcnn", build, description=WORDS, config={"step": PATCH_STEP},
                train={**TRAIN, **REAL_PATCH_TRAIN, "augment": None}, supervision="boxes",
                init=INIT, ranges={"step": (1, PATCH_SIZE)})]
__all__ = ["SPECS", "DensePatchCNN", "PatchNet", "build"]
