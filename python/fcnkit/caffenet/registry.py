"""The converter registry: one small function per Caffe layer type, registered by type name in `LAYERS`.

Each converter gets a `LayerCtx` (the LayerParameter, the shapes of its bottoms at the declared input
size, and its caffemodel blobs) and returns a `ModuleSpec`: which module class to build with which
arguments, and the state tensors (torch layout) to load into it. Blob count and shape checks happen
there, against the shapes Caffe itself would create, so a mismatched caffemodel names the layer and
both shapes. The converters live in `fcnkit.caffenet.converters` (one module per kind of layer) and
register themselves when `fcnkit.caffenet` is imported; a type registered twice is refused.

`INPUT_TYPES` are the layers that only produce net inputs (Input, Data, ...), `input_shapes` what the
prototxt says of their shapes, and `TRAINING_ONLY` the types that have no place in an inference module
(losses, accuracy, Silence).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import WeightLayer


@dataclass
class ModuleSpec:
    cls: str                                  # "nn.Conv2d" or a runtime class name such as "CaffePool2d"
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # state_dict entries, relative names
    call: str = "single"      # "single": m(x); "list": m([a, b, ...]); "args": m(a, b)
    multi_top: bool = False   # the module returns a list, one tensor per top
    inplace_capable: bool = False  # module takes `inplace=True` (set by the graph when it is safe)
    alias: bool = False       # tops may share memory with bottom 0 (views / identity)
    notes: list[str] = field(default_factory=list)
    # Caffe's top shapes at setup, for layers whose output size depends on the data (Filter, detection
    # outputs): the graph records these instead of running the module on the meta device.
    top_shapes: list[tuple[int, ...]] | None = None
    returns_state: bool = False  # the top is the module's own parameter: later layers must not modify it
    onnx_exportable: bool = True  # False: data-dependent post-processing, left out of model.onnx
    plugin: tuple[str, str] | None = None  # (module, class) of a user-supplied --plugin layer


@dataclass
class LayerCtx:
    layer: Any                                # fcnkit_caffe.LayerParameter
    bottom_shapes: list[tuple[int, ...]]
    weights: WeightLayer | None
    prototxt: str
    caffemodel: str
    occurrence: int = 1               # k-th layer with this name (Caffe allows repeated names)
    tops_consumed: bool = True        # a later layer reads one of this layer's tops
    plugins: tuple = ()               # imported --plugin modules

    @property
    def name(self) -> str:
        return self.layer.name

    def fail(self, msg: str) -> NoReturn:
        raise UserError(f"{self.prototxt}: layer '{self.layer.name}' ({self.layer.type}): {msg}")

    @property
    def x(self) -> tuple[int, ...]:
        return self.bottom_shapes[0]

    def axis(self, axis: int, ndim: int | None = None, what: str = "axis") -> int:
        """Caffe's CanonicalAxisIndex."""
        nd = len(self.x) if ndim is None else ndim
        if not -nd <= axis < nd:
            self.fail(f"{what} {axis} is out of range for a {nd}-D bottom of shape {self.x}")
        return axis + nd if axis < 0 else axis

    def bottoms(self, lo: int, hi: int | None = None) -> None:
        n, hi = len(self.layer.bottom), lo if hi is None else hi
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            self.fail(f"takes {want} bottom blob(s), the prototxt gives {n}; fix its bottom list")

    def tops(self, lo: int, hi: int | None = None) -> None:
        n, hi = len(self.layer.top), lo if hi is None else hi
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            self.fail(f"produces {want} top blob(s) here, the prototxt asks for {n}")

    def unary(self) -> None:
        """One bottom, one top: the element-wise layers' shape."""
        self.bottoms(1)
        self.tops(1)

    def blobs(self, expected: list[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
        """The caffemodel blobs of this layer, checked against what Caffe would create for it.

        expected: (role, Caffe shape) per blob. Returns float32 arrays reshaped to those shapes.
        """
        w = self.weights
        roles = ", ".join(role for role, _ in expected)
        if self.occurrence > 1:
            raise UserError(f"{self.prototxt}: layer '{self.name}' ({self.layer.type}) is the {_nth(self.occurrence)} "
                            f"layer named '{self.name}' and has weights ({roles}); Caffe copies the caffemodel's "
                            f"'{self.name}' blobs into the first layer of that name only, so this one would keep "
                            "its random initialisation. Give the layers distinct names in the prototxt and the "
                            "caffemodel")
        if w is None:
            raise UserError(f"{self.caffemodel}: has no layer named '{self.name}' ({self.layer.type}, needs "
                            f"{roles}) that {self.prototxt} declares; use the caffemodel trained with this "
                            "prototxt, or rename the layer to its name in the caffemodel")
        if len(w.blobs) != len(expected):
            raise UserError(f"{self.caffemodel}: layer '{self.name}' has {len(w.blobs)} blob(s) but "
                            f"{self.prototxt} implies {len(expected)} ({roles}); check bias_term and "
                            "the layer type")
        out = []
        for i, ((role, shape), blob) in enumerate(zip(expected, w.blobs, strict=True)):
            if blob.shape is not None:
                ok = tuple(blob.shape) == tuple(shape)
            elif blob.legacy is not None:
                padded = (1,) * (4 - len(shape)) + tuple(shape) if len(shape) <= 4 else None
                ok = padded == tuple(blob.legacy)
            else:
                ok = blob.data.size == math.prod(shape)
            if not ok and w.copies > 1:
                raise UserError(f"{self.caffemodel}: holds {w.copies} layers named '{self.name}'; Caffe copies "
                                f"the last one's blobs into the first layer '{self.name}' of {self.prototxt}, whose "
                                f"blob {i} ({role}) has another shape ({fmt_shape(blob.declared)} vs "
                                f"{fmt_shape(shape)}). "
                                "Give the layers distinct names in the prototxt and the caffemodel")
            if not ok:
                raise UserError(f"{self.caffemodel}: layer '{self.name}' blob {i} ({role}) has shape "
                                f"{fmt_shape(blob.declared)} but {self.prototxt} implies {fmt_shape(shape)}; the "
                                "prototxt does not match the trained net (num_output, kernel, group or input "
                                "size?)")
            if blob.data.size != math.prod(shape):
                raise UserError(f"{self.caffemodel}: layer '{self.name}' blob {i} ({role}) declares shape "
                                f"{fmt_shape(blob.declared)} but holds {blob.data.size} values; the file is "
                                "corrupt")
            out.append(blob.data.reshape(shape))
        return out


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _nth(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


Converter = Callable[[LayerCtx], ModuleSpec]


LAYERS: dict[str, Converter] = {}


def register(*types: str):
    """Decorator: `fn` converts layers of these Caffe types. A type that already has a converter is refused
    (two converters for one type would silently depend on import order)."""

    def deco(fn: Converter) -> Converter:
        for t in types:
            old = LAYERS.get(t)
            if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
                raise RuntimeError(f"Caffe layer type {t!r} is registered twice: {old.__module__}.{old.__qualname__} "
                                   f"and {fn.__module__}.{fn.__qualname__}")
            LAYERS[t] = fn
        return fn

    return deco


def blob_shape(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape.dim)


def input_shapes(layer) -> list[tuple[int, ...] | None]:
    """Shapes of a data/input layer's tops as far as the prototxt states them (None: unknown)."""
    n = len(layer.top)
    t = layer.type
    if t == "Input":
        shapes = [blob_shape(s) for s in layer.input_param.shape]
        if len(shapes) == 1:
            return shapes * n
        return shapes + [None] * (n - len(shapes)) if len(shapes) <= n else shapes[:n]
    if t == "DummyData":
        p = layer.dummy_data_param
        if len(p.shape):
            shapes = [blob_shape(s) for s in p.shape]
        else:
            shapes = [(a, b, c, d) for a, b, c, d in zip(p.num, p.channels, p.height, p.width, strict=False)]
        return (shapes * n) if len(shapes) == 1 else (shapes + [None] * n)[:n]
    if t == "MemoryData":
        p = layer.memory_data_param
        first = (p.batch_size, p.channels, p.height, p.width)
        return [first] + [(p.batch_size, 1, 1, 1)] * (n - 1)
    tp = layer.transform_param
    crop_h = tp.crop_h or tp.crop_size
    crop_w = tp.crop_w or tp.crop_size
    if t in ("ImageData", "ImageSegData") or (t == "VideoData" and layer.image_data_param.new_length):
        p = layer.image_data_param
        c = 3 if p.is_color else 1
        h = crop_h or p.crop_size or p.new_height  # image_data_param.crop_size: C3D's VideoData, old nets
        w = crop_w or p.crop_size or p.new_width
        first = (p.batch_size, c, h, w) if h and w and p.batch_size else None
        if first is not None and t == "VideoData":  # C3D: clips of new_length frames, (N, C, L, H, W)
            first = (p.batch_size, c, p.new_length, h, w)
        return [first] + [None] * (n - 1)
    return [None] * n


INPUT_TYPES = {"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData",
               "AnnotatedData", "VideoData", "DenseImageData", "ImageSegData"}


TRAINING_ONLY = {"SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
                 "MultinomialLogisticLoss", "ContrastiveLoss", "Accuracy", "HDF5Output", "Silence",
                 "MultiBoxLoss", "SmoothL1Loss", "DetectionEvaluate", "SegAccuracy", "MatWrite"}


# Compute layers of forks that the converter does not convert -> the fork (said when a net uses one).
FORK_TYPES = {
    "DenseCRF": "DeepLab's Caffe (CRF post-processing: run it on the converted net's output instead)",
    "DomainTransform": "DeepLab's Caffe (domain-transform post-processing)",
    "BiasChannel": "DeepLab's Caffe (weakly-supervised training)", "AdaptiveBiasChannel": "DeepLab's Caffe",
    "UniqueLabel": "DeepLab's Caffe (training)", "Reorg": "a YOLO port of Caffe", "Region": "a YOLO port of Caffe",
    "Yolov3DetectionOutput": "MobileNet-YOLO's Caffe", "Correlation": "FlowNet's Caffe",
    "FlowWarp": "FlowNet 2's Caffe", "DeformableConvolution": "Deformable ConvNets' Caffe",
    "MarginInnerProduct": "SphereFace's Caffe", "Deconvolution3D": "C3D's Caffe", "Reverse": "a CRNN port of Caffe",
    "Crf": "CRF-RNN's Caffe", "MultiStageMeanfield": "CRF-RNN's Caffe",
}


def supported_types() -> list[str]:
    return sorted(LAYERS) + sorted(INPUT_TYPES)

