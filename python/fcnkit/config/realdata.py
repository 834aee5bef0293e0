"""Real photographs: the tasks `compare --preset real` trains and scores on, the CPU models' size and widths.

Each task is one seed's question on public research data (`../shared/realdata`, see its README; a user
fetches the same originals with `prep fetch`): real shoes on white and the same pasted onto real scenes
(the FCN study), head-and-torso portraits (the LRN paper), COCO prominent objects (ExtractNet), street-fashion
photos refined from a box (the patch CNN), and DUTS salient objects, the one task every family is trained
on. The numbers below are ours (CPU minutes on a 2-core machine), not the seeds'.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fcnkit.config.paths import project_root

REALDATA_ENV = "FCNKIT_REALDATA"   # where the real data sets live; default: the first `shared/realdata` above
REALDATA_SUBDIR = "shared/realdata"  # the project root (the layout `../shared/realdata` of the README)

REAL_SIZE = 112          # ours: every real-photo CPU model trains and runs at 112 x 112
REAL_STORE = 128         # ours: train/val images are stored at this side (each model resizes to its own)
REAL_WIDTH = 1 / 8       # ours: VGG-16 widths 8-16-32-64-64, with batch normalisation (trained from scratch)
REAL_AE_WIDTH = 1.0      # ours: the ExtractNet autoencoders at the report's depths (32-64-128), with BN
REAL_TRAIN = {"lr": 3e-3, "batch_size": 16, "epochs": 8, "loss": "bce", "lr_schedule": "cosine",
              "augment": {"flip": True, "zoom": 0.2, "rotate_deg": 10.0}}  # ours: Adam, flips/crops/zoom
REAL_PATCH_TRAIN = {"epochs": 4, "patches_per_epoch": 40_000}                # ours: the patch CNN's schedule
# ours (issue 20, chosen on DUTS-TR photos held out of training, never on DUTS-TE): the DUTS U-Net sees two
# coordinate channels and a classical border-contrast map beside the photo, trains on BCE + soft Jaccard with a
# one-cycle schedule, and averages its logits with its mirror image's at test time; at 1/4 width (VGG-16
# 16-32-64-128-128) and 112 px (val IoU on 150 SUN/ILSVRC photos of DUTS-TR: 0.704, against 0.688 at 80 px
# and 0.679 at 1/8 width and 80 px, for 2.3x and 3.4x the training time)
REAL_TUNED = {"duts/unet": {"size": 112, "config": {"width": 0.25, "coords": True, "contrast": True,
                                                     "flip_average": True},
                            "train": {"loss": "bce_iou", "lr_schedule": "onecycle"}}}


@dataclass(frozen=True)
class RealTask:
    name: str                    # "duts": the folder under OUT/data, the prefix of its models' names
    title: str                   # in words, for tables
    trained_on: str              # what its models were trained on (`fcnkit models`, the server's catalogue)
    families: tuple[str, ...]    # the PyTorch families trained on it ("fcn": the Caffe chain)
    table: str                   # the seed's table format: "fcn", "lrn", "extractnet", "patchcnn"


REAL_TASKS = (
    RealTask("duts", "DUTS salient objects (DUTS-TR -> DUTS-TE)",
             "real photos of salient objects with hand masks (DUTS-TR)",
             ("unet", "lrn", "extractnet", "patchcnn"), "extractnet"),
    RealTask("shoes", "real shoes on white (near-white masks)",
             "real retail shoe photos on white (Sneaker-GAN/Farfetch), masks by the study's near-white rule",
             ("unet",), "fcn"),
    RealTask("shoes_scenes", "real shoes pasted onto unseen BSDS500 scenes",
             "real shoe photos pasted onto BSDS500 train/val scenes (prep composite)", ("unet",), "fcn"),
    RealTask("portraits", "head-and-torso portraits (Shen et al. 2016, official lists)",
             "real head-and-torso portraits with hand masks (Shen et al. 2016 train list)",
             ("lrn", "unet"), "lrn"),
    RealTask("coco", "COCO val2017 subset, prominent people/vehicles (ExtractNet's rules)",
             "real COCO val2017 photos, prominent people/vehicles by ExtractNet's rules (prep coco)",
             ("extractnet",), "extractnet"),
    RealTask("fashion", "street-fashion photos (Clothing Co-Parsing), person = label > 0",
             "real street-fashion photos (Clothing Co-Parsing), one box per photo: the extent of label > 0",
             ("patchcnn",), "patchcnn"),
)
TASK_BY_NAME = {t.name: t for t in REAL_TASKS}
BEST_TASK = "duts"        # the shared task: the server's default is the best model trained on it
DUTS_IOU_FLOOR = 0.55     # issue 20: the best model on DUTS test reaches this IoU (U2-Net-p: about 0.69)


def real_models(family: str) -> list[RealTask]:
    """The tasks a family trains a real-photo model on."""
    return [t for t in REAL_TASKS if family in t.families]


def default_realdata() -> Path | None:
    """$FCNKIT_REALDATA, else the first `shared/realdata` in a folder above the project root, else None."""
    env = os.environ.get(REALDATA_ENV)
    if env:
        return Path(env)
    root = project_root()
    for d in (root, *root.parents):
        if (d / REALDATA_SUBDIR).is_dir():
            return d / REALDATA_SUBDIR
    return None
