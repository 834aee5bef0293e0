"""The DUTS U-Net's additions (issue 20), on real DUTS-TR photos: the border-contrast map is a saliency cue,
flip averaging makes the net mirror-equivariant, coordinates are the pixel's place, and the BCE + soft
Jaccard loss. Skipped where ../shared/realdata is absent, except under CI=true where it must run."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from conftest import fixed_output
from fcnkit import models
from fcnkit.apps.realdata import READERS, prepare
from fcnkit.config.realdata import REAL_TUNED, default_realdata
from fcnkit.models.unet.net import border_contrast, coordinates
from fcnkit.training.trainer import compute_loss

REALDATA = default_realdata()
if REALDATA is None and os.environ.get("CI") != "true":
    pytest.skip("no ../shared/realdata on this machine (CI=true makes this an error)", allow_module_level=True)


@pytest.fixture(scope="module")
def duts(tmp_path_factory):
    work = prepare(REALDATA, tmp_path_factory.mktemp("prep"), ["duts"], log=lambda *a: None)
    return READERS["duts"](work, 40, 1, 0)["train"]


def _input(spec, bgr):
    """The photo as the Predictor feeds the net: resized to the model's input size, then normalised."""
    h, w = spec.preprocessing.input_size(*bgr.shape[:2])
    return torch.from_numpy(spec.preprocessing.to_input(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA))[None])


def test_border_contrast_ranks_the_salient_object_above_its_background(duts):
    spec = models.get("duts/unet")
    above = 0
    for s in duts:
        x = _input(spec, s.bgr)
        c = border_contrast(x)[0, 0].numpy()
        assert c.shape == x.shape[-2:] and np.isfinite(c).all() and c.min() >= 0
        lab = cv2.resize(s.label, c.shape[::-1], interpolation=cv2.INTER_NEAREST)
        if lab.any() and (lab == 0).any():
            above += c[lab == 1].mean() > c[lab == 0].mean()
    assert above >= 0.75 * len(duts)  # a classical cue, not a segmenter: most photos, not all


def test_coordinates_are_the_pixel_place():
    c = coordinates(torch.zeros(2, 3, 5, 7))
    assert tuple(c.shape) == (2, 2, 5, 7)
    assert c[0, 0, 0, 0] == -1 and c[0, 0, -1, 0] == 1 and c[0, 1, 0, 0] == -1 and c[0, 1, 0, -1] == 1


def test_flip_average_makes_the_duts_net_mirror_equivariant(duts):
    spec = models.get("duts/unet")
    assert spec.config["flip_average"] and spec.preprocessing.size_rule == f"fixed:{REAL_TUNED['duts/unet']['size']}"
    torch.manual_seed(0)
    net = spec.build(**spec.config).eval()
    x = _input(spec, duts[0].bgr)
    with torch.no_grad():
        y, y_mirror = net(x), net(x.flip(-1))
    assert tuple(y.shape) == (1, 1, *x.shape[-2:])
    assert torch.allclose(y_mirror, y.flip(-1), atol=1e-5)
    net.train()  # training sees the photo as it is (the flips are the augmentation's)
    assert not torch.allclose(net(x), net(x.flip(-1)).flip(-1), atol=1e-3)


def test_bce_iou_loss_on_real_masks(duts):
    y = torch.from_numpy(np.stack([s.label[:96, :96] for s in duts[:4]])[:, None].astype(np.float32))
    right, wrong = fixed_output(20 * (2 * y - 1)), fixed_output(-20 * (2 * y - 1))
    assert compute_loss(right, None, y, "bce_iou") < 1e-3
    bce = compute_loss(wrong, None, y, "bce")
    assert abs(float(compute_loss(wrong, None, y, "bce_iou") - bce) - 1.0) < 1e-3  # soft Jaccard of 1 added
    ignored = y.clone()
    ignored[:, :, :48] = 255  # ignored pixels count nowhere: a wrong top half changes nothing
    half = 20 * (2 * y - 1)
    half[:, :, :48] *= -1
    assert abs(float(compute_loss(fixed_output(half), None, ignored, "bce_iou"))) < 1e-3
    assert models.get("duts/unet").recipe.loss == "bce_iou" and models.get("duts/unet").recipe.lr_schedule == "onecycle"
