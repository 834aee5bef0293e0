"""`--verify` names the first layer that diverges, `--fp64` runs the converted module in double precision, and
`--onnx` writes a checked model.onnx whose outputs --verify compares with Caffe in onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.cli.convert import main
from fcnkit.convert.sample_nets import randomize
from safetensors.numpy import load_file, save_file

pytestmark = pytest.mark.caffe


@pytest.fixture
def three_convs(tmp_path):
    """data -> conv1 -> relu -> conv2 -> relu -> conv3 -> pool, random weights (saved by Caffe)."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 16, 18]))
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.conv2 = L.Convolution(n.conv1, num_output=4, kernel_size=3, pad=1)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.conv3 = L.Convolution(n.conv2, num_output=2, kernel_size=1)
    n.pool = L.Pooling(n.conv3, kernel_size=2, stride=2)
    proto = tmp_path / "net.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 0)
    model = tmp_path / "net.caffemodel"
    net.save(str(model))
    return proto, model


def test_verify_names_the_first_diverging_layer(three_convs, tmp_path, capsys):
    proto, model = three_convs
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 0
    tensors = load_file(str(out / "weights.safetensors"))
    tensors["conv2.bias"] = tensors["conv2.bias"] + 0.5 * np.abs(tensors["conv2.weight"]).max()
    save_file(tensors, str(out / "weights.safetensors"))
    from fcnkit.convert.verify import verify

    capsys.readouterr()
    assert verify(proto, model, out, n_photos=1, n_random=1) is False
    text = capsys.readouterr().out
    # conv2, conv3 and pool all differ from Caffe; the first one is named
    assert "first divergence: layer 'conv2' (Convolution), top 'conv2'" in text, text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("   ") and line.split()}
    assert rows["conv3"].rstrip().endswith("NO") and rows["conv1"].rstrip().endswith("yes")


def test_fp64_verify_runs_the_module_in_double(three_convs, tmp_path, capsys):
    proto, model = three_convs
    assert main([str(proto), str(model), "-o", str(tmp_path / "out"), "-q", "--verify", "--fp64",
                 "--sizes", "18x16,31x27"]) == 0
    text = capsys.readouterr().out
    assert "verify: PASS" in text and "(converted module in float64)" in text
    assert "first divergence: none" in text
    capsys.readouterr()
    assert main([str(proto), str(model), "-o", str(tmp_path / "o2"), "--fp64"]) == 2
    assert "--fp64 is a --verify mode" in capsys.readouterr().err


def test_onnx_export_is_checked_dynamic_and_verified_in_onnxruntime(three_convs, tmp_path, capsys):
    proto, model = three_convs
    out = tmp_path / "out"
    rc = main([str(proto), str(model), "-o", str(out), "--onnx", "--verify", "--sizes", "18x16,40x33", "-q"])
    text = capsys.readouterr().out
    assert rc == 0, text
    info = json.loads((out / "conversion.json").read_text())["onnx"]
    assert info["exported"] and info["checker"] == "ok" and info["opset"] == 17
    assert info["dynamic"] == "batch, height, width"
    assert info["dynamic_axes"] == {"data": {"0": "batch", "2": "height", "3": "width"}}
    m = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(m)
    assert m.opset_import[0].version == 17
    assert [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim] == ["batch", "", "height", "width"]
    assert "== onnxruntime (model.onnx) vs Caffe, 40x33 (WxH)" in text and "verify: PASS" in text


def test_onnx_of_a_fixed_size_net_records_why(tmp_path, capsys):
    """An InnerProduct net: its ONNX keeps only the batch dynamic, and conversion.json says why."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=3)
    n.fc = L.InnerProduct(n.conv, num_output=3)
    proto = tmp_path / "fc.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 1)
    model = tmp_path / "fc.caffemodel"
    net.save(str(model))
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--onnx", "-q"]) == 0
    info = json.loads((out / "conversion.json").read_text())["onnx"]
    assert info["dynamic"] == "batch"
    assert any("need the conversion input size" in why for why in info["not_dynamic_because"])
    assert main([str(proto), str(model), "-o", str(tmp_path / "o2"), "--onnx", "--opset", "13"]) == 2
    assert "--opset must be at least 17" in capsys.readouterr().err
