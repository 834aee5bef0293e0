"""FCN-32s/16s/8s as code: one NetSpec generator for every stride, flavour and width.

Architecture follows the FCN reference (Long, Shelhamer, Darrell; voc-fcn32s/16s/8s): the VGG-16 trunk
with `pad: 100` on conv1_1, fc6/fc7 as 7x7/1x1 convolutions with dropout, a 1x1 `score_fr`, fixed
bilinear `Deconvolution` upsampling, 1x1 skips from pool4/pool3 fused by `Eltwise` sums, and `Crop`
layers whose offsets Caffe's own `coord_map` derives from the graph (19; 5, 27; 5, 9, 31).
"""

from __future__ import annotations

from dataclasses import dataclass

from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.config.paper import BATCH_SIZE, CLASSES, IGNORE_LABEL, IMAGE_SIZE, VGG_MEAN_BGR

FLAVOURS = ("train", "val", "deploy")
# VGG-16 trunk: (stage, number of 3x3 convs, channels at full width)
VGG_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
FC_CHANNELS = 4096
UPSAMPLE = {32: 64, 16: 32, 8: 16}  # stride -> final Deconvolution kernel (its stride is kernel / 2)

WEIGHT_PARAMS = (dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0))
# Trunk fillers only matter when no pretrained weights are copied in (the tiny nets, trained from scratch);
# for the paper's nets surgery overwrites every trunk weight with VGG-16's.
TRUNK_FILLER = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant"))
FROZEN = (dict(lr_mult=0),)


@dataclass(frozen=True)
class DataSpec:
    """Where a train/val net reads its paired LMDBs (paths as Caffe sees them, relative to the cwd)."""

    root: str  # e.g. "data/white": reads {root}/{split}_image_lmdb and {root}/{split}_label_lmdb
    batch_size: int = BATCH_SIZE
    mirror: bool = False  # paired random flip of image and label (fcnkit.caffe.pylayers.PairedMirror)


def channels(full: int, width: float) -> int:
    return max(1, int(round(full * width)))


def fcn(stride: int, flavour: str, *, num_classes: int = CLASSES, width: float = 1.0,
        data: DataSpec | None = None, input_size: int = IMAGE_SIZE):
    """The NetParameter of an FCN-{stride}s in the given flavour.

    train/val read `data` (two LMDB `Data` layers, mean subtracted on the image only) and end in
    `SoftmaxWithLoss` (normalize: false, ignore_label 255); deploy takes an `Input` blob `data`
    (1x3xHxW, reshapeable to any size) and ends in the `score` map at the input's resolution.
    """
    if stride not in UPSAMPLE:
        raise ValueError(f"stride must be one of {sorted(UPSAMPLE)}, got {stride}")
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour}")
    caffe = load_caffe()
    L, P = caffe.layers, caffe.params
    from caffe.coord_map import crop  # noqa: PLC0415  (pycaffe submodule; needs caffe loaded)

    n = caffe.NetSpec()
    if flavour == "deploy":
        n.data = L.Input(shape=dict(dim=[1, 3, input_size, input_size]))
    else:
        if data is None:
            raise ValueError("train/val nets need a DataSpec")
        split = "train" if flavour == "train" else "val"
        lmdb = P.Data.LMDB
        image = L.Data(source=f"{data.root}/{split}_image_lmdb", backend=lmdb, batch_size=data.batch_size,
                       transform_param=dict(mean_value=list(VGG_MEAN_BGR)))
        label = L.Data(source=f"{data.root}/{split}_label_lmdb", backend=lmdb, batch_size=data.batch_size)
        if data.mirror and flavour == "train":
            # Two Data layers cannot mirror in step (each has its own RNG): flip both in one layer.
            n.data_raw, n.label_raw = image, label
            n.data, n.label = L.Python(image, label, module="fcnkit.caffe.pylayers", layer="PairedMirror",
                                       ntop=2)
        else:
            n.data, n.label = image, label

    def conv_relu(bottom, name, nout, ks=3, pad=1):
        conv = L.Convolution(bottom, num_output=nout, kernel_size=ks, pad=pad, param=list(WEIGHT_PARAMS),
                             **TRUNK_FILLER)
        setattr(n, name, conv)
        relu = L.ReLU(conv, in_place=True)
        setattr(n, name.replace("conv", "relu"), relu)
        return relu

    top = n.data
    for block, reps, full in VGG_BLOCKS:
        for i in range(1, reps + 1):
            top = conv_relu(top, f"conv{block}_{i}", channels(full, width), pad=100 if block == i == 1 else 1)
        top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        setattr(n, f"pool{block}", top)

    fc = channels(FC_CHANNELS, width)
    n.fc6 = L.Convolution(n.pool5, num_output=fc, kernel_size=7, pad=0, param=list(WEIGHT_PARAMS), **TRUNK_FILLER)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.Convolution(n.drop6, num_output=fc, kernel_size=1, pad=0, param=list(WEIGHT_PARAMS), **TRUNK_FILLER)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)

    def score(bottom, name):
        """1x1 class scores, zero-initialised (new layers start silent; surgery relies on it)."""
        layer = L.Convolution(bottom, num_output=num_classes, kernel_size=1, pad=0, param=list(WEIGHT_PARAMS),
                              weight_filler=dict(type="constant", value=0), bias_filler=dict(type="constant"))
        setattr(n, name, layer)
        return layer

    def upsample(bottom, name, kernel):
        """Fixed bilinear upsampling (weights set by fcnkit.caffe.surgery.interp, never learned)."""
        layer = L.Deconvolution(bottom, param=list(FROZEN), convolution_param=dict(
            num_output=num_classes, kernel_size=kernel, stride=kernel // 2, bias_term=False))
        setattr(n, name, layer)
        return layer

    fused = score(n.drop7, "score_fr")
    if stride <= 16:
        up = upsample(fused, "upscore2", 4)
        n.score_pool4c = crop(score(n.pool4, "score_pool4"), up)
        fused = n.fuse_pool4 = L.Eltwise(up, n.score_pool4c, operation=P.Eltwise.SUM)
    if stride == 8:
        up = upsample(fused, "upscore_pool4", 4)
        n.score_pool3c = crop(score(n.pool3, "score_pool3"), up)
        fused = n.fuse_pool3 = L.Eltwise(up, n.score_pool3c, operation=P.Eltwise.SUM)
    final = upsample(fused, {32: "upscore", 16: "upscore16", 8: "upscore8"}[stride], UPSAMPLE[stride])
    n.score = crop(final, n.data)
    if flavour != "deploy":
        n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=False, ignore_label=IGNORE_LABEL))
    proto = n.to_proto()
    proto.name = f"fcn{stride}s-{flavour}" + ("" if width == 1 else f"-width{width:g}")
    return proto


def crop_offsets(net_param) -> dict[str, list[int]]:
    """{crop layer name: offsets} of a NetParameter (for tests and the fidelity report)."""
    return {lay.name: list(lay.crop_param.offset) for lay in net_param.layer if lay.type == "Crop"}
