"""The U-Net reference: the LRN's encoder, one full-resolution map."""

from __future__ import annotations

import torch
from fcnkit import models


def test_one_full_resolution_map_and_the_shared_encoder():
    spec = models.get("tiny/unet")
    net = spec.build(**spec.config).eval()
    assert tuple(net(torch.randn(2, 3, 48, 80)).shape) == (2, 1, 48, 80)
    lrn = models.get("tiny/lrn")
    enc_lrn = lrn.build(**lrn.config).encoder.state_dict()
    assert {k: v.shape for k, v in net.encoder.state_dict().items()} == {k: v.shape for k, v in enc_lrn.items()}
    assert not hasattr(net, "supervised")


def test_registered_variants():
    fam = {n for n, s in models.registered().items() if s.family == "unet"}
    assert fam == {"unet", "unet-vgg", "tiny/unet"}
    assert models.get("unet-vgg").recipe.freeze_encoder == "plateau"
