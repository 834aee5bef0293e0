"""The FCN family (the study's nets): VGG-16 FCN-32s/16s/8s trained in Caffe, in two variants.

One registry entry per stage of `config.stages.STAGES` and per variant: `fcn32s` ... `fcn8s_finetune`
(the paper's full-size nets) and `tiny/fcn32s` ... `tiny/fcn8s_finetune` (the 1/16-width CPU stand-in
`make demo` trains). The nets themselves come from the NetSpec generator (`fcnkit.models.fcn.nets`), committed
under prototxt/ and solvers/; weights are the solver's snapshots, each stage starting from the previous
one (`init`), FCN-32s from VGG-16 (paper) or from scratch (tiny).
"""

from __future__ import annotations

from fcnkit.config.paper import VGG_MEAN_BGR
from fcnkit.config.paths import SNAPSHOT_DIR
from fcnkit.config.stages import STAGES, VARIANTS, Stage, Variant
from fcnkit.models.registry import ModelSpec, Preprocessing, register

# Caffe reads images with OpenCV (BGR, 0-255); the FCN reference's data layer subtracts the VGG mean.
PREPROCESSING = Preprocessing(channel_order="BGR", mean=VGG_MEAN_BGR, scale=1.0, size_rule="any")
DATA_WORDS = {"white": "sneakers on white backgrounds", "composite": "sneakers pasted onto PASCAL VOC scenes"}


def model_name(stage: str, v: Variant) -> str:
    return f"{v.name}/{stage}" if v.name else stage


def spec(st: Stage, v: Variant) -> ModelSpec:
    if st.init_from == "vgg16":
        init = "vgg16" if v.pretrained else "scratch"
    else:
        init = model_name(st.init_from, v)
    words = {"vgg16": "VGG-16 ImageNet weights (fc6/fc7 transplanted)", "scratch": "random initialisation"}
    data = DATA_WORDS[st.data] + (" (the embedded sample set)" if v.name else "")
    return ModelSpec(
        name=model_name(st.name, v), family="fcn", framework="caffe", output="softmax2",
        preprocessing=PREPROCESSING,
        description=f"FCN-{st.stride}s, {v.description}",
        trained_on=data,
        weights=f"snapshots of `solve {v.path('solvers', st.name + '.prototxt')}`, started from "
                + words.get(init, init),
        deploy=v.path("prototxt", st.net_dir, "deploy.prototxt"),
        solver=v.path("solvers", f"{st.name}.prototxt"),
        snapshot_prefix=v.path(SNAPSHOT_DIR, st.name),
        init=init, output_blob="score",
        extra={"stage": st.name, "stride": st.stride, "variant": v.name or "paper", "data": st.data},
    )


SPECS = [register(spec(st, v)) for v in VARIANTS for st in STAGES]
