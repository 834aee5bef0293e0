"""The LRN family: one output per supervision level at the right shapes, the two variants' refinement units
as the seed describes them, registry entries, and a checkpoint through fcnkit.inference."""

from __future__ import annotations

import pytest
import torch
from fcnkit import models
from fcnkit.config.realdata import TASK_BY_NAME, real_models


@pytest.mark.parametrize("name", ["tiny/lrn", "tiny/lrn-original"])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (32, 96)])
def test_one_output_per_supervision_level(name, h, w):
    spec = models.get(name)
    net = spec.build(**spec.config).eval()
    outs = net.supervised(torch.randn(2, 3, h, w))
    assert [tuple(o.shape) for o in outs] == [(2, 1, h // s, w // s) for s in (16, 8, 4, 2, 1)]
    assert torch.equal(net(torch.ones(1, 3, h, w)), net.supervised(torch.ones(1, 3, h, w))[-1])


def test_full_size_lrn_levels_match_vgg16_at_224():
    spec = models.get("lrn")
    with torch.device("meta"):
        net = spec.build(**spec.config)
        outs = net.supervised(torch.empty(1, 3, 224, 224))
    assert [o.shape[-1] for o in outs] == [14, 28, 56, 112, 224]
    assert spec.preprocessing.size_rule == "fixed:224" and spec.recipe.lr == 1e-4


def test_variants_differ_only_by_the_one_filter_skip_convolution():
    seed_net, orig = (models.get(n).build(**models.get(n).config) for n in ("lrn", "lrn-original"))
    sk = {k for k in orig.state_dict() if k.startswith("skip")}
    assert sk == {f"skip{k}.{p}" for k in (1, 2, 3, 4) for p in ("weight", "bias")}
    assert all(orig.state_dict()[f"skip{k}.weight"].shape[0] == 1 for k in (1, 2, 3, 4))
    assert not any(k.startswith("skip") for k in seed_net.state_dict())
    # the seed's unit 4 sees all 512 skip channels + the label map; the original's sees 1 + 1
    assert seed_net.refine4_conv.in_channels == 513 and orig.refine4_conv.in_channels == 2
    assert seed_net.refine5_conv.out_channels == 64 and seed_net.refine5_label.out_channels == 1


def test_encoder_has_vgg16_model_zoo_names():
    net = models.get("lrn").build(width=1.0)
    names = [n for level in net.encoder.levels for n in level]
    assert names == [f"conv{b}_{i}" for b, r in zip(range(1, 6), (2, 2, 3, 3, 3), strict=True)
                     for i in range(1, r + 1)]


def test_registry_lists_the_family():
    fam = {n: s for n, s in models.registered().items() if s.family == "lrn"}
    real = {f"{t.name}/lrn{v}" for t in real_models("lrn") for v in ("", "-original")}
    assert real and set(fam) == {"lrn", "lrn-vgg", "lrn-original", "tiny/lrn", "tiny/lrn-original"} | real
    for n in real:  # the real-photo CPU models: batch-normalised, deep supervision, named after their data
        assert fam[n].config["batch_norm"] and fam[n].recipe.loss == "deep_bce"
        assert fam[n].trained_on == TASK_BY_NAME[n.split("/")[0]].trained_on
    assert fam["lrn-vgg"].recipe.pretrained == "vgg16"
    assert all(s.output == "sigmoid1" and s.framework == "torch" for s in fam.values())
