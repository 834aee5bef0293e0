"""Reading Caffe files without pycaffe: old formats (V0, V1, legacy input fields, legacy blob dims) are
upgraded and convert to the same numbers as real Caffe; the caffemodel reader agrees with protobuf's
own parser, also above protobuf's 64 MB default limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convert_helpers import parity
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.convert.sample_nets import randomize
from fcnkit.io import caffe_schema as schema

V1_NET = """name: "vgg_like_v1"
input: "data"
input_dim: 2
input_dim: 3
input_dim: 21
input_dim: 19
layers {
  bottom: "data"  top: "conv1_1"  name: "conv1_1"  type: CONVOLUTION
  blobs_lr: 1  blobs_lr: 2  weight_decay: 1  weight_decay: 0
  convolution_param { num_output: 4 pad: 1 kernel_size: 3 }
}
layers { bottom: "conv1_1" top: "conv1_1" name: "relu1_1" type: RELU }
layers { bottom: "conv1_1" top: "pool1" name: "pool1" type: POOLING
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { bottom: "pool1" top: "norm1" name: "norm1" type: LRN
         lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layers { bottom: "norm1" top: "fc6" name: "fc6" type: INNER_PRODUCT inner_product_param { num_output: 8 } }
layers { bottom: "fc6" top: "fc6" name: "relu6" type: RELU }
layers { bottom: "fc6" top: "fc6" name: "drop6" type: DROPOUT dropout_param { dropout_ratio: 0.5 } }
layers { bottom: "fc6" top: "fc8" name: "fc8" type: INNER_PRODUCT inner_product_param { num_output: 5 } }
layers { bottom: "fc8" top: "prob" name: "prob" type: SOFTMAX }
"""

V0_NET = """name: "v0net"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 9
input_dim: 11
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 group: 1 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 1 } bottom: "conv1" top: "pool1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 6 } bottom: "pool1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""


def _legacy_blob(dst, src_array: np.ndarray) -> None:
    """Store an array the way pre-2015 Caffe did: num/channels/height/width, no BlobShape."""
    dims = (1,) * (4 - src_array.ndim) + tuple(src_array.shape)
    dst.num, dst.channels, dst.height, dst.width = dims
    dst.data.extend(src_array.reshape(-1).tolist())


def _old_caffemodel(net, version: str, path: Path) -> None:
    """Write the weights of a pycaffe net as a V1 (`layers`) or V0 (`layers { layer {} }`) caffemodel."""
    pb = schema.pb()
    msg = pb.NetParameter(name="old")
    enum = {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT", "ReLU": "RELU",
            "Pooling": "POOLING", "LRN": "LRN", "Dropout": "DROPOUT", "Softmax": "SOFTMAX"}
    v0_type = {"Convolution": "conv", "InnerProduct": "innerproduct", "ReLU": "relu", "Pooling": "pool",
               "Softmax": "softmax"}
    for name, layer in zip(net._layer_names, net.layers, strict=True):
        if layer.type == "Input":
            continue
        v1 = msg.layers.add()
        if version == "V1":
            v1.name = name
            v1.type = pb.V1LayerParameter.LayerType.Value(enum[layer.type])
            target = v1.blobs
        else:
            v1.layer.name = name
            v1.layer.type = v0_type[layer.type]
            target = v1.layer.blobs
        for blob in layer.blobs:
            _legacy_blob(target.add(), blob.data)
    path.write_bytes(msg.SerializeToString())


def test_v1_prototxt_and_caffemodel_convert_like_caffe(tmp_path):
    caffe = load_caffe()
    proto = tmp_path / "v1.prototxt"
    proto.write_text(V1_NET)
    net = caffe.Net(str(proto), caffe.TEST)  # Caffe upgrades the V1 text itself
    randomize(net, 3)
    model = tmp_path / "v1.caffemodel"
    _old_caffemodel(net, "V1", model)
    caffe_net = caffe.Net(str(proto), str(model), caffe.TEST)  # and reads the V1 weights back
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 21, 19)).astype(np.float32)
    info, cb, tb = parity(caffe_net, proto, model, tmp_path / "out", {"data": x})
    assert info["source"]["prototxt_format"] == "V1"
    assert info["source"]["caffemodel_format"] == "V1"
    assert [i["layer"] for i in info["inputs"]] == ["input"]  # input:/input_dim: -> Input layer "input"
    assert {layer["type"] for layer in info["layers"]} >= {"Convolution", "LRN", "InnerProduct", "Softmax"}


def test_v0_prototxt_with_padding_layer_and_v0_caffemodel(tmp_path):
    caffe = load_caffe()
    proto = tmp_path / "v0.prototxt"
    proto.write_text(V0_NET)
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 4)
    model = tmp_path / "v0.caffemodel"
    _old_caffemodel(net, "V0", model)
    caffe_net = caffe.Net(str(proto), str(model), caffe.TEST)
    x = np.random.default_rng(1).standard_normal((1, 3, 9, 11)).astype(np.float32)
    info, cb, tb = parity(caffe_net, proto, model, tmp_path / "out", {"data": x})
    assert info["source"]["prototxt_format"] == "V0"
    names = [layer["name"] for layer in info["layers"]]
    assert "pad1" not in names  # the padding layer was folded into conv1
    conv1 = next(layer for layer in info["layers"] if layer["name"] == "conv1")
    assert conv1["bottoms"] == ["data"] and "padding=2" in conv1["torch"]


def test_input_shape_field_and_upgrade_notes():
    pb = schema.pb()
    net = pb.NetParameter()
    net.input.extend(["a", "b"])
    net.input_shape.add().dim.extend([1, 2, 3])
    net.input_shape.add().dim.extend([4])
    net.layer.add(name="r", type="ReLU", bottom=["a"], top=["r"])
    up, report = schema.upgrade_net(net)
    assert up.layer[0].type == "Input" and list(up.layer[0].top) == ["a", "b"]
    assert [list(s.dim) for s in up.layer[0].input_param.shape] == [[1, 2, 3], [4]]
    assert not up.input and not up.input_shape
    assert any("Input layer" in n for n in report.notes)


def test_phase_filter_follows_include_exclude_rules():
    pb = schema.pb()
    net = pb.NetParameter()
    net.layer.add(name="train_only", type="ReLU").include.add(phase=pb.TRAIN)
    net.layer.add(name="test_only", type="ReLU").include.add(phase=pb.TEST)
    net.layer.add(name="not_test", type="ReLU").exclude.add(phase=pb.TEST)
    net.layer.add(name="always", type="ReLU")
    net.layer.add(name="staged", type="ReLU").include.add(stage=["deploy"])
    kept = [layer.name for layer in schema.filter_net(net, "TEST").layer]
    assert kept == ["test_only", "always"]


def test_reader_matches_protobuf_parser_above_64mb(tmp_path):
    """A > 64 MB caffemodel (one 17.5M-weight InnerProduct plus small layers): every blob read by the
    zero-copy reader equals what protobuf's ParseFromString decodes."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 17500]))
    n.big = L.InnerProduct(n.data, num_output=1000)
    n.prelu = L.PReLU(n.big, channel_shared=True)  # a 0-d blob
    n.bn = L.BatchNorm(n.prelu)
    proto = tmp_path / "big.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, 5)
    model = tmp_path / "big.caffemodel"
    net.save(str(model))
    assert model.stat().st_size > 64 * 2**20

    ours = schema.read_caffemodel(model)
    ref = schema.pb().NetParameter()
    ref.ParseFromString(model.read_bytes())
    with_blobs = [layer for layer in ref.layer if len(layer.blobs)]
    assert [layer.name for layer in with_blobs] == [n for n in ours.order if ours.layers[n].blobs]
    for layer in with_blobs:
        mine = ours.layers[layer.name]
        assert mine.type == layer.type
        for blob, got in zip(layer.blobs, mine.blobs, strict=True):
            assert got.shape == tuple(blob.shape.dim)
            expected = np.fromiter(blob.data, dtype=np.float32, count=len(blob.data))
            np.testing.assert_array_equal(got.data, expected)
    np.testing.assert_array_equal(ours.layers["big"].blobs[0].data.reshape(1000, 17500),
                                  net.params["big"][0].data)
    assert ours.layers["prelu"].blobs[0].shape == ()


def test_mean_file_is_read(tmp_path):
    pb = schema.pb()
    blob = pb.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = 1, 3, 2, 2
    mean = np.arange(12, dtype=np.float32)
    blob.data.extend(mean.tolist())
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(blob.SerializeToString())
    np.testing.assert_array_equal(schema.read_mean_file(path), mean.reshape(3, 2, 2))
