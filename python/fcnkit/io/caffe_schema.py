"""Read Caffe nets and weights with protobuf alone (no pycaffe).

* `load_prototxt` parses a text NetParameter (or SolverParameter) with the project's generated schema
  (`fcnkit_caffe_pb2`) and reports syntax errors as FILE:LINE:COLUMN. The whole project reads Caffe's
  text files through it; only the NetSpec generator needs pycaffe.
* `upgrade_net` brings V0 (`layers { layer { type: "conv" } }`) and V1 (`layers { type: CONVOLUTION }`)
  nets, legacy data-transformation fields and `input:`/`input_dim:`/`input_shape` to the current
  format (one `Input` layer), following the rules of Caffe's upgrade_proto.
* `filter_net` keeps the layers Caffe would build for a phase (include/exclude rules).
* `read_caffemodel` reads a binary caffemodel. It walks the protobuf wire format itself and maps
  every weight array zero-copy with numpy: letting protobuf materialise ~10^8 floats as Python
  objects is slow and memory hungry, and some protobuf builds refuse messages above 64 MB.
  Every length is bounds-checked, so truncated or corrupt files fail with a clear error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from fcnkit.errors import UserError
from fcnkit.io.protowire import Corrupt, fields, read_varint, signed64


def pb():
    """The generated Caffe schema module (package `fcnkit_caffe`: this Caffe's caffe.proto plus the forks'
    fields of caffe_forks.proto), installed by `make setup`."""
    try:
        import fcnkit_caffe_pb2
    except ImportError as exc:
        raise UserError(f"the Caffe protobuf schema module fcnkit_caffe_pb2 is missing ({exc}); "
                        "run `make setup`") from exc
    if "interp_param" not in fcnkit_caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name:
        raise UserError("the installed Caffe schema (fcnkit_caffe_pb2) predates the forks' fields; run `make setup` "
                        "to rebuild it")
    return fcnkit_caffe_pb2


_UNKNOWN_FIELD = re.compile(r'Message type "fcnkit_caffe\.(\w+)" has no field named "(\w+)"')


def _layer_at(text: str, line: int, col: int) -> str:
    """Name of the top-level `layer`/`layers` block that contains a (1-based) line and column, or ''."""
    pos = sum(len(x) + 1 for x in text.split("\n")[: line - 1]) + max(col - 1, 0)
    code = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), text)
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"', lambda m: '"' + "_" * (len(m.group()) - 2) + '"', code)
    depth, start = 0, None
    for m in re.finditer(r"[{}]", code):
        if m.group() == "{":
            if depth == 0:
                start = m.start()
            depth += 1
        else:
            depth -= 1
            if depth == 0 and start is not None and start <= pos <= m.end():
                block = text[start:m.end()]
                names = re.findall(r'^\s*name\s*:\s*"([^"]*)"', block, flags=re.M)
                inner = re.findall(r'\bname\s*:\s*"([^"]*)"', block)
                return names[0] if names else (inner[0] if inner else "")
    return ""


# Fields of forks that fcnkit's schema does not include -> the fork they come from. A prototxt using one of
# them fails to parse with one line naming the field, the layer and this fork.
FORK_FIELDS = {
    "roi_pooling_param": "py-faster-rcnn's Caffe (ROIPooling)",
    "smooth_l1_loss_param": "py-faster-rcnn's Caffe",
    "box_annotator_ohem_param": "R-FCN's Caffe",
    "region_param": "a YOLO port of Caffe",
    "region_loss_param": "a YOLO port of Caffe",
    "reorg_param": "a YOLO port of Caffe",
    "yolo_v2_loss_param": "a YOLO port of Caffe",
    "yolo_v3_loss_param": "a YOLO port of Caffe",
    "yolov3_param": "a YOLO port of Caffe (eric612/Caffe-YOLOv3-Windows)",
    "yolo_detection_output_param": "MobileNet-YOLO's Caffe (eric612)",
    "yolov3_detection_output_param": "MobileNet-YOLO's Caffe (eric612)",
    "margin_inner_product_param": "SphereFace's Caffe",
    "center_loss_param": "caffe-face (center loss)",
    "deformable_convolution_param": "Deformable ConvNets' Caffe",
    "quantization_param": "Ristretto",
    "correlation_param": "FlowNet's Caffe",
    "flow_warp_param": "FlowNet 2's Caffe",
    "augmentation_param": "FlowNet's Caffe",
    "normalize_bbox_param": "an early SSD fork",
    "seg_data_param": "DeepLab's Caffe",
    "mat_read_param": "DeepLab's Caffe",
    "unique_label_param": "DeepLab's Caffe",
    "adaptive_bias_channel_param": "DeepLab's Caffe",
    "spatial_dropout_param": "Intel's Caffe",
    "multinode": "Intel's Caffe",
    "mn_activation_param": "Intel's Caffe",
    "batch_reduction_param": "Intel's Caffe",
    "ring_pad_param": "panoramic-object-detection's Caffe",
    "box_output_param": "panoramic-object-detection's Caffe",
}


def guess_fork(field: str) -> str:
    return FORK_FIELDS.get(field, "")


def _parse_error_message(exc, path: Path, text: str, what: str) -> str:
    msg = str(exc).replace("fcnkit_caffe.", "caffe.")
    line, col = exc.GetLine(), exc.GetColumn()
    if line is not None and msg.startswith(f"{line}:{col} : "):
        msg = msg[len(f"{line}:{col} : "):]
    where = f"{path}:{line}:{col}" if line is not None else str(path)
    unknown = _UNKNOWN_FIELD.search(str(exc))
    if unknown:
        message, fieldname = unknown.groups()
        layer = _layer_at(text, line, col or 1) if line is not None else ""
        in_layer = f" in layer '{layer}'" if layer else ""
        fork = guess_fork(fieldname)
        origin = (f"it comes from {fork}, a Caffe fork fcnkit does not read" if fork else
                  "it is not in BVLC Caffe, SSD or the forks fcnkit reads (DeepLab/PSPNet, SegNet, ShuffleNet, "
                  "MobileNet, SENet)")
        return (f"{where}: unknown field '{fieldname}' of caffe.{message}{in_layer}: {origin}; remove the field or "
                "the layer if inference does not need it")
    return f"{where}: {what} does not parse: {msg} (fix the text there; field names follow Caffe's caffe.proto)"


# ------------------------------------------------------------------------------------- prototxt
def load_prototxt(path: str | os.PathLike, what: str = "prototxt", message: str = "NetParameter"):
    """Parse a text-format Caffe message (a NetParameter, or e.g. a SolverParameter); a missing file or a
    syntax error becomes one line naming the file (and the line and column)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" + ("" if not path.exists() else " (it is a directory)"))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not a text prototxt (byte {exc.start} is not UTF-8); pass the deploy "
                        ".prototxt first and the .caffemodel second") from exc
    msg_obj = getattr(pb(), message)()
    try:
        text_format.Parse(text, msg_obj)
    except text_format.ParseError as exc:
        raise UserError(_parse_error_message(exc, path, text, what)) from exc
    return msg_obj


# -------------------------------------------------------------------------------------- upgrades
# V1LayerParameter.LayerType enum name -> current layer type string (Caffe's UpgradeV1LayerType).
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution",
    "DATA": "Data", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# V0 layer type string -> V1 enum name (Caffe's UpgradeV0LayerType).
V0_TYPES = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION", "data": "DATA",
    "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS", "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT", "im2col": "IM2COL", "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS", "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}

_DATA_PARAM_OF_V1 = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                     "WINDOW_DATA": "window_data_param"}


@dataclass
class UpgradeReport:
    format: str = "current"  # "current", "V1" or "V0"
    notes: list[str] = field(default_factory=list)


def _v0_padding_merge(net, src: str) -> list:
    """Drop V0 "padding" layers, moving their pad into the conv/pool layer that consumes them."""
    last_top: dict[str, int] = {name: -1 for name in net.input}
    kept = []
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            kept.append(pb().V1LayerParameter())
            kept[-1].CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise UserError(f"{src}: V0 layer '{v0.name}' reads blob '{blob}' that no earlier layer "
                                "produces")
            k = last_top[blob]
            if k == -1:
                continue
            source = net.layers[k]
            if source.layer.type == "padding":
                if v0.type not in ("conv", "pool") or len(conn.bottom) != 1:
                    raise UserError(f"{src}: V0 padding layer '{source.layer.name}' feeds '{v0.name}' "
                                    f"({v0.type}); only conv/pool layers with one input can absorb padding")
                kept[-1].layer.pad = source.layer.pad
                kept[-1].bottom[j] = source.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return kept


def _v0_to_v1(conn):
    """One V0 layer connection -> V1LayerParameter (Caffe's UpgradeV0LayerParameter)."""
    out = pb().V1LayerParameter()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return out
    v0 = conn.layer
    t = v0.type
    if v0.HasField("name"):
        out.name = v0.name
    if t not in V0_TYPES:
        raise UserError(f"V0 layer '{v0.name}' has unknown type '{t}'; upgrade the net with Caffe's "
                        "upgrade_net_proto_text first")
    out.type = pb().V1LayerParameter.LayerType.Value(V0_TYPES[t])
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    sub = {"conv": out.convolution_param, "innerproduct": out.inner_product_param}.get(t)
    if sub is not None:
        if v0.HasField("num_output"):
            sub.num_output = v0.num_output
        if v0.HasField("biasterm"):
            sub.bias_term = v0.biasterm
        if v0.HasField("weight_filler"):
            sub.weight_filler.CopyFrom(v0.weight_filler)
        if v0.HasField("bias_filler"):
            sub.bias_filler.CopyFrom(v0.bias_filler)
    if t == "conv":
        c = out.convolution_param
        if v0.HasField("pad"):
            c.pad.append(v0.pad)
        if v0.HasField("kernelsize"):
            c.kernel_size.append(v0.kernelsize)
        if v0.HasField("group"):
            c.group = v0.group
        if v0.HasField("stride"):
            c.stride.append(v0.stride)
    elif t == "pool":
        p = out.pooling_param
        if v0.HasField("pad"):
            p.pad = v0.pad
        if v0.HasField("kernelsize"):
            p.kernel_size = v0.kernelsize
        if v0.HasField("stride"):
            p.stride = v0.stride
        if v0.HasField("pool"):
            p.pool = int(v0.pool)  # same numbering: MAX 0, AVE 1, STOCHASTIC 2
    elif t == "dropout" and v0.HasField("dropout_ratio"):
        out.dropout_param.dropout_ratio = v0.dropout_ratio
    elif t == "lrn":
        for name in ("local_size", "alpha", "beta", "k"):
            if v0.HasField(name):
                setattr(out.lrn_param, name, getattr(v0, name))
    elif t == "concat" and v0.HasField("concat_dim"):
        out.concat_param.concat_dim = v0.concat_dim
    elif t in ("data", "images", "hdf5_data", "window_data"):
        sub = {"data": out.data_param, "images": out.image_data_param, "hdf5_data": out.hdf5_data_param,
               "window_data": out.window_data_param}[t]
        if v0.HasField("source"):
            sub.source = v0.source
        if v0.HasField("batchsize"):
            sub.batch_size = v0.batchsize
        tp = out.transform_param
        if v0.HasField("scale"):
            tp.scale = v0.scale
        if v0.HasField("meanfile"):
            tp.mean_file = v0.meanfile
        if v0.HasField("cropsize"):
            tp.crop_size = v0.cropsize
        if v0.HasField("mirror"):
            tp.mirror = v0.mirror
        if t == "images":
            if v0.HasField("new_height"):
                out.image_data_param.new_height = v0.new_height
            if v0.HasField("new_width"):
                out.image_data_param.new_width = v0.new_width
    elif t == "hdf5_output" and v0.HasField("hdf5_output_param"):
        out.hdf5_output_param.CopyFrom(v0.hdf5_output_param)
    return out


def _v1_to_v2(v1, notes: list[str]):
    """One V1LayerParameter -> LayerParameter (Caffe's UpgradeV1LayerParameter)."""
    P = pb()
    layer = P.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        enum_name = P.V1LayerParameter.LayerType.Name(v1.type)
        layer.type = V1_TYPES.get(enum_name, "")
    layer.blobs.extend(v1.blobs)

    def spec(i):
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = int(mode)  # STRICT 0 / PERMISSIVE 1 in both enums
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for fd, value in v1.ListFields():
        if not fd.name.endswith("_param"):
            continue
        if fd.name in P.LayerParameter.DESCRIPTOR.fields_by_name:
            getattr(layer, fd.name).CopyFrom(value)
        else:
            notes.append(f"layer '{v1.name}': V1 field {fd.name} has no current equivalent; dropped")
    return layer


def upgrade_net(net, src: str = "prototxt"):
    """Return (NetParameter with `layer` entries only, UpgradeReport). `net` is not modified."""
    P = pb()
    report = UpgradeReport()
    out = P.NetParameter()
    out.CopyFrom(net)
    if len(net.layers) and len(net.layer):
        raise UserError(f"{src}: has both 'layer' and 'layers' sections; convert it to one format "
                        "(current Caffe uses `layer { type: \"Convolution\" }`)")
    if len(net.layers):
        v1_layers = list(net.layers)
        if any(conn.HasField("layer") for conn in v1_layers):
            report.format = "V0"
            v1_layers = [_v0_to_v1(conn) for conn in _v0_padding_merge(net, src)]
        else:
            report.format = "V1"
        for v1 in v1_layers:  # legacy data-transformation fields -> transform_param
            enum_name = P.V1LayerParameter.LayerType.Name(v1.type) if v1.HasField("type") else ""
            sub_name = _DATA_PARAM_OF_V1.get(enum_name)
            if sub_name and v1.HasField(sub_name):
                sub = getattr(v1, sub_name)
                for fname in ("scale", "mean_file", "crop_size", "mirror"):
                    if sub.HasField(fname):
                        setattr(v1.transform_param, fname, getattr(sub, fname))
                        sub.ClearField(fname)
        del out.layers[:]
        for v1 in v1_layers:
            out.layer.append(_v1_to_v2(v1, report.notes))
        report.notes.append(f"upgraded from the {report.format} format")
    if len(out.input):
        has_shape, has_dim = len(out.input_shape) > 0, len(out.input_dim) > 0
        if has_shape or has_dim:
            if has_shape and len(out.input_shape) != len(out.input):
                raise UserError(f"{src}: {len(out.input)} inputs but {len(out.input_shape)} input_shape "
                                "entries")
            if not has_shape and len(out.input_dim) != 4 * len(out.input):
                raise UserError(f"{src}: {len(out.input)} inputs need {4 * len(out.input)} input_dim values, "
                                f"found {len(out.input_dim)}")
            inp = P.LayerParameter(name="input", type="Input")
            for i, name in enumerate(out.input):
                inp.top.append(name)
                shape = inp.input_param.shape.add()
                if has_shape:
                    shape.CopyFrom(out.input_shape[i])
                else:
                    shape.dim.extend(out.input_dim[4 * i: 4 * i + 4])
            layers = [inp] + list(out.layer)
            del out.layer[:]
            out.layer.extend(layers)
            report.notes.append("net-level input fields became an Input layer named 'input'")
        else:
            inp = P.LayerParameter(name="input", type="Input")
            inp.top.extend(out.input)
            layers = [inp] + list(out.layer)
            del out.layer[:]
            out.layer.extend(layers)
            report.notes.append("net-level inputs without shapes became an Input layer named 'input'")
        out.ClearField("input")
        out.ClearField("input_shape")
        out.ClearField("input_dim")
    return out, report


def _rule_met(rule, phase: int, level: int, stages: set[str]) -> bool:
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def filter_net(net, phase: str = "TEST", level: int = 0, stages=()):
    """Keep the layers Caffe instantiates for this phase/level/stages (Caffe's Net::FilterNet)."""
    P = pb()
    phase_value = P.Phase.Value(phase)
    stages = set(stages)
    kept = []
    for layer in net.layer:
        included = len(layer.include) == 0
        if any(_rule_met(r, phase_value, level, stages) for r in layer.exclude):
            included = False
        if any(_rule_met(r, phase_value, level, stages) for r in layer.include):
            included = True
        if included:
            kept.append(layer)
    out = P.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    out.layer.extend(kept)
    return out


# ------------------------------------------------------------------------------------ caffemodel
@dataclass
class WeightBlob:
    data: np.ndarray                  # flat float32 (a read-only view into the file when possible)
    shape: tuple[int, ...] | None     # BlobShape dims, when the blob has them
    legacy: tuple[int, int, int, int] | None  # (num, channels, height, width) of old files

    @property
    def declared(self) -> tuple[int, ...]:
        if self.shape is not None:
            return self.shape
        if self.legacy is not None:
            return self.legacy
        return (int(self.data.size),)


@dataclass
class WeightLayer:
    name: str
    type: str
    blobs: list[WeightBlob]
    copies: int = 1  # how many caffemodel layers have this name (the last one's blobs are kept, as in Caffe)


@dataclass
class Caffemodel:
    path: str
    size: int
    format: str                       # "current", "V1" or "V0"
    layers: dict[str, WeightLayer]    # by layer name (a later duplicate wins, as in Caffe)
    order: list[str]


def _string(buf, span) -> str:
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Corrupt(f"a name at byte {span[0]} is not UTF-8") from exc


def _packed_ints(buf, wt, val, out: list[int]):
    if wt == 0:
        out.append(signed64(val))
    elif wt == 2:
        pos, end = val
        while pos < end:
            v, pos = read_varint(buf, pos, end)
            out.append(signed64(v))
    else:
        raise Corrupt("bad wire type for an integer field")


def _read_blob(buf, start: int, end: int) -> WeightBlob:
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    raw: tuple[int, int] | None = None  # NVIDIA Caffe's raw_data bytes
    raw_type = 1                        # their BlobDataType: DOUBLE 0, FLOAT 1, FLOAT16 2
    shape: list[int] | None = None
    legacy = [0, 0, 0, 0]
    has_legacy = False
    for num, wt, val in fields(buf, start, end):
        if num == 5 or num == 8:  # data (float) / double_data
            width = 4 if num == 5 else 8
            dtype = "<f4" if num == 5 else "<f8"
            if wt == 2 or (wt == 5 and num == 5) or (wt == 1 and num == 8):
                s, e = val
                if (e - s) % width:
                    raise Corrupt(f"blob data at byte {s} is not a whole number of values")
                (floats if num == 5 else doubles).append(
                    np.frombuffer(buf, dtype=dtype, count=(e - s) // width, offset=s))
            else:
                raise Corrupt(f"blob data with wire type {wt}")
        elif num == 12 and wt == 2:
            raw = val
        elif num == 10 and wt == 0:
            raw_type = val
        elif num == 7 and wt == 2:
            shape = []
            for n2, wt2, val2 in fields(buf, *val):
                if n2 == 1:
                    _packed_ints(buf, wt2, val2, shape)
        elif 1 <= num <= 4 and wt == 0:
            legacy[num - 1] = val
            has_legacy = True
    if floats:
        data = floats[0] if len(floats) == 1 else np.concatenate(floats)
    elif doubles:
        data = np.concatenate(doubles).astype(np.float32)
    elif raw is not None:
        dtype = {0: "<f8", 1: "<f4", 2: "<f2"}.get(raw_type)
        if dtype is None:
            raise Corrupt(f"raw blob data of type {raw_type} at byte {raw[0]} (only DOUBLE, FLOAT and FLOAT16 are "
                           "weights)")
        width = np.dtype(dtype).itemsize
        if (raw[1] - raw[0]) % width:
            raise Corrupt(f"raw blob data at byte {raw[0]} is not a whole number of values")
        data = np.frombuffer(buf, dtype=dtype, count=(raw[1] - raw[0]) // width, offset=raw[0]).astype(np.float32)
    else:
        data = np.zeros(0, np.float32)
    leg = tuple(legacy) if has_legacy else None
    if shape is None and leg is None:
        shape = []  # Caffe writes a 0-d blob (e.g. a shared PReLU slope) with neither shape nor dims
    return WeightBlob(data=data, shape=tuple(shape) if shape is not None else None, legacy=leg)


def _read_layer(buf, start: int, end: int, kind: str) -> WeightLayer:
    """kind: 'layer' (LayerParameter), 'v1' (V1LayerParameter) or 'v0' (V0LayerParameter)."""
    name_f, type_f, blobs_f = {"layer": (1, 2, 7), "v1": (4, 5, 6), "v0": (1, 2, 50)}[kind]
    name, ltype, blobs = "", "", []
    v0 = None
    for num, wt, val in fields(buf, start, end):
        if num == name_f and wt == 2:
            name = _string(buf, val)
        elif num == type_f:
            if kind == "v1" and wt == 0:
                try:
                    ltype = V1_TYPES.get(pb().V1LayerParameter.LayerType.Name(val), str(val))
                except ValueError:
                    ltype = str(val)
            elif wt == 2:
                ltype = _string(buf, val)
        elif num == blobs_f and wt == 2:
            blobs.append(_read_blob(buf, *val))
        elif kind == "v1" and num == 1 and wt == 2:
            v0 = _read_layer(buf, *val, "v0")
    if v0 is not None and not name:
        return v0
    return WeightLayer(name=name, type=ltype, blobs=blobs)


def read_caffemodel(path: str | os.PathLike) -> Caffemodel:
    """Read all weight blobs of a binary caffemodel, by layer name."""
    path = Path(path)
    try:
        size = path.stat().st_size
        buf = bytearray(size)
        with open(path, "rb") as fh:
            got = fh.readinto(buf)
    except OSError as exc:
        raise UserError(f"cannot read caffemodel {path}: {exc.strerror or exc}") from exc
    if got != size:
        raise UserError(f"{path}: read {got} of {size} bytes; the file changed while reading, try again")
    if size == 0:
        raise UserError(f"{path} is empty; re-download or re-save the caffemodel")
    if buf[:200].lstrip().startswith((b"name:", b"layer", b"input", b"#", b"layers")):
        raise UserError(f"{path} looks like a text prototxt, not a binary caffemodel; pass the .prototxt "
                        "first and the .caffemodel second")
    layers: dict[str, WeightLayer] = {}
    order: list[str] = []
    fmt = "current"
    try:
        for num, wt, val in fields(buf, 0, size):
            if num == 100 and wt == 2:
                layer = _read_layer(buf, *val, "layer")
            elif num == 2 and wt == 2:
                fmt = "V1"
                layer = _read_layer(buf, *val, "v1")
            else:
                continue
            if layer.name not in layers:
                order.append(layer.name)
            else:
                layer.copies = layers[layer.name].copies + 1
            layers[layer.name] = layer
    except Corrupt as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); re-download or re-save the "
                        "caffemodel") from None
    if not layers:
        raise UserError(f"{path} holds no layers; is it a caffemodel (binary NetParameter)?")
    return Caffemodel(path=str(path), size=size, format=fmt, layers=layers, order=order)


def read_mean_file(path: str | os.PathLike) -> np.ndarray:
    """A mean .binaryproto (BlobProto) as a (C, H, W) float32 array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read mean file {path}: {exc.strerror or exc}") from exc
    try:
        blob = _read_blob(raw, 0, len(raw))
    except Corrupt as exc:
        raise UserError(f"{path} is not a valid mean .binaryproto ({exc})") from None
    dims = blob.shape if blob.shape else blob.legacy
    if not dims or int(np.prod(dims)) != blob.data.size:
        raise UserError(f"{path}: mean blob has {blob.data.size} values but shape {dims}")
    return blob.data.reshape(dims[-3:]).astype(np.float32)


# ------------------------------------------------------------------------------------ solverstate
@dataclass
class SolverState:
    path: str
    iter: int
    learned_net: str                  # the caffemodel Caffe loads on restore (as written, cwd-relative)
    history: list[WeightBlob]         # one blob per learnable parameter (two for Adam/AdaDelta)
    current_step: int


def read_solverstate(path: str | os.PathLike) -> SolverState:
    """A binary .solverstate (caffe.SolverState), every length bounds-checked: a truncated or foreign file
    is one clear error instead of Caffe aborting in `--resume`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read solverstate {path}: {exc.strerror or exc}") from exc
    if raw.startswith(b"\x89HDF"):
        raise UserError(f"{path}: an HDF5 solverstate; fcnkit's solvers write binary ones (snapshot_format "
                        "BINARYPROTO): resume it with `caffe train --snapshot` or retrain")
    it, learned, history, step = 0, "", [], 0
    try:
        for num, wt, val in fields(raw, 0, len(raw)):
            if num == 1 and wt == 0:
                it = val
            elif num == 2 and wt == 2:
                learned = _string(raw, val)
            elif num == 3 and wt == 2:
                history.append(_read_blob(raw, *val))
            elif num == 4 and wt == 0:
                step = val
    except Corrupt as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); resume from an earlier snapshot") from None
    if not learned:
        raise UserError(f"{path}: not a Caffe solverstate (no learned_net); pass a .solverstate that `solve` "
                        "or `caffe train` wrote")
    return SolverState(str(path), it, learned, history, step)


def proto_is_complete(path: str | os.PathLike) -> bool:
    """Cheap check that a binary proto file (caffemodel, solverstate) is not cut short: walk its top-level
    fields by their lengths without reading their contents."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            pos = 0
            while pos < size:
                head = fh.read(20)
                tag, n = read_varint(head, 0, len(head))
                wt = tag & 7
                if wt == 0:
                    _, n = read_varint(head, n, len(head))
                    length = 0
                elif wt == 2:
                    length, n = read_varint(head, n, len(head))
                elif wt in (1, 5):
                    length = 8 if wt == 1 else 4
                else:
                    return False
                pos += n + length
                if pos > size:
                    return False
                fh.seek(pos)
    except (OSError, Corrupt):
        return False
    return size > 0
