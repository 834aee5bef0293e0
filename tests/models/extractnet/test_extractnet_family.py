"""ExtractNet's models: the autoencoders' geometry and links, the pretrained-encoder decoders, options,
and the size rule that rounds each side to a multiple of the total downsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fcnkit import models
from fcnkit.inference.backends import module_predictor


def test_autoencoders_halve_three_times_and_link_mirrored_layers():
    simple = models.get("extractnet-simple").build(width=1.0)
    linked = models.get("extractnet-interconnected").build(width=1.0, interconnected=True)
    for net in (simple, linked):
        assert [c.stride for c in (net.enc1, net.enc2, net.enc3)] == [(2, 2)] * 3
        assert [c.kernel_size for c in (net.enc1, net.dec1, net.dec3)] == [(3, 3)] * 3
        assert tuple(net(torch.randn(1, 3, 40, 56)).shape) == (1, 1, 40, 56)
    assert linked.dec2.in_channels == 2 * simple.dec2.in_channels
    assert linked.dec3.in_channels == 2 * simple.dec3.in_channels


@pytest.mark.parametrize("enc", ["vgg19", "resnet50", "resnet152"])
def test_pretrained_encoder_models_upsample_once_per_downsampling(enc):
    spec = models.get(f"tiny/extractnet-{enc}")
    net = spec.build(**spec.config).eval()
    ups = [m for m in net.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 5 and all(m.kernel_size == (3, 3) and m.stride == (2, 2) for m in ups)
    assert tuple(net(torch.randn(1, 3, 64, 96)).shape) == (1, 1, 64, 96)
    assert models.get(f"extractnet-{enc}").recipe.freeze_encoder == "always"


def test_options_batch_norm_and_prelu():
    net = models.get("tiny/extractnet-resnet50").build(encoder="resnet50", width=1 / 8, batch_norm=False,
                                                         activation="prelu")
    kinds = {type(m).__name__ for m in net.decoder}
    assert "PReLU" in kinds and "BatchNorm2d" not in kinds


def test_inference_rounds_sides_to_the_downsampling_and_returns_the_image_size():
    spec = models.get("extractnet-simple")
    assert spec.preprocessing.input_size(75, 100) == (72, 96)
    net = spec.build(**spec.config)
    mask = module_predictor(net, spec.preprocessing).mask(np.full((75, 100, 3), 128, np.uint8))
    assert mask.shape == (75, 100)
    assert models.get("extractnet-resnet50").preprocessing.input_size(230, 300) == (224, 288)
