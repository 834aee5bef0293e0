"""PyTorch modules that reproduce Caffe layer semantics where stock `torch.nn` differs, one module per kind of
layer, along the same seams as `fcnkit.caffenet.converters`.

They are the single source of truth for two things:
  * the converter instantiates these classes (on the meta device) to infer blob shapes, and the torch
    engine and `load_converted` build nets from them;
  * the code generator copies the source of the classes a net needs (and the private helpers they call),
    verbatim, into the generated `model.py`, which therefore imports nothing but torch.

Rules for every file of this package: import only `math` and torch; keep every class TorchScript-compatible
(annotated, no *args, no closures); no project imports; private helper names unique across the package.
"""

import inspect
from types import FunctionType

from torch import nn

from fcnkit.caffenet.modules import activations, blobs, detection, forks, normalization, recurrent, spatial
from fcnkit.caffenet.modules.activations import (
    CaffeAbsVal,
    CaffeExp,
    CaffeHardSigmoid,
    CaffeLog,
    CaffePower,
    CaffeReLU6,
    CaffeThreshold,
)
from fcnkit.caffenet.modules.blobs import (
    CaffeArgMax,
    CaffeBatchReindex,
    CaffeConcat,
    CaffeEltwise,
    CaffeEmbed,
    CaffeFilter,
    CaffeParameter,
    CaffeReduction,
    CaffeReshape,
    CaffeSlice,
    CaffeSplit,
    CaffeTile,
)
from fcnkit.caffenet.modules.detection import (
    CaffeDetectionOutput,
    CaffeNormalize,
    CaffePermute,
    CaffePriorBox,
    CaffeProposal,
    CaffePSROIPooling,
    CaffeROIPooling,
)
from fcnkit.caffenet.modules.forks import CaffeAxpy, CaffeBN, CaffePool3d, CaffeShuffleChannel
from fcnkit.caffenet.modules.normalization import (
    CaffeBatchNorm,
    CaffeBias,
    CaffeBiasByBlob,
    CaffeLRN,
    CaffeMVN,
    CaffeScale,
    CaffeScaleByBlob,
)
from fcnkit.caffenet.modules.recurrent import CaffeContinuationIndicator, CaffeLSTM, CaffeLSTMUnit, CaffeRNN
from fcnkit.caffenet.modules.spatial import (
    CaffeCrop,
    CaffeIm2col,
    CaffeInnerProduct,
    CaffeInterp,
    CaffeMaxPoolMask,
    CaffeMaxUnpool,
    CaffePad,
    CaffePool2d,
    CaffeResize,
    CaffeSPP,
    CaffeUpsampleNearest,
    Conv2dGemm,
)

# Every class, in the order the generator writes them.
__all__ = [
    "Conv2dGemm",
    "CaffePool2d",
    "CaffeMaxPoolMask",
    "CaffeInnerProduct",
    "CaffeBatchNorm",
    "CaffeScale",
    "CaffeScaleByBlob",
    "CaffeBias",
    "CaffeBiasByBlob",
    "CaffeLRN",
    "CaffePower",
    "CaffeExp",
    "CaffeLog",
    "CaffeAbsVal",
    "CaffeThreshold",
    "CaffeEltwise",
    "CaffeConcat",
    "CaffeSlice",
    "CaffeSplit",
    "CaffeReshape",
    "CaffeCrop",
    "CaffeArgMax",
    "CaffeTile",
    "CaffeReduction",
    "CaffeMVN",
    "CaffeSPP",
    "CaffeEmbed",
    "CaffeIm2col",
    "CaffeFilter",
    "CaffeBatchReindex",
    "CaffeParameter",
    "CaffeLSTM",
    "CaffeRNN",
    "CaffeLSTMUnit",
    "CaffeReLU6",
    "CaffeHardSigmoid",
    "CaffeUpsampleNearest",
    "CaffeMaxUnpool",
    "CaffePad",
    "CaffeResize",
    "CaffeInterp",
    "CaffeBN",
    "CaffeShuffleChannel",
    "CaffeAxpy",
    "CaffePermute",
    "CaffeNormalize",
    "CaffePriorBox",
    "CaffeDetectionOutput",
    "CaffeProposal",
    "CaffePSROIPooling",
    "CaffeROIPooling",
    "CaffePool3d",
    "CaffeContinuationIndicator",
]

SUBMODULES = (spatial, normalization, activations, blobs, recurrent, forks, detection)


def helpers() -> dict[str, FunctionType]:
    """The private helper functions of all submodules by name, in definition order (callees first)."""
    out: dict[str, FunctionType] = {}
    for mod in SUBMODULES:
        for name, obj in vars(mod).items():
            if name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                if name in out:
                    raise RuntimeError(f"helper {name} is defined in two modules of fcnkit.caffenet.modules")
                out[name] = obj
    return out


def lookup(name: str) -> type[nn.Module] | None:
    """The module class a `ModuleSpec.cls` names: "nn.X" (a torch.nn module) or one of this package's classes;
    None for anything else. The one place that turns a recorded class name into a class."""
    if name.startswith("nn."):
        cls = getattr(nn, name[3:], None)
    elif name in __all__:
        cls = globals()[name]
    else:
        cls = None
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None
