"""The ExtractNet family (extractnet-report.txt): prominent-object masks from autoencoders and from
encoders pretrained on ImageNet, trained with binary cross-entropy and Adam 1e-3, batch 64, 224x224.

Registered models:
* `extractnet-simple`, `extractnet-interconnected` - the 3+3-layer autoencoders (§4.1.1, §4.1.2);
* `extractnet-vgg19`, `extractnet-resnet50`, `extractnet-resnet152` - frozen Model Zoo encoders with a
  deconvolution decoder (§4.1.3), batch normalisation on and ReLU by default (the report's best
  settings); `--set batch_norm=false` / `--set activation=prelu` give its other columns;
* `<task>/extractnet-simple`, `<task>/extractnet-interconnected` - the autoencoders with batch normalisation
  for the real-photo tasks (`config.realdata`), trained from scratch on CPU;
* `tiny/...` of each - 1/8-width CPU stand-ins trained from scratch on the sample data (no ImageNet weights
  exist at that width, so the "pretrained" architectures are trained end to end there, with PReLU).
Inference rounds each side to a multiple of the total downsampling (8 for the autoencoders, 32 for the
encoders); the report's mask post-processing and its Otsu/watershed baseline are
`fcnkit.evaluation.baselines` (`evaluate --postprocess extractnet --baseline`).
"""

from __future__ import annotations

from fcnkit.config.realdata import REAL_AE_WIDTH
from fcnkit.config.seeds import EXTRACTNET_BATCH, EXTRACTNET_EPOCHS, EXTRACTNET_LR
from fcnkit.models.extractnet.net import (
    ACTIVATIONS,
    AutoEncoder,
    EncoderDecoder,
    build_autoencoder,
    build_encoder_decoder,
)
from fcnkit.models.native import (
    SAMPLE_WORDS,
    TINY,
    TINY_SIZE,
    TINY_WIDTH,
    TINY_WORDS,
    native_spec,
    real_specs,
    tiny_words,
)

DATA = "COCO 2014 prominent people/vehicles (`prep coco`), or any photos + masks"
TRAIN = {"lr": EXTRACTNET_LR, "batch_size": EXTRACTNET_BATCH, "epochs": EXTRACTNET_EPOCHS, "loss": "bce"}
# CPU minutes: ours. At 6-8 epochs the tiny nets had only learned the foreground prior on the composites
# (and the tiny ResNet-152 on white too): every output below 0.5; 16 epochs clear the quick preset's floors.
TINY_TRAIN = {**TRAIN, "batch_size": 16, "epochs": 16}
AE_TINY_WIDTH = 1 / 2  # the autoencoders are small already: half width keeps them learning
ENCODERS = {"vgg19": "VGG-19", "resnet50": "ResNet-50", "resnet152": "ResNet-152"}
CHOICES = {"encoder": tuple(ENCODERS), "activation": ACTIVATIONS}


def _register():
    specs = []
    for tag, linked in (("simple", False), ("interconnected", True)):
        words = f"{tag} autoencoder (3 + 3 layers, kernel 3, stride 2)"
        for tiny in (False, True):
            specs.append(native_spec(
                f"{TINY}/extractnet-{tag}" if tiny else f"extractnet-{tag}", "extractnet", build_autoencoder,
                description=f"{words}, {tiny_words(AE_TINY_WIDTH)}" if tiny else words,
                config={"width": AE_TINY_WIDTH if tiny else 1.0, "interconnected": linked},
                train=TINY_TRAIN if tiny else TRAIN, size_rule="multiple:8",
                trained_on=SAMPLE_WORDS if tiny else DATA, presets=("quick",) if tiny else ("paper",)))
        specs += real_specs("extractnet", f"extractnet-{tag}", build_autoencoder, description=words,
                            config={"width": REAL_AE_WIDTH, "interconnected": linked, "batch_norm": True,
                                    "activation": "relu"}, choices={"activation": ACTIVATIONS})
    for enc, title in ENCODERS.items():
        specs.append(native_spec(
            f"extractnet-{enc}", "extractnet", build_encoder_decoder,
            description=f"frozen {title} ImageNet encoder + deconvolution decoder (BN, ReLU)",
            config={"encoder": enc, "width": 1.0, "batch_norm": True, "activation": "relu"},
            train={**TRAIN, "freeze_encoder": "always"}, size_rule="multiple:32", trained_on=DATA,
            pretrained=enc, presets=("paper",),
            choices={**CHOICES, "encoder": (enc,)}))  # the encoder is the one its pretrained release fits
        specs.append(native_spec(
            f"{TINY}/extractnet-{enc}", "extractnet", build_encoder_decoder,
            description=f"{title} encoder + deconvolution decoder (BN, PReLU), {TINY_WORDS}",
            # PReLU (one of the report's columns): with ReLU the tiny decoders' units died on the foreground
            config={"encoder": enc, "width": TINY_WIDTH, "batch_norm": True, "activation": "prelu"},
            train=TINY_TRAIN, size_rule=TINY_SIZE,
            trained_on=SAMPLE_WORDS, presets=("quick",), choices=CHOICES))
    return specs


SPECS = _register()
__all__ = ["SPECS", "AutoEncoder", "EncoderDecoder", "build_autoencoder", "build_encoder_decoder"]
