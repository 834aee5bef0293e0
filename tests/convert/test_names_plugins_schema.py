"""Nets users convert that used to stop with an error: repeated layer names (Caffe only indexes names),
Python layers (--plugin), forks' prototxt fields (one schema for BVLC, SSD and the forks), and weights
stored as double or half-precision raw data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import parity, run_case, write_caffemodel
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.cli.convert import main
from fcnkit.convert.sample_nets import randomize
from fcnkit.io import caffe_schema as schema

pytestmark = pytest.mark.caffe


def _fails(capsys, argv, out: Path, expect: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("convert: error: "), err
    for piece in expect:
        assert piece in err, err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return err


def _rename_layers(proto: Path, renames: dict[str, str]) -> None:
    text = proto.read_text()
    for old, new in renames.items():
        assert f'name: "{old}"' in text
        text = text.replace(f'name: "{old}"', f'name: "{new}"')
    proto.write_text(text)


# -------------------------------------------------------------------------------------- repeated names
def test_repeated_layer_names_convert_like_caffe(tmp_path):
    """An edge-detection pattern: side outputs upsampled and cropped by layers that all share the name
    'crop' (and two ReLUs named 'relu'): Caffe builds the net; the converter suffixes the modules, lists them
    under `renamed`, and every blob matches Caffe."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 20, 22]))
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1)
    n.relu_a = L.ReLU(n.conv1, in_place=True)
    n.conv2 = L.Convolution(n.conv1, num_output=4, kernel_size=3, stride=2)
    n.relu_b = L.ReLU(n.conv2, in_place=True)
    n.side1 = L.Convolution(n.conv1, num_output=1, kernel_size=1)
    n.side2 = L.Convolution(n.conv2, num_output=1, kernel_size=1)
    n.up2 = L.Deconvolution(n.side2, convolution_param=dict(num_output=1, kernel_size=6, stride=2, bias_term=False))
    n.crop_a = L.Crop(n.side1, n.data, crop_param=dict(axis=2, offset=0))
    n.crop_b = L.Crop(n.up2, n.data, crop_param=dict(axis=2, offset=1))
    n.fuse = L.Concat(n.crop_a, n.crop_b)
    n.score = L.Convolution(n.fuse, num_output=1, kernel_size=1)
    proto = tmp_path / "hed.prototxt"
    proto.write_text(str(n.to_proto()))
    _rename_layers(proto, {"crop_a": "crop", "crop_b": "crop", "relu_a": "relu", "relu_b": "relu"})
    net = caffe.Net(str(proto), caffe.TEST)
    assert list(net._layer_names).count("crop") == 2  # Caffe itself accepts the repeated names
    randomize(net, 1)
    model = tmp_path / "hed.caffemodel"
    net.save(str(model))
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 22)).astype(np.float32)
    info, cb, tb = parity(net, proto, model, tmp_path / "out", {"data": x})
    assert info["renamed"] == {"crop": ["crop", "crop_2"], "relu": ["relu", "relu_2"]}
    modules = [layer["module"] for layer in info["layers"] if layer["name"] == "crop"]
    assert modules == ["crop", "crop_2"]
    src = (tmp_path / "out" / "model.py").read_text()
    assert "self.crop_2 = CaffeCrop(" in src and '# Crop "crop"' in src


def test_repeated_name_on_a_layer_with_weights_is_one_clear_error(tmp_path, capsys):
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv_a = L.Convolution(n.data, num_output=2, kernel_size=3)
    n.conv_b = L.Convolution(n.conv_a, num_output=2, kernel_size=1)
    proto = tmp_path / "dup.prototxt"
    proto.write_text(str(n.to_proto()))
    _rename_layers(proto, {"conv_a": "conv", "conv_b": "conv"})
    net = caffe.Net(str(proto), caffe.TEST)
    model = tmp_path / "dup.caffemodel"
    net.save(str(model))
    # Caffe copies the caffemodel's last 'conv' into the first 'conv' (and aborts on the shape mismatch)
    _fails(capsys, [str(proto), str(model), "-o", str(tmp_path / "out")], tmp_path / "out",
           ["layer 'conv'", "2 layers named 'conv'", "distinct names"])
    # with equal shapes Caffe loads, but the second 'conv' keeps its random initialisation
    n.conv_b = L.Convolution(n.conv_a, num_output=2, kernel_size=3)
    proto.write_text(str(n.to_proto()))
    _rename_layers(proto, {"conv_a": "conv", "conv_b": "conv"})
    proto2 = tmp_path / "dup2.prototxt"
    proto2.write_text(proto.read_text().replace("dim: 3", "dim: 2", 1))
    caffe.Net(str(proto2), caffe.TEST).save(str(model))
    _fails(capsys, [str(proto2), str(model), "-o", str(tmp_path / "out")], tmp_path / "out",
           ["layer 'conv'", "2nd layer named 'conv'", "distinct names"])


# ------------------------------------------------------------------------------------------ Python layers
def _python_net(n, L, P):
    n.conv = L.Convolution(n.data, num_output=3, kernel_size=3, pad=1)
    n.act = L.Python(n.conv, module="caffe_pylayers", layer="ScaledTanh", param_str="2.5,-0.25")
    n.out = L.Convolution(n.act, num_output=2, kernel_size=1)


def test_python_layer_with_plugin_matches_caffe(tmp_path):
    info, cb, tb = run_case(tmp_path, _python_net, {"data": (2, 3, 7, 9)},
                            convert_kwargs={"plugins": ("torch_pylayers",)})
    act = next(layer for layer in info["layers"] if layer["name"] == "act")
    assert act["torch"] == "plugin_torch_pylayers.ScaledTanh(param_str='2.5,-0.25')"
    assert "import torch_pylayers as plugin_torch_pylayers" in (tmp_path / "out" / "model.py").read_text()


def test_python_layer_without_plugin_names_layer_and_flag(tmp_path, capsys):
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 7, 9]))
    _python_net(n, L, caffe.params)
    proto = tmp_path / "py.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    model = tmp_path / "py.caffemodel"
    net.save(str(model))
    out = tmp_path / "out"
    _fails(capsys, [str(proto), str(model), "-o", str(out)], out,
           ["layer 'act'", "caffe_pylayers.ScaledTanh", "--plugin"])
    _fails(capsys, [str(proto), str(model), "-o", str(out), "--plugin", "caffe_pylayers.nope"], out,
           ["--plugin caffe_pylayers.nope"])
    _fails(capsys, [str(proto), str(model), "-o", str(out), "--plugin", "json"], out,
           ["layer 'act'", "plugins searched: json"])


def test_python_data_and_metric_layers_of_a_train_net(tmp_path):
    """The FCN reference's pattern: a Python data layer (no bottoms) becomes the input, a Python metric layer
    whose top nothing reads is left out; the rest converts as the deploy net does."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 9, 9]))
    n.score = L.Convolution(n.data, num_output=2, kernel_size=3)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(n.to_proto()))
    net = caffe.Net(str(deploy), caffe.TEST)
    randomize(net, 2)
    model = tmp_path / "m.caffemodel"
    net.save(str(model))
    train = tmp_path / "train.prototxt"
    train.write_text(
        'layer { name: "data" type: "Python" top: "data" top: "label" python_param { module: "voc_layers" '
        'layer: "SBDDSegDataLayer" param_str: "{\'split\': \'train\'}" } }\n'
        + deploy.read_text().split("layer {", 2)[2].join(["layer {", ""])
        + 'layer { name: "acc" type: "Python" bottom: "score" bottom: "label" top: "acc" '
        'python_param { module: "fcnkit.caffe.pylayers" layer: "PixelAccuracy" } }\n')
    out = tmp_path / "out"
    assert main([str(train), str(model), "-o", str(out), "-q", "--input-shape", "data=1,3,9,9"]) == 0
    info = json.loads((out / "conversion.json").read_text())
    assert [i["blob"] for i in info["inputs"]] == ["data"]
    kinds = {layer["name"]: layer["kind"] for layer in info["layers"]}
    assert kinds == {"data": "input", "score": "module", "acc": "skipped"}
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 9)).astype(np.float32)
    parity(net, deploy, model, tmp_path / "out2", {"data": x})


# --------------------------------------------------------------------------------- forks' prototxt fields
FORK_PROTOTXT = """name: "forks"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 6 dim: 8 } } }
layer { name: "interp" type: "Interp" bottom: "data" top: "interp" interp_param { zoom_factor: 2 pad_beg: 0 } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "interp" top: "shuffle" shuffle_channel_param { group: 2 } }
layer { name: "bn" type: "BN" bottom: "shuffle" top: "bn"
  bn_param { bn_mode: INFERENCE scale_filler { type: "constant" value: 1 } shift_filler { type: "constant" } } }
layer { name: "up" type: "Upsample" bottom: "bn" top: "up" upsample_param { scale: 2 } }
layer { name: "seg" type: "DenseImageData" top: "img" top: "lbl" include { phase: TRAIN }
  dense_image_data_param { source: "train.txt" batch_size: 4 shuffle: true } }
layer { name: "ssd_data" type: "AnnotatedData" top: "a" top: "b" include { phase: TRAIN }
  transform_param { resize_param { prob: 1 resize_mode: WARP height: 300 width: 300 }
    distort_param { brightness_prob: 0.5 brightness_delta: 32 } expand_param { prob: 0.5 max_expand_ratio: 4 } } }
"""


def test_forks_prototxt_parses_with_protobuf_alone(tmp_path):
    proto = tmp_path / "forks.prototxt"
    proto.write_text(FORK_PROTOTXT)
    net = schema.load_prototxt(proto)
    layers = {layer.name: layer for layer in net.layer}
    assert layers["interp"].interp_param.zoom_factor == 2
    assert layers["shuffle"].shuffle_channel_param.group == 2
    assert layers["bn"].bn_param.bn_mode == schema.pb().BNParameter.INFERENCE
    assert layers["seg"].dense_image_data_param.batch_size == 4
    assert layers["ssd_data"].transform_param.expand_param.max_expand_ratio == 4
    c = np.random.default_rng(0).standard_normal((1, 4, 1, 1)).astype(np.float32)
    model = write_caffemodel(tmp_path / "forks.caffemodel", [("bn", "BN", [c, c])])
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 0
    info = json.loads((out / "conversion.json").read_text())
    assert info["outputs"] == [{"blob": "up", "position": 0, "shape": [1, 4, 22, 30]}]


@pytest.mark.parametrize("field,layer,fork", [
    ('box_annotator_ohem_param { roi_per_img: 128 }', "ohem", "R-FCN"),
    ('margin_inner_product_param { num_output: 10 type: QUADRUPLE }', "fc6", "SphereFace"),
    ('some_new_param { x: 1 }', "mystery", "not in BVLC Caffe, SSD or the forks fcnkit reads"),
])
def test_unknown_fork_field_is_one_line_naming_field_layer_and_fork(tmp_path, capsys, field, layer, fork):
    proto = tmp_path / "unknown.prototxt"
    head = FORK_PROTOTXT.split("layer {", 2)
    extra = f'layer {{\n  name: "{layer}"\n  type: "Whatever"\n  bottom: "data"\n  top: "t"\n  {field}\n}}\n'
    proto.write_text(head[0] + "layer {" + head[1] + extra)
    model = write_caffemodel(tmp_path / "m.caffemodel", [("x", "ReLU", [])])
    name = field.split()[0]
    _fails(capsys, [str(proto), str(model), "-o", str(tmp_path / "out")], tmp_path / "out",
           ["unknown.prototxt:8:3:", f"'{name}'", f"layer '{layer}'", fork])


# --------------------------------------------------------------------------------- double and half blobs
@pytest.mark.parametrize("raw", ["double", "float16"])
def test_double_and_half_precision_blobs_load(tmp_path, raw):
    """Weights stored as double_data, or as NVIDIA Caffe's raw FP16 data: the converted net equals real
    Caffe running with the same (half-rounded) values as float32."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 9, 10]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3)
    n.bn = L.BatchNorm(n.conv)
    n.ip = L.InnerProduct(n.bn, num_output=5)
    proto = tmp_path / "net.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 4)
    net.params["bn"][1].data[...] = np.abs(net.params["bn"][1].data) + 0.5
    net.params["bn"][2].data[...] = 1.0
    layers = []
    for name, blobs in net.params.items():
        arrays = []
        for b in blobs:
            if raw == "float16":
                b.data[...] = b.data.astype(np.float16).astype(np.float32)  # Caffe runs the rounded values
            arrays.append(b.data.copy())
        layers.append((name, net.layer_dict[name].type, arrays))
    model = write_caffemodel(tmp_path / f"{raw}.caffemodel", layers, raw=raw)
    read = schema.read_caffemodel(model)
    np.testing.assert_array_equal(read.layers["conv"].blobs[0].data.reshape(4, 3, 3, 3), net.params["conv"][0].data)
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 10)).astype(np.float32)
    parity(net, proto, model, tmp_path / "out", {"data": x})
