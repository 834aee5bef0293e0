"""A Caffe net (one phase of a train/val prototxt) as trainable PyTorch modules.

Compute layers come from the converter (`fcnkit.caffenet.registry`: one ModuleSpec per Caffe layer, built on
the meta device to learn shapes); Dropout, BatchNorm, the losses and the metric layers come from
`torch_engine.layers` with their training semantics; Data layers become inputs fed by `data.NetFeeder`.

Parameters are kept as Caffe keeps them: `store` holds every parameter blob in Caffe's shape while the
starting weights are assembled (fillers, VGG surgery, --weights; see `caffe.loop.initialise`), then
`materialize` copies them into the modules. `learnables` lists them in Caffe's learnable-parameter order
(layers in net order, blobs in layer order, a shared `param { name }` counted once at its owner) with
Caffe's lr_mult/decay_mult: the order of the history blobs in a .solverstate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fcnkit.caffe.torch_engine import fillers
from fcnkit.caffe.torch_engine import training_layers as T
from fcnkit.caffenet import registry as L
from fcnkit.caffenet.graph import call_module, instantiate
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import WeightBlob, WeightLayer

LOSS_LAYERS = {"SoftmaxWithLoss": None, "SigmoidCrossEntropyLoss": None, "EuclideanLoss": None}
TRAINING_TYPES = {"Data", "Dropout", "BatchNorm", "Accuracy", "Silence", "Python", *LOSS_LAYERS}
PYTHON_LAYERS = {("fcnkit.caffe.pylayers", "PixelAccuracy"), ("fcnkit.caffe.pylayers", "PairedMirror")}
# Producers whose backward pass does not need their own output, so a following ReLU may overwrite it.
INPLACE_SAFE_AFTER = {"Convolution", "Deconvolution", "InnerProduct", "Pooling", "Eltwise", "Concat", "Scale",
                      "Bias", "BatchNorm"}


def supported_types() -> set[str]:
    return set(L.LAYERS) | TRAINING_TYPES


def check_types(net, net_path) -> None:
    """One line for the first layer the torch engine cannot train."""
    known = supported_types()
    for lay in net.layer:
        if lay.type not in known:
            raise UserError(f"{net_path}: layer '{lay.name}' has type '{lay.type}', which the torch engine does "
                            "not train; use --engine caffe, or see `convert --list-layers` for the layers it has")
        if lay.type == "Python" and (lay.python_param.module, lay.python_param.layer) not in PYTHON_LAYERS:
            raise UserError(f"{net_path}: layer '{lay.name}': the torch engine runs only the Python layers "
                            f"{sorted(f'{m}.{n}' for m, n in PYTHON_LAYERS)}, not "
                            f"{lay.python_param.module}.{lay.python_param.layer}; use --engine caffe")


class BlobStore:
    """Every parameter blob of a net, by layer, in Caffe's shapes (writable float32 arrays)."""

    def __init__(self, rng: np.random.Generator, unfilled: frozenset[str] = frozenset()):
        self.layers: dict[str, WeightLayer] = {}
        self.rng = rng
        self.unfilled = unfilled  # layers whose blobs come from elsewhere: zeros, no random draws

    def create(self, layer, shapes: list[tuple[int, ...]], where: str) -> WeightLayer:
        if layer.name not in self.layers:
            blobs = []
            for f, shape in zip(fillers.layer_fillers(layer, len(shapes)), shapes, strict=True):
                if layer.name in self.unfilled:
                    arr = np.zeros(shape, np.float32)
                else:
                    arr = fillers.fill(f, tuple(shape), self.rng, where)
                blobs.append(WeightBlob(data=np.ascontiguousarray(arr).reshape(-1), shape=tuple(shape), legacy=None))
            self.layers[layer.name] = WeightLayer(layer.name, layer.type, blobs)
        return self.layers[layer.name]

    def params(self) -> dict[str, list[np.ndarray]]:
        """{layer: [writable view in Caffe's shape]}: what surgery and --weights write into."""
        return {name: [b.data.reshape(b.shape) for b in wl.blobs] for name, wl in self.layers.items() if wl.blobs}


class StoreCtx(L.LayerCtx):
    """The converter's layer context, with blobs drawn by Caffe's fillers the first time a layer asks."""

    store: BlobStore

    def blobs(self, expected):
        self.weights = self.store.create(self.layer, [s for _, s in expected], f"{self.prototxt}: layer "
                                         f"'{self.layer.name}'")
        return super().blobs(expected)


@dataclass
class Learnable:
    """One learnable parameter blob: where it lives in Caffe and in torch, and its multipliers."""

    layer: str
    index: int
    shape: tuple[int, ...]          # Caffe's blob shape
    module: nn.Module
    attr: str
    transpose: bool = False         # torch holds the transpose (InnerProduct with transpose: true)
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    has_lr: bool = False
    has_decay: bool = False
    sharers: list[tuple[nn.Module, str]] = field(default_factory=list)

    @property
    def tensor(self) -> torch.Tensor:
        return getattr(self.module, self.attr)

    def to_caffe(self, t: torch.Tensor | None = None) -> np.ndarray:
        """This blob (or `t`, e.g. its history, in torch layout) as a float32 array in Caffe's shape."""
        a = (self.tensor if t is None else t).detach()
        if self.transpose:
            a = a.t()
        return np.ascontiguousarray(a.to("cpu", torch.float32).contiguous().numpy()).reshape(self.shape)

    def from_caffe(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr, np.float32).reshape(self.shape))
        if self.transpose:
            t = t.t()
        return t.reshape(self.tensor.shape)


@dataclass
class Step:
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    module: nn.Module
    call: str = "single"
    multi_top: bool = False


def _loss_param(layer):
    p = layer.loss_param
    if not p.HasField("normalization") and p.HasField("normalize"):
        mode = T.VALID if p.normalize else T.BATCH_SIZE
    else:
        mode = p.normalization
    return (p.ignore_label if p.HasField("ignore_label") else None), mode


class TorchNet(nn.Module):
    """The layers of one phase of a net. Build, fill `store`, then `materialize(device)`."""

    def __init__(self, net, phase: str, net_path: str, data_shapes: dict[str, tuple[int, ...]], *,
                 rng: np.random.Generator, generator: torch.Generator | None, unfilled=frozenset()):
        super().__init__()
        self.phase, self.net_path = phase, str(net_path)
        self.store = BlobStore(rng, frozenset(unfilled))
        self.steps: list[Step] = []
        self.data_tops: list[str] = []
        self.loss_weights: list[tuple[str, float]] = []
        self.learnables: list[Learnable] = []
        self.bindings: list[tuple[nn.Module, str, Learnable, bool]] = []  # (module, attr, blob, owner?)
        self.blob_of: dict[tuple[str, int], Learnable] = {}  # (layer, blob index) -> blob, sharers included
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.memory_format = torch.contiguous_format  # set by materialize
        available: list[str] = []     # Caffe's net outputs: blobs no later layer consumes
        named: dict[str, Learnable] = {}
        storage: dict[str, int] = {}  # blob -> id of the memory it lives in (in-place safety)
        new_id = itertools.count(1).__next__
        read: set[int] = set()        # memory some layer has read already (it may need it for its backward)
        producer: dict[str, str] = {}
        train = phase == "TRAIN"
        meta: dict[str, torch.Tensor] = {}

        def fail(lay, msg):
            raise UserError(f"{net_path}: layer '{lay.name}' ({lay.type}): {msg}")

        for lay in net.layer:
            t, bottoms, tops = lay.type, list(lay.bottom), list(lay.top)
            if t == "Data":
                for top in tops:
                    if top not in data_shapes:
                        fail(lay, f"top '{top}' has no data source")
                    self.shapes[top] = tuple(data_shapes[top])
                    meta[top] = torch.empty(self.shapes[top], device="meta")
                    storage[top] = new_id()
                    storage[f"input:{top}"] = storage[top]  # a second holder: inputs are never overwritten
                    producer[top] = t
                    self.data_tops.append(top)
                    available.append(top)
                continue
            x = [self.shapes[b] for b in bottoms]
            call, multi, alias, blob_attrs = "single", False, False, []
            if t in TRAINING_TYPES:
                mod, out_shapes, call, multi, alias, blob_attrs = self._training_layer(lay, x, train, generator, fail)
            else:
                ctx = StoreCtx(lay, x, self.store.layers.get(lay.name), self.net_path, "(initial weights)")
                ctx.store = self.store
                spec = L.LAYERS[t](ctx)
                if spec.inplace_capable and tops == bottoms[:1] and producer.get(bottoms[0]) in INPLACE_SAFE_AFTER \
                        and sum(1 for s in storage.values() if s == storage[bottoms[0]]) == 1 \
                        and storage[bottoms[0]] not in read:
                    spec.kwargs["inplace"] = True
                mod = instantiate(spec, "meta")
                try:
                    outs = call_module(mod, spec, [meta[b] for b in bottoms])
                except (RuntimeError, ValueError, IndexError) as exc:
                    fail(lay, f"fails on bottom shapes {x}: {str(exc).strip().splitlines()[0]}")
                out_shapes = [tuple(o.shape) for o in outs]
                call, multi, alias = spec.call, spec.multi_top, spec.alias or spec.kwargs.get("inplace", False)
                blob_attrs = self._converter_params(lay, spec, fail)
            if len(out_shapes) != len(tops):
                fail(lay, f"gives {len(out_shapes)} outputs for {len(tops)} tops")
            self.add_module(f"layer{len(self.steps)}", mod)
            self.steps.append(Step(lay.name, t, bottoms, tops, mod, call, multi))
            self._bind(lay, mod, blob_attrs, named, fail)
            read.update(storage[b] for b in bottoms)
            available = [a for a in available if a not in bottoms] + [top for top in tops if top not in available]
            for top, shape in zip(tops, out_shapes, strict=True):
                self.shapes[top] = shape
                meta[top] = torch.empty(shape, device="meta")
                storage[top] = storage[bottoms[0]] if alias and bottoms else new_id()
                producer[top] = t
            weights = list(lay.loss_weight)
            if not weights and t in LOSS_LAYERS:
                weights = [1.0]
            for top, w in zip(tops, weights, strict=False):
                if w:
                    self.loss_weights.append((top, float(np.float32(w))))
        self.outputs = sorted(available)  # std::set order, as Caffe lists them

    # -------------------------------------------------------------------------------------- building
    def _training_layer(self, lay, x, train, generator, fail):
        """(module on meta, top shapes, call, multi_top, alias, blob attrs) for layers training changes."""
        t = lay.type
        if t == "Dropout":
            ratio = lay.dropout_param.dropout_ratio
            if not 0 <= ratio < 1:
                fail(lay, f"dropout_ratio {ratio} must be in [0, 1)")
            return T.CaffeDropout(ratio, generator, train), [x[0]], "single", False, True, []
        if t == "BatchNorm":
            p = lay.batch_norm_param
            c = 1 if len(x[0]) == 1 else x[0][1]
            self.store.create(lay, [(c,), (c,), (1,)], f"{self.net_path}: layer '{lay.name}'")
            glob = p.use_global_stats if p.HasField("use_global_stats") else not train
            with torch.device("meta"):
                mod = T.CaffeBatchNormTrain(c, p.eps, p.moving_average_fraction, glob)
            return mod, [x[0]], "single", False, False, ["mean", "variance", "factor"]
        if t in LOSS_LAYERS:
            if len(x) != 2:
                fail(lay, f"takes 2 bottoms, the prototxt gives {len(x)}")
            if t == "SoftmaxWithLoss":
                axis = L.LayerCtx(lay, x, None, self.net_path, "").axis(lay.softmax_param.axis)
                outer, inner = math.prod(x[0][:axis]), math.prod(x[0][axis + 1:])
                if outer * inner != math.prod(x[1]):
                    fail(lay, f"label count {math.prod(x[1])} must be N*H*W = {outer * inner} for score {x[0]} "
                              "(Caffe's check); the label blob does not match the score map")
                ignore, mode = _loss_param(lay)
                mod = T.SoftmaxWithLoss(axis, ignore, mode, with_prob=len(lay.top) > 1)
                return mod, [()] + [x[0]] * (len(lay.top) - 1), "args", len(lay.top) > 1, False, []
            if math.prod(x[0]) != math.prod(x[1]):
                fail(lay, f"bottoms {x[0]} and {x[1]} must have the same count")
            mod = T.SigmoidCrossEntropyLoss() if t == "SigmoidCrossEntropyLoss" else T.EuclideanLoss()
            return mod, [()], "args", False, False, []
        if t == "Accuracy":
            p = lay.accuracy_param
            if len(lay.top) != 1:
                fail(lay, "only the accuracy top is supported (no per-class top)")
            axis = L.LayerCtx(lay, x, None, self.net_path, "").axis(p.axis)
            mod = T.Accuracy(p.top_k, axis, p.ignore_label if p.HasField("ignore_label") else None)
            return mod, [()], "args", False, False, []
        if t == "Silence":
            return T.Silence(), [], "args", True, False, []
        # Python (checked by check_types)
        if lay.python_param.layer == "PixelAccuracy":
            return T.PixelAccuracy(int(lay.python_param.param_str or 255)), [(1,)], "args", False, False, []
        seed = int(lay.python_param.param_str) if lay.python_param.param_str else None
        return T.PairedMirror(seed), [x[0], x[1]], "args", True, False, []

    def _converter_params(self, lay, spec, fail) -> list[str]:
        """The module attributes that hold the layer's Caffe blobs, in blob order."""
        wl = self.store.layers.get(lay.name)
        keys = list(spec.params)
        n = len(wl.blobs) if wl is not None else 0
        if n != len(keys) or any(k.count(".") for k in keys) or any(
                spec.params[k].size != b.data.size for k, b in zip(keys, wl.blobs if wl else [], strict=True)):
            fail(lay, "its parameters do not map one to one onto Caffe's blobs, so the torch engine cannot "
                      "train this layer; use --engine caffe")
        return keys

    def _bind(self, lay, mod, attrs: list[str], named: dict[str, Learnable], fail):
        wl = self.store.layers.get(lay.name)
        transpose = lay.type == "InnerProduct" and lay.inner_product_param.transpose
        for i, attr in enumerate(attrs):
            spec = lay.param[i] if i < len(lay.param) else None
            name = spec.name if spec is not None else ""
            shape = wl.blobs[i].shape
            if name and name in named:  # Caffe shares the owner's blob (Net::AppendParam)
                owner = named[name]
                if owner.shape != shape:
                    fail(lay, f"shares param '{name}' of shape {owner.shape} with layer '{owner.layer}', but its own "
                              f"blob {i} has shape {shape}; the torch engine shares equal shapes only")
                for f, has in (("lr_mult", "has_lr"), ("decay_mult", "has_decay")):
                    if spec.HasField(f):
                        if getattr(owner, has) and getattr(owner, f) != getattr(spec, f):
                            fail(lay, f"shared param '{name}' has a {f} other than its owner's (Caffe's check)")
                        setattr(owner, f, float(np.float32(getattr(spec, f))))
                        setattr(owner, has, True)
                owner.sharers.append((mod, attr))
                self.bindings.append((mod, attr, owner, False))
                self.blob_of[(lay.name, i)] = owner
                continue
            # Caffe 1.0 treats BatchNorm's statistics like any blob: lr_mult/decay_mult 1 unless the prototxt
            # says 0 (its gradient is always zero, but weight decay and the solver's history still apply)
            blob = Learnable(lay.name, i, shape, mod, attr, transpose and attr == "weight")
            if spec is not None:
                if spec.HasField("lr_mult"):
                    blob.lr_mult, blob.has_lr = float(np.float32(spec.lr_mult)), True
                if spec.HasField("decay_mult"):
                    blob.decay_mult, blob.has_decay = float(np.float32(spec.decay_mult)), True
            if name:
                named[name] = blob
            self.learnables.append(blob)
            self.bindings.append((mod, attr, blob, True))
            self.blob_of[(lay.name, i)] = blob

    # ---------------------------------------------------------------------------------- materialize
    def materialize(self, device: torch.device, share_from: TorchNet | None = None, *,
                    channels_last: bool = False) -> None:
        """Allocate the modules on `device` and load `store` into them (or, for a test net, take the
        same-named layers' tensors of `share_from`, as Caffe's ShareTrainedLayersWith does). The store
        is emptied: the tensors are the parameters from here on.

        `channels_last`: 4-D parameters and inputs are held in NHWC memory order (same values, other
        strides), which torch's CPU convolutions and pooling run faster on (bench/bench_solve.py);
        snapshots and the solver see Caffe's order either way (`Learnable.to_caffe`)."""
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for st in self.steps:
            st.module.to_empty(device=device)
        theirs = {(b.layer, b.index): b for b in share_from.learnables} if share_from is not None else {}
        for mod, attr, blob, owner in self.bindings:
            if not owner:
                continue
            other = theirs.get((blob.layer, blob.index))
            if other is not None:
                if other.shape != blob.shape:
                    raise UserError(f"{self.net_path}: layer '{blob.layer}' blob {blob.index} has shape {blob.shape}, "
                                    f"the trained net's has {other.shape} (Caffe refuses to share them)")
                self._set(mod, attr, other.tensor)
                continue
            arr = self.store.layers[blob.layer].blobs[blob.index].data
            current = getattr(mod, attr)
            value = blob.from_caffe(arr).to(device)
            if value.dim() == 4:
                value = value.contiguous(memory_format=self.memory_format)
            if isinstance(current, nn.Parameter):
                self._set(mod, attr, nn.Parameter(value, requires_grad=blob.lr_mult != 0))
            else:
                self._set(mod, attr, value)
        for mod, attr, blob, owner in self.bindings:
            if not owner:  # sharers take the owner's tensor itself
                self._set(mod, attr, blob.tensor)
        bound = {(id(mod), attr) for mod, attr, _, _ in self.bindings}
        for st in self.steps:
            for name, _ in list(st.module.named_parameters()) + list(st.module.named_buffers()):
                if (id(st.module), name) not in bound:
                    raise RuntimeError(f"torch engine bug: {st.name}.{name} holds no Caffe blob")
        self.store.layers.clear()

    @staticmethod
    def _set(mod: nn.Module, attr: str, value: torch.Tensor) -> None:
        if isinstance(value, nn.Parameter):
            mod._parameters[attr] = value
            mod._buffers.pop(attr, None)
        elif attr in mod._parameters:
            mod._parameters[attr] = value if isinstance(value, nn.Parameter) else nn.Parameter(value)
        else:
            mod._buffers[attr] = value

    # -------------------------------------------------------------------------------------- running
    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        blobs = {k: v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v for k, v in inputs.items()}
        for st in self.steps:
            xs = [blobs[b] for b in st.bottoms]
            out = st.module(xs) if st.call == "list" else st.module(*xs)
            outs = list(out) if st.multi_top else [out]
            for top, value in zip(st.tops, outs, strict=False):
                blobs[top] = value
        return blobs

    def total_loss(self, blobs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Sum of loss_weight x top over the loss tops (Caffe's Net::ForwardBackward loss), or None."""
        terms = [blobs[top].sum() * w for top, w in self.loss_weights]
        return sum(terms[1:], terms[0]) if terms else None

    def non_finite(self) -> dict[str, int]:
        bad: dict[str, int] = {}
        for b in self.learnables:
            t = b.tensor
            if not bool(torch.isfinite(t).all()):
                bad[b.layer] = bad.get(b.layer, 0) + int((~torch.isfinite(t)).sum())
        return bad
