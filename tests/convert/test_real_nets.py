"""What public Caffe nets broke (issue 23): a net whose only output feeds Silence, deploy nets that keep a
metric fed by an absent `label`, --onnx with all-digit blob names, an input named `label` and a plugin layer
in the middle of the net, --onnx that cannot write model.onnx (exit 1), DeepLab v2's multi-scale test net, and
the layers of forks this Caffe lacks (ROIPooling, Pooling3D, ContinuationIndicator, C3D's VideoData input),
checked against values computed by hand from the forks' published C++ rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from convert_helpers import write_caffemodel
from fcnkit.caffenet.model_folder import load_generated
from fcnkit.caffenet.modules import CaffePool3d, CaffeROIPooling
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.cli.convert import main
from fcnkit.convert.sample_nets import random_caffemodel

pytestmark = pytest.mark.caffe


def _err(capsys) -> str:
    return capsys.readouterr().err


def _net(tmp_path, text: str, name: str = "net"):
    proto = tmp_path / f"{name}.prototxt"
    proto.write_text(text)
    return proto, random_caffemodel(proto, tmp_path / f"{name}.caffemodel")


CONV = ('layer {{ name: "{n}" type: "Convolution" bottom: "{b}" top: "{t}" '
        'convolution_param {{ num_output: {c} kernel_size: 3 pad: 1 }} }}\n')
INPUT = 'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ dim: {d} }} }} }}\n'


# ---------------------------------------------------------------------------- Silence, absent inputs
def test_output_read_only_by_silence_is_kept_and_verifies(tmp_path, capsys):
    """Zhang et al.'s colorization net ends in `Silence` on its result: once a SyntaxError traceback."""
    text = (INPUT.format(n="data_l", d="1 dim: 1 dim: 12 dim: 12") + CONV.format(n="conv", b="data_l", t="conv", c=4)
            + CONV.format(n="class8_ab", b="conv", t="class8_ab", c=2)
            + 'layer { name: "Silence" type: "Silence" bottom: "class8_ab" }\n')
    proto, model = _net(tmp_path, text)
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--verify", "-q"]) == 0, capsys.readouterr()
    text = capsys.readouterr().out
    assert "verify: PASS" in text
    info = json.loads((out / "conversion.json").read_text())
    assert [o["blob"] for o in info["outputs"]] == ["class8_ab"]
    # the backends table: pycaffe, PyTorch and OpenCV dnn (a row that says why, where OpenCV >= 5 has no
    # Caffe importer)
    table = text.split("== backends on one input")[1]
    assert "pycaffe" in table and "PyTorch eager (model.py)" in table and "OpenCV dnn" in table
    torch_row = next(line for line in table.splitlines() if "PyTorch eager" in line)
    assert float(torch_row.split()[3]) <= 1e-4, torch_row


def test_all_outputs_silenced_inputs_is_one_line(tmp_path, capsys):
    text = INPUT.format(n="data", d="1 dim: 1 dim: 4 dim: 4") + 'layer { name: "s" type: "Silence" bottom: "data" }\n'
    proto = tmp_path / "s.prototxt"
    proto.write_text(text)
    model = write_caffemodel(tmp_path / "s.caffemodel", [("x", "ReLU", [])])
    assert main([str(proto), str(model), "-o", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and ("no outputs" in err or "no layers" in err), err


@pytest.mark.parametrize("skip", [False, True])
def test_metric_fed_by_absent_label_is_left_out_with_a_note(tmp_path, capsys, skip):
    text = (INPUT.format(n="data", d="1 dim: 3 dim: 8 dim: 8") + CONV.format(n="fc", b="data", t="fc", c=5)
            + 'layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy" }\n')
    proto = tmp_path / "acc.prototxt"
    proto.write_text(text)
    # Caffe itself cannot build this net (no `label`): the caffemodel comes from the net without the metric
    base = tmp_path / "base.prototxt"
    base.write_text(text.split('layer { name: "accuracy"')[0])
    model = random_caffemodel(base, tmp_path / "acc.caffemodel")
    out = tmp_path / "out"
    args = [str(proto), str(model), "-o", str(out), "-q"] + (["--skip", "accuracy"] if skip else [])
    assert main(args) == 0, _err(capsys)
    info = json.loads((out / "conversion.json").read_text())
    acc = next(layer for layer in info["layers"] if layer["name"] == "accuracy")
    assert acc["kind"] == "skipped" and "['label']" in " ".join(acc["notes"])
    assert [o["blob"] for o in info["outputs"]] == ["fc"]


# ------------------------------------------------------------------------------------------- ONNX
def test_onnx_keeps_caffe_names_digits_and_label(tmp_path, capsys):
    """Nets exported from other frameworks name blobs '123'; FCN's val nets have an input `label`."""
    onnx = pytest.importorskip("onnx")
    text = (INPUT.format(n="data", d="1 dim: 3 dim: 10 dim: 10") + INPUT.format(n="label", d="1 dim: 3 dim: 10 dim: 10")
            + 'layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "label" top: "7" }\n'
            + CONV.format(n="conv", b="7", t="123", c=4))
    proto, model = _net(tmp_path, text)
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--onnx", "--verify", "-q"]) == 0, capsys.readouterr()
    assert "verify: PASS" in capsys.readouterr().out
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input if i.name in ("data", "label")] == ["data", "label"]
    assert [o.name for o in graph.output] == ["123"]


def test_onnx_not_written_is_exit_1_with_the_reason(tmp_path, capsys):
    text = (INPUT.format(n="data", d="1 dim: 2 dim: 8 dim: 8") + INPUT.format(n="rois", d="2 dim: 5")
            + 'layer { name: "roi_pool" type: "ROIPooling" bottom: "data" bottom: "rois" top: "pooled" '
              'roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 1 } }\n')
    proto = tmp_path / "roi.prototxt"
    proto.write_text(text)
    model = write_caffemodel(tmp_path / "roi.caffemodel", [("x", "ReLU", [])])
    assert main([str(proto), str(model), "-o", str(tmp_path / "out"), "--onnx", "-q"]) == 1
    err = _err(capsys)
    assert "model.onnx was not written" in err and "no layer of this net can be expressed in ONNX" in err, err
    assert "Traceback" not in err


def test_plugin_layer_in_the_middle_stays_in_model_onnx(tmp_path, capsys):
    """YOLOv3's Python upsampling layer: the heads after it were dropped from model.onnx."""
    text = (INPUT.format(n="data", d="1 dim: 3 dim: 8 dim: 8") + CONV.format(n="c1", b="data", t="c1", c=4)
            + 'layer { name: "pool" type: "Pooling" bottom: "c1" top: "p" pooling_param { pool: MAX kernel_size: 2 '
              'stride: 2 } }\n'
            + CONV.format(n="head1", b="p", t="head1", c=3)
            + 'layer { name: "up" type: "Python" bottom: "p" top: "up" python_param { module: "caffe_pylayers" '
              'layer: "Upsample2x" } }\n'
            + 'layer { name: "cat" type: "Concat" bottom: "up" bottom: "c1" top: "cat" }\n'
            + CONV.format(n="head2", b="cat", t="head2", c=3))
    proto = tmp_path / "yolo.prototxt"
    proto.write_text(text)
    base = tmp_path / "base.prototxt"  # the same weights; Caffe's side has no Upsample2x layer
    base.write_text(text.replace('type: "Python" bottom: "p" top: "up" python_param { module: "caffe_pylayers" '
                                 'layer: "Upsample2x" }', 'type: "Upsample" bottom: "p" top: "up" '
                                 'upsample_param { scale: 2 }'))
    model = random_caffemodel(base, tmp_path / "yolo.caffemodel")
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--onnx", "--plugin", "torch_pylayers", "-q"]) == 0, \
        _err(capsys)
    info = json.loads((out / "conversion.json").read_text())
    assert info["onnx"]["exported"] and "left_out" not in info["onnx"], info["onnx"]
    assert info["onnx"]["outputs"] == ["head1", "head2"]


# ------------------------------------------------------------------------------------ DeepLab v2
DEEPLAB_MSC = """name: "deeplab_v2_msc_test"
layer { name: "data" type: "ImageSegData" top: "data" top: "label" top: "data_dim" include { phase: TEST }
  transform_param { mirror: false crop_size: 513 mean_value: 104.008 mean_value: 116.669 mean_value: 122.675 }
  image_data_param { root_folder: "/data" source: "list/test.txt" batch_size: 1 label_type: NONE } }
layer { name: "data075" type: "Interp" bottom: "data" top: "data075" interp_param { shrink_factor: 4 zoom_factor: 3 } }
layer { name: "data05" type: "Interp" bottom: "data" top: "data05" interp_param { shrink_factor: 2 } }
""" + "".join(f"""layer {{ name: "conv1{s}" type: "Convolution" bottom: "data{s}" top: "conv1{s}"
  param {{ name: "conv1_w" }} param {{ name: "conv1_b" }} convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 }} }}
layer {{ name: "relu1{s}" type: "ReLU" bottom: "conv1{s}" top: "conv1{s}" }}
layer {{ name: "fc1_c0{s}" type: "Convolution" bottom: "conv1{s}" top: "fc1_c0{s}" param {{ name: "c0_w" }}
  param {{ name: "c0_b" }} convolution_param {{ num_output: 3 kernel_size: 3 pad: 6 dilation: 6 }} }}
layer {{ name: "fc1_c1{s}" type: "Convolution" bottom: "conv1{s}" top: "fc1_c1{s}" param {{ name: "c1_w" }}
  param {{ name: "c1_b" }} convolution_param {{ num_output: 3 kernel_size: 3 pad: 12 dilation: 12 }} }}
layer {{ name: "fc1{s}" type: "Eltwise" bottom: "fc1_c0{s}" bottom: "fc1_c1{s}"
  top: "fc1{s}" eltwise_param {{ operation: SUM }} }}
""" for s in ("", "075", "05")) + """
layer { name: "fc1075_interp" type: "Interp" bottom: "fc1075" bottom: "fc1" top: "fc1075_interp" }
layer { name: "fc105_interp" type: "Interp" bottom: "fc105" bottom: "fc1" top: "fc105_interp" }
layer { name: "fc_fusion" type: "Eltwise" bottom: "fc1" bottom: "fc1075_interp" bottom: "fc105_interp" top: "fc_fusion"
  eltwise_param { operation: MAX } }
layer { name: "fc1_interp" type: "Interp" bottom: "fc_fusion" top: "fc1_interp" interp_param { zoom_factor: 8 } }
layer { name: "fc8_mat" type: "MatWrite" bottom: "fc1_interp" include { phase: TEST }
  mat_write_param { prefix: "features/" source: "list/test_id.txt" strip: 0 period: 1 } }
layer { name: "accuracy" type: "SegAccuracy" bottom: "fc1_interp" bottom: "label" top: "accuracy"
  seg_accuracy_param { ignore_label: 255 } }
layer { name: "silence" type: "Silence" bottom: "label" bottom: "data_dim" }
"""


def test_deeplab_v2_multiscale_test_net_converts_with_input_shape(tmp_path, capsys):
    proto = tmp_path / "test.prototxt"
    proto.write_text(DEEPLAB_MSC)
    rng = np.random.default_rng(0)
    layers = []
    for s in ("", "075", "05"):  # what Caffe saves for a net with shared parameters: every layer's copy
        w1, b1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2, np.zeros(4, np.float32)
        layers.append((f"conv1{s}", "Convolution", [w1, b1]))
        for c in ("c0", "c1"):
            layers.append((f"fc1_{c}{s}", "Convolution", [rng.standard_normal((3, 4, 3, 3)).astype(np.float32) * 0.2,
                                                           np.full(3, 0.1, np.float32)]))
    # shared parameters: every copy holds the first's values
    for k in range(3, len(layers)):
        layers[k] = (layers[k][0], "Convolution", layers[k % 3][2])
    model = write_caffemodel(tmp_path / "train_iter.caffemodel", layers)
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--input-shape", "data=1,3,65,65", "-q"]) == 0, _err(capsys)
    info = json.loads((out / "conversion.json").read_text())
    assert [o["blob"] for o in info["outputs"]] == ["fc1_interp"]
    kinds = {layer["name"]: layer["kind"] for layer in info["layers"]}
    assert kinds["fc8_mat"] == kinds["accuracy"] == kinds["silence"] == "skipped"
    net = load_generated(out / "model.py").load_model()
    x = torch.from_numpy(rng.standard_normal((1, 3, 65, 65)).astype(np.float32))
    with torch.inference_mode():
        y = net(x)
        conv = torch.nn.functional.conv2d
        w1, b1 = (torch.from_numpy(a) for a in layers[0][2])
        h = torch.relu(conv(x, w1, b1, padding=1))
        full = sum(conv(h, *(torch.from_numpy(a) for a in layers[k][2]), padding=6 * k, dilation=6 * k)
                   for k in (1, 2))
    assert tuple(y.shape) == (1, 3, 8 * 65 - 7, 8 * 65 - 7)  # DeepLab's zoom: (65 - 1) * 8 + 1
    # max fusion: never below the full-scale branch, which Interp to its own size leaves unchanged
    assert torch.all(net.fc_fusion([full, full - 1, full - 2]) == full)


# ------------------------------------------------------------------------------------- fork layers
def _roi_pool_reference(x, rois, ph, pw, scale):
    """roi_pooling_layer.cpp, loop by loop."""
    out = np.zeros((len(rois), x.shape[1], ph, pw), np.float32)
    h, w = x.shape[2:]
    for r, (b, *box) in enumerate(rois):
        sx, sy, ex, ey = (int(math.floor(abs(v * scale) + 0.5) * (1 if v >= 0 else -1)) for v in box)
        rh, rw = max(ey - sy + 1, 1), max(ex - sx + 1, 1)
        bh, bw = np.float32(rh) / np.float32(ph), np.float32(rw) / np.float32(pw)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(int(math.floor(i * bh)) + sy, 0), h)
                he = min(max(int(math.ceil((i + 1) * bh)) + sy, 0), h)
                ws = min(max(int(math.floor(j * bw)) + sx, 0), w)
                we = min(max(int(math.ceil((j + 1) * bw)) + sx, 0), w)
                if he > hs and we > ws:
                    out[r, :, i, j] = x[int(b), :, hs:he, ws:we].max(axis=(1, 2))
    return out


def test_roi_pooling_follows_py_faster_rcnn():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    rois = np.array([[0, 0, 0, 15, 15], [1, 4.4, 2.5, 40, 33], [0, -10, -10, 3, 2], [1, 30, 30, 90, 90],
                     [0, 8, 8, 8, 8]], np.float32)
    got = CaffeROIPooling(3, 2, 0.25)(torch.from_numpy(x), torch.from_numpy(rois)).numpy()
    np.testing.assert_array_equal(got, _roi_pool_reference(x, rois, 3, 2, 0.25))
    # by hand: RoI 4 is the single cell (2, 2) of image 0 (8 * 0.25), so every bin is that value
    np.testing.assert_array_equal(got[4], np.broadcast_to(x[0, :, 2:3, 2:3], (3, 3, 2)))
    # RoI 3 starts at cell (8, 8) (round(7.5) = 8, half away from zero) and is clipped to the 9 x 11 map
    assert got[3, 0, 0, 0] == x[1, 0, 8:9, 8:11].max()


@pytest.mark.parametrize("method,pad", [("max", 0), ("ave", 0), ("ave", 1), ("ave", 2)])
def test_pooling3d_follows_c3d(method, pad):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 7, 6)).astype(np.float32)
    kd, k, ts, s = 2, 3, 2, 2
    got = CaffePool3d(method, (kd, k, k), (ts, s, s), pad)(torch.from_numpy(x)).numpy()
    length, h, w = x.shape[2:]
    ol, oh, ow = (math.ceil((length - kd) / ts) + 1, math.ceil((h + 2 * pad - k) / s) + 1,
                  math.ceil((w + 2 * pad - k) / s) + 1)
    ref = np.zeros((1, 2, ol, oh, ow), np.float32)
    for pl in range(ol):  # pool3d_layer.cpp
        for i in range(oh):
            for j in range(ow):
                l0, h0, w0 = pl * ts, i * s - pad, j * s - pad
                l1, h1, w1 = min(l0 + kd, length), min(h0 + k, h + pad), min(w0 + k, w + pad)
                size = (h1 - h0) * (w1 - w0) * (l1 - l0)
                win = x[0, :, l0:l1, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
                ref[0, :, pl, i, j] = win.max(axis=(1, 2, 3)) if method == "max" else win.sum(axis=(1, 2, 3)) / size
    assert got.shape == ref.shape and got.shape[2] == 3
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_crnn_with_continuation_indicator_equals_the_net_with_cont_input(tmp_path, capsys):
    """CRNN ports make LSTM's `cont` with ContinuationIndicator (0 at t = 0, then 1); the same net with `cont`
    as an input (what this Caffe runs) gives the same output when fed that indicator."""
    caffe = load_caffe()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[6, 2, 5]))
    n.cont = L.Input(shape=dict(dim=[6, 2]))
    n.lstm1 = L.LSTM(n.data, n.cont, recurrent_param=dict(num_output=4, weight_filler=dict(type="gaussian", std=0.5)))
    text = str(n.to_proto())
    with_input = tmp_path / "cont_input.prototxt"
    with_input.write_text(text)
    model = random_caffemodel(with_input, tmp_path / "crnn.caffemodel")
    with_ci = tmp_path / "indicator.prototxt"
    with_ci.write_text(text.split('layer {\n  name: "cont"')[0] + 'layer { name: "indicator" type: '
                       '"ContinuationIndicator" bottom: "data" top: "cont" continuation_indicator_param '
                       '{ time_step: 6 batch_size: 2 } }\n' + 'layer {' + text.split('layer {')[-1])
    for proto, out in ((with_input, "a"), (with_ci, "b")):
        assert main([str(proto), str(model), "-o", str(tmp_path / out), "--onnx", "-q"]) == 0, _err(capsys)
    a = load_generated(tmp_path / "a" / "model.py").load_model()
    b = load_generated(tmp_path / "b" / "model.py").load_model()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 2, 5)).astype(np.float32))
    cont = torch.ones(6, 2)
    cont[0] = 0
    with torch.inference_mode():
        torch.testing.assert_close(b(x), a(x, cont), rtol=0, atol=0)
    # and the indicator net against real Caffe running the cont-input net on that indicator
    net = caffe.Net(str(with_input), str(model), caffe.TEST)
    net.blobs["data"].data[...] = x.numpy()
    net.blobs["cont"].data[...] = cont.numpy()
    ref = net.forward()["lstm1"]
    with torch.inference_mode():
        np.testing.assert_allclose(b(x).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_c3d_video_data_layer_becomes_a_5d_input(tmp_path, capsys):
    text = ('name: "c3d"\nlayer { name: "data" type: "VideoData" top: "data" top: "label" image_data_param { '
            'source: "list.txt" use_image: false mean_file: "mean.binaryproto" batch_size: 2 crop_size: 16 '
            'new_height: 20 new_width: 24 new_length: 4 shuffle: false } }\n'
            'layer { name: "conv1a" type: "Convolution3D" bottom: "data" top: "conv1a" convolution_param { '
            'num_output: 3 kernel_size: 3 kernel_depth: 3 pad: 1 temporal_pad: 1 } }\n'
            'layer { name: "pool1" type: "Pooling3D" bottom: "conv1a" top: "pool1" pooling_param { pool: MAX '
            'kernel_size: 2 kernel_depth: 1 stride: 2 temporal_stride: 1 } }\n')
    proto = tmp_path / "c3d.prototxt"
    proto.write_text(text)
    rng = np.random.default_rng(0)
    model = write_caffemodel(tmp_path / "c3d.caffemodel", [("conv1a", "Convolution3D", [
        rng.standard_normal((3, 3, 3, 3, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)])])
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "-q"]) == 0, _err(capsys)
    info = json.loads((out / "conversion.json").read_text())
    assert info["inputs"][0]["shape"] == [2, 3, 4, 16, 16]
    assert info["outputs"] == [{"blob": "pool1", "position": 0, "shape": [2, 3, 4, 8, 8]}]
    # --verify would hand Caffe a prototxt it aborts on: refused in one line, before anything is written
    assert main([str(proto), str(model), "-o", str(tmp_path / "v"), "--verify", "-q"]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and "cannot parse" in err and "without --verify" in err, err
    assert not (tmp_path / "v").exists()


FASTER_RCNN = """name: "faster_rcnn_test"
input: "data"
input_shape { dim: 1 dim: 3 dim: 32 dim: 48 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "pool1" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "rpn_conv/3x3" type: "Convolution" bottom: "pool2" top: "rpn/output"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "rpn_relu/3x3" type: "ReLU" bottom: "rpn/output" top: "rpn/output" }
layer { name: "rpn_cls_score" type: "Convolution" bottom: "rpn/output" top: "rpn_cls_score"
  convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "rpn_bbox_pred" type: "Convolution" bottom: "rpn/output" top: "rpn_bbox_pred"
  convolution_param { num_output: 12 kernel_size: 1 } }
layer { name: "rpn_cls_score_reshape" type: "Reshape" bottom: "rpn_cls_score" top: "rpn_cls_score_reshape"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }
layer { name: "rpn_cls_prob" type: "Softmax" bottom: "rpn_cls_score_reshape" top: "rpn_cls_prob" }
layer { name: "rpn_cls_prob_reshape" type: "Reshape" bottom: "rpn_cls_prob" top: "rpn_cls_prob_reshape"
  reshape_param { shape { dim: 0 dim: 6 dim: -1 dim: 0 } } }
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info"
  top: "rois" python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "'feat_stride': 4" } }
layer { name: "roi_pool5" type: "ROIPooling" bottom: "pool2" bottom: "rois" top: "pool5"
  roi_pooling_param { pooled_w: 3 pooled_h: 3 spatial_scale: 0.25 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6" inner_product_param { num_output: 16 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "cls_score" type: "InnerProduct" bottom: "fc6" top: "cls_score" inner_product_param { num_output: 3 } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "fc6" top: "bbox_pred" inner_product_param { num_output: 12 } }
layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" top: "cls_prob" }
"""


def test_faster_rcnn_test_net_with_python_proposal_plugin_and_roi_pooling(tmp_path, capsys):
    """py-faster-rcnn's test net pattern end to end: the Python proposal layer through --plugin, ROIPooling on
    its RoIs, the classifier after it; model.onnx holds the backbone and RPN heads."""
    from fcnkit.convert.verify import torch_layer_outputs

    proto = tmp_path / "test.prototxt"
    proto.write_text(FASTER_RCNN)
    rng = np.random.default_rng(5)

    def blobs(*shapes):
        return [(rng.standard_normal(s) * 0.3).astype(np.float32) for s in shapes]

    model = write_caffemodel(tmp_path / "frcnn.caffemodel", [
        ("conv1", "Convolution", blobs((8, 3, 3, 3), (8,))), ("rpn_conv/3x3", "Convolution", blobs((8, 8, 3, 3), (8,))),
        ("rpn_cls_score", "Convolution", blobs((6, 8, 1, 1), (6,))),
        ("rpn_bbox_pred", "Convolution", blobs((12, 8, 1, 1), (12,))),
        ("fc6", "InnerProduct", blobs((16, 72), (16,))), ("cls_score", "InnerProduct", blobs((3, 16), (3,))),
        ("bbox_pred", "InnerProduct", blobs((12, 16), (12,)))])
    out = tmp_path / "out"
    assert main([str(proto), str(model), "-o", str(out), "--plugin", "torch_pylayers", "--onnx", "-q"]) == 0, \
        _err(capsys)
    info = json.loads((out / "conversion.json").read_text())
    assert info["plugins"] == {"proposal": "torch_pylayers.ProposalLayer"}
    assert set(info["onnx"]["left_out"]) == {"proposal", "roi_pool5", "fc6", "relu6", "cls_score", "bbox_pred",
                                             "cls_prob"}
    assert {"rpn_cls_prob_reshape", "rpn_bbox_pred", "pool2"} <= set(info["onnx"]["outputs"])
    net = load_generated(out / "model.py").load_model()
    feed = {"data": (rng.standard_normal((1, 3, 32, 48)) * 50).astype(np.float32),
            "im_info": np.array([[32, 48, 1]], np.float32)}
    outs = torch_layer_outputs(net, info, feed)
    rois, pool5 = outs["proposal"][0], outs["roi_pool5"][0]
    assert rois.shape[1] == 5 and pool5.shape == (rois.shape[0], 8, 3, 3)
    np.testing.assert_array_equal(pool5, _roi_pool_reference(outs["pool2"][0], rois, 3, 3, 0.25))
    with torch.inference_mode():
        bbox, prob = net(*(torch.from_numpy(feed[k]) for k in ("data", "im_info")))
    assert bbox.shape == (rois.shape[0], 12) and torch.allclose(prob.sum(1), torch.ones(rois.shape[0]))


def test_detection_top_k_list_is_judged_on_its_raw_heads():
    """NMS/top-k reorder boxes whose scores tie within float32: a DetectionOutput top that differs while the
    heads it reads agree is reported, not failed; if a head differs too, it fails."""
    from fcnkit.convert.verify import BlobStat, SizeReport, judge_on_raw_heads

    info = {"layers": [{"name": "detection_out", "type": "DetectionOutput", "kind": "module",
                        "bottoms": ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"], "tops": ["detection_out"]}]}
    for head_diff, ok in ((1e-6, True), (1e-2, False)):
        rep = SizeReport("s", ["c"], {b: BlobStat(max_rel=head_diff if b == "mbox_loc" else 1e-6)
                                      for b in ("mbox_loc", "mbox_conf_flatten", "mbox_priorbox")})
        rep.stats["detection_out"] = BlobStat(max_rel=0.9)
        judge_on_raw_heads(rep, info, 1e-4)
        assert rep.ok(1e-4) is ok
        assert bool(rep.stats["detection_out"].ranked) is ok
