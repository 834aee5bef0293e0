"""The U-Net reference: the LRN's encoder, one full-resolution map."""

from __future__ import annotations

import torch
from fcnkit import models
from fcnkit.config.realdata import real_models


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
    real = {f"{t.name}/unet" for t in real_models("unet")}
    assert "duts/unet" in real and fam == {"unet", "unet-vgg", "tiny/unet"} | real
    assert models.get("unet-vgg").recipe.freeze_encoder == "plateau"


def test_batch_norm_variant_trains_and_keeps_the_model_zoo_names():
    spec = models.get("duts/unet")
    net = spec.build(**spec.config)
    out = net(torch.randn(2, 3, 32, 48))
    assert tuple(out.shape) == (2, 1, 32, 48)
    out.mean().backward()
    assert "bn1_1.weight" in net.encoder.state_dict() and "conv5_3.weight" in net.encoder.state_dict()
    assert set(net.encoder.caffe_layers()) == {n for level in net.encoder.levels for n in level}
