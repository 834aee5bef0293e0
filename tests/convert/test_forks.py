"""Layers this Caffe cannot run, checked against values computed by hand (numpy loops written from each rule's
published C++ source, cited per test), and fork prototxts with the layers' real-world field spellings:

* fork-only layers: Interp (DeepLab v2 / PSPNet), BN (yjxiong/PSPNet and SegNet), ShuffleChannel
  (ShuffleNet), ConvolutionDepthwise (MobileNet), Axpy (SENet), SegNet's two-input Upsample;
* this Caffe's layers without a CPU forward: STOCHASTIC pooling at test time, PSROIPooling (R-FCN).
"""

from __future__ import annotations

import numpy as np
import pytest
from convert_helpers import assert_blob_close, convert_fork_net
from fcnkit.caffenet.pycaffe import load_caffe

FORK_TYPES = ("Interp", "BN", "ShuffleChannel", "ConvolutionDepthwise", "DepthwiseConvolution", "Axpy",
              # checked in test_real_nets.py (C3D also against real Caffe in test_zoo.py)
              "ROIPooling", "Convolution3D", "Pooling3D", "ContinuationIndicator")
RULE_TYPES = ("PSROIPooling",)  # and Pooling with pool: STOCHASTIC
F32 = np.float32


def _input(name: str, shape) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------------- Interp
def interp_reference(x: np.ndarray, out_h: int, out_w: int, pad_beg: int = 0, pad_end: int = 0) -> np.ndarray:
    """deeplab-public-ver2 src/caffe/layers/interp_layer.cpp + util/interp.cpp (caffe_cpu_interp2): crop
    [-pad_beg, -pad_beg + size + pad_beg + pad_end), copy if the size is unchanged, else rheight =
    (h1 - 1) / (h2 - 1) in float; h1r = rheight * h2; h1 = int(h1r); h1p = 1 if h1 < h1_size - 1;
    lambda = h1r - h1; the same along w; blend the four neighbours."""
    h_eff = x.shape[2] + pad_beg + pad_end
    w_eff = x.shape[3] + pad_beg + pad_end
    src = x[:, :, -pad_beg:-pad_beg + h_eff, -pad_beg:-pad_beg + w_eff]
    if (out_h, out_w) == (h_eff, w_eff):
        return src.copy()
    rh = F32(h_eff - 1) / F32(out_h - 1) if out_h > 1 else F32(0)
    rw = F32(w_eff - 1) / F32(out_w - 1) if out_w > 1 else F32(0)
    out = np.zeros(x.shape[:2] + (out_h, out_w), np.float32)
    for h2 in range(out_h):
        h1r = F32(rh * F32(h2))
        h1 = int(h1r)
        h1p = 1 if h1 < h_eff - 1 else 0
        lh1 = F32(h1r - h1)
        lh0 = F32(1) - lh1
        for w2 in range(out_w):
            w1r = F32(rw * F32(w2))
            w1 = int(w1r)
            w1p = 1 if w1 < w_eff - 1 else 0
            lw1 = F32(w1r - w1)
            lw0 = F32(1) - lw1
            out[:, :, h2, w2] = (lh0 * (lw0 * src[:, :, h1, w1] + lw1 * src[:, :, h1, w1 + w1p])
                                 + lh1 * (lw0 * src[:, :, h1 + h1p, w1] + lw1 * src[:, :, h1 + h1p, w1 + w1p]))
    return out


def interp_size(h: int, zoom: int | None, shrink: int | None, pad_beg: int = 0, pad_end: int = 0) -> int:
    """interp_layer.cpp Reshape: shrink first ((n - 1) / shrink + 1), then zoom (n + (n - 1) * (zoom - 1))."""
    n = h + pad_beg + pad_end
    if shrink:
        n = (n - 1) // shrink + 1
    if zoom:
        n = n + (n - 1) * (zoom - 1)
    return n


@pytest.mark.parametrize("param,pads", [
    ("zoom_factor: 3", (0, 0)),
    ("shrink_factor: 2", (0, 0)),
    ("shrink_factor: 2 zoom_factor: 3", (0, 0)),
    ("height: 7 width: 16", (0, 0)),
    ("zoom_factor: 2 pad_beg: -1 pad_end: -2", (-1, -2)),
])
def test_interp_matches_deeplab_rule(tmp_path, param, pads):
    x = _rng(1).standard_normal((2, 3, 9, 11)).astype(np.float32)
    proto = _input("data", x.shape) + (
        f'layer {{ name: "interp" type: "Interp" bottom: "data" top: "interp" interp_param {{ {param} }} }}\n')
    info, tb = convert_fork_net(tmp_path, proto, [("interp", "Interp", [])], {"data": x})
    words = param.split()
    values = {words[i].rstrip(":"): int(words[i + 1]) for i in range(0, len(words), 2)}
    if "height" in values:
        oh, ow = values["height"], values["width"]
    else:
        oh = interp_size(9, values.get("zoom_factor"), values.get("shrink_factor"), *pads)
        ow = interp_size(11, values.get("zoom_factor"), values.get("shrink_factor"), *pads)
    ref = interp_reference(x, oh, ow, *pads)
    assert tb["interp"].shape == ref.shape
    assert_blob_close("interp", ref, tb["interp"], 1e-5)
    # fully convolutional: another input size follows the same rule
    import torch
    from fcnkit.convert.convert import load_generated

    x2 = _rng(2).standard_normal((1, 3, 14, 6)).astype(np.float32)
    net = load_generated(tmp_path / "out" / "model.py").load_model()
    with torch.inference_mode():
        got = net(torch.from_numpy(x2)).numpy()
    if "height" not in values:
        oh = interp_size(14, values.get("zoom_factor"), values.get("shrink_factor"), *pads)
        ow = interp_size(6, values.get("zoom_factor"), values.get("shrink_factor"), *pads)
    assert_blob_close("interp@14x6", interp_reference(x2, oh, ow, *pads), got, 1e-5)


def test_interp_to_the_size_of_a_second_bottom(tmp_path):
    x = _rng(3).standard_normal((1, 2, 5, 6)).astype(np.float32)
    ref_blob = np.zeros((1, 1, 13, 8), np.float32)
    proto = _input("data", x.shape) + _input("like", ref_blob.shape) + (
        'layer { name: "interp" type: "Interp" bottom: "data" bottom: "like" top: "interp" }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("interp", "Interp", [])], {"data": x, "like": ref_blob})
    assert_blob_close("interp", interp_reference(x, 13, 8), tb["interp"], 1e-5)


# ---------------------------------------------------------------------------------------------------- BN
def test_bn_of_yjxiong_caffe_four_blobs(tmp_path):
    """yjxiong/caffe bn_layer.cpp (PSPNet; in this sdist, not registered), TEST phase: top = slope *
    (x - mean) * (var + eps)^-1/2 + bias, all blobs (1, C, 1, 1)."""
    rng = _rng(4)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    slope, bias, mean = (rng.standard_normal((1, 4, 1, 1)).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, (1, 4, 1, 1)).astype(np.float32)
    proto = _input("data", x.shape) + (
        'layer { name: "bn" type: "BN" bottom: "data" top: "bn" bn_param { eps: 0.001 frozen: true '
        'slope_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0 } } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("bn", "BN", [slope, bias, mean, var])], {"data": x})
    ref = slope * (x - mean) / np.sqrt(var + F32(0.001)) + bias
    assert_blob_close("bn", ref, tb["bn"], 1e-5)


@pytest.mark.parametrize("mode", ["INFERENCE", "LEARN"])
def test_bn_of_segnet_two_blobs(tmp_path, mode):
    """alexgkendall/caffe-segnet bn_layer.cpp: INFERENCE top = scale * x + shift; LEARN normalises by the
    batch's mean and E(x^2) - E(x)^2 (over N, H, W) with var_eps_ = 1e-9, then scale and shift."""
    rng = _rng(5)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32) * 2 + 1
    scale, shift = (rng.standard_normal((1, 4, 1, 1)).astype(np.float32) for _ in range(2))
    proto = _input("data", x.shape) + (
        f'layer {{ name: "bn" type: "BN" bottom: "data" top: "bn" bn_param {{ bn_mode: {mode} '
        'scale_filler { type: "constant" value: 1 } shift_filler { type: "constant" value: 0.001 } } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("bn", "BN", [scale, shift])], {"data": x})
    if mode == "INFERENCE":
        ref = scale * x + shift
    else:
        xd = x.astype(np.float64)
        mean = xd.mean(axis=(0, 2, 3), keepdims=True)
        var = (xd * xd).mean(axis=(0, 2, 3), keepdims=True) - mean * mean
        ref = scale * (xd - mean) / np.sqrt(var + 1e-9) + shift
    assert_blob_close("bn", ref, tb["bn"], 1e-5)


# ------------------------------------------------------------------------------------ ShuffleChannel / Axpy
def test_shuffle_channel_matches_shufflenet_rule(tmp_path):
    """farmingyard/ShuffleNet shuffle_channel_layer.cpp Resize_cpu: with group_row = group and
    group_column = C / group, input channel i * group_column + j is copied to output channel
    j * group_row + i."""
    x = _rng(6).standard_normal((2, 12, 3, 4)).astype(np.float32)
    proto = _input("data", x.shape) + (
        'layer { name: "shuffle" type: "ShuffleChannel" bottom: "data" top: "shuffle" '
        'shuffle_channel_param { group: 3 } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("shuffle", "ShuffleChannel", [])], {"data": x})
    ref = np.empty_like(x)
    group, cols = 3, 12 // 3
    for i in range(group):
        for j in range(cols):
            ref[:, j * group + i] = x[:, i * cols + j]
    np.testing.assert_array_equal(tb["shuffle"], ref)


def test_axpy_matches_senet_rule(tmp_path):
    """hujie-frank/SENet axpy_layer.cpp: top = copy of bottom[2], then per (n, c) caffe_axpy(a[n, c],
    x[n, c], top[n, c]), i.e. a * x + y with a (N, C, 1, 1)."""
    rng = _rng(7)
    a = rng.standard_normal((2, 5, 1, 1)).astype(np.float32)
    x, y = (rng.standard_normal((2, 5, 4, 3)).astype(np.float32) for _ in range(2))
    proto = _input("a", a.shape) + _input("x", x.shape) + _input("y", y.shape) + (
        'layer { name: "axpy" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "out" }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("axpy", "Axpy", [])], {"a": a, "x": x, "y": y})
    ref = np.empty_like(y)
    for n in range(2):
        for c in range(5):
            ref[n, c] = a[n, c, 0, 0] * x[n, c] + y[n, c]
    assert_blob_close("out", ref, tb["out"], 1e-6)


# ------------------------------------------------------------------------------------ depthwise convolution
@pytest.mark.parametrize("type_name", ["ConvolutionDepthwise", "DepthwiseConvolution"])
def test_depthwise_convolution_matches_mobilenet_rule(tmp_path, type_name):
    """yonghenglh6/DepthwiseConvolution conv_dw_layer.cpp Forward_cpu: weight (C, 1, kh, kw), output channel c
    sums weight[c] over input channel c at h * stride - pad + kh * dilation (skipping positions outside),
    plus bias[c]; floor output size. num_output/group do not matter."""
    rng = _rng(8)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    proto = _input("data", x.shape) + (
        f'layer {{ name: "dw" type: "{type_name}" bottom: "data" top: "dw" convolution_param {{ num_output: 4 '
        'group: 4 kernel_size: 3 stride: 2 pad: 1 dilation: 1 } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("dw", type_name, [w, b])], {"data": x})
    oh, ow = (9 + 2 - 3) // 2 + 1, (8 + 2 - 3) // 2 + 1
    ref = np.zeros((2, 4, oh, ow), np.float64)
    for c in range(4):
        for h in range(oh):
            for v in range(ow):
                for i in range(3):
                    for j in range(3):
                        hi, wi = h * 2 - 1 + i, v * 2 - 1 + j
                        if 0 <= hi < 9 and 0 <= wi < 8:
                            ref[:, c, h, v] += w[c, 0, i, j] * x[:, c, hi, wi]
        ref[:, c] += b[c]
    assert_blob_close("dw", ref.astype(np.float32), tb["dw"], 1e-5)


# ----------------------------------------------------------------------- SegNet: pooling mask + Upsample
@pytest.mark.caffe
def test_segnet_upsample_and_bn_equal_real_caffe_maxunpool_and_scale(tmp_path):
    """SegNet's decoder in its fork's spelling (Upsample with the pooling mask as a second bottom,
    upsample_param { scale: 2 } and pad_out_h; BN in INFERENCE mode) converts to the same numbers real Caffe
    computes for the equivalent layers it has (MaxUnPool to the same size, Scale with bias)."""
    caffe = load_caffe()
    rng = _rng(9)
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    scale, shift = rng.standard_normal((1, 3, 1, 1)).astype(np.float32), rng.standard_normal((1, 3, 1, 1)).astype(
        np.float32)
    head = _input("data", x.shape) + (
        'layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1" top: "pool1_mask" '
        'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
    fork = head + (
        'layer { name: "upsample1" type: "Upsample" bottom: "pool1" bottom: "pool1_mask" top: "up1" '
        'upsample_param { scale: 2 pad_out_h: true } }\n'
        'layer { name: "bn1" type: "BN" bottom: "up1" top: "up1" bn_param { bn_mode: INFERENCE } }\n')
    info, tb = convert_fork_net(tmp_path / "fork", fork, [("bn1", "BN", [scale, shift])], {"data": x})
    assert tb["up1"].shape == (2, 3, 9, 10)  # 5 * 2 - 1 rows (pad_out_h), 5 * 2 columns
    plain = head + (
        'layer { name: "upsample1" type: "MaxUnPool" bottom: "pool1" bottom: "pool1_mask" top: "up1" '
        'max_unpool_param { dst_h: 9 dst_w: 10 } }\n'
        'layer { name: "bn1" type: "Scale" bottom: "up1" top: "up1" scale_param { bias_term: true } }\n')
    (tmp_path / "plain.prototxt").write_text(plain)
    net = caffe.Net(str(tmp_path / "plain.prototxt"), caffe.TEST)
    net.params["bn1"][0].data[...] = scale.reshape(3)
    net.params["bn1"][1].data[...] = shift.reshape(3)
    net.blobs["data"].data[...] = x
    net.forward()
    for blob in ("pool1", "pool1_mask", "up1"):
        assert_blob_close(blob, net.blobs[blob].data, tb[blob], 1e-6)
    # and by hand: every pooled maximum lands at its mask position, zeros elsewhere
    up = tb["up1"].reshape(2, 3, -1)
    mask = tb["pool1_mask"].reshape(2, 3, -1).astype(int)
    pooled = tb["pool1"].reshape(2, 3, -1)
    for n in range(2):
        for c in range(3):
            expect = np.zeros(90, np.float32)
            expect[mask[n, c]] = pooled[n, c]
            np.testing.assert_allclose(up[n, c], scale[0, c, 0, 0] * expect + shift[0, c, 0, 0], rtol=1e-6)


# ---------------------------------------------------------------------- this Caffe's GPU-only forwards
def stochastic_reference(x: np.ndarray, k: int, s: int, out_h: int, out_w: int) -> np.ndarray:
    """pooling_layer.cu StoPoolForwardTest: window [ph * stride, min(ph * stride + kernel, H)) (no padding);
    cumsum starts at FLT_MIN; top = sum(x^2) / cumsum."""
    out = np.zeros(x.shape[:2] + (out_h, out_w), np.float32)
    for ph in range(out_h):
        for pw in range(out_w):
            win = x[:, :, ph * s:min(ph * s + k, x.shape[2]), pw * s:min(pw * s + k, x.shape[3])].astype(np.float64)
            out[:, :, ph, pw] = (win * win).sum(axis=(2, 3)) / (np.finfo(np.float32).tiny + win.sum(axis=(2, 3)))
    return out


def test_stochastic_pooling_uses_caffes_test_phase_rule(tmp_path):
    x = _rng(10).uniform(0.1, 2.0, (2, 3, 11, 8)).astype(np.float32)  # stochastic pooling expects x >= 0
    proto = _input("data", x.shape) + (
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
        'pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("pool", "Pooling", [])], {"data": x})
    oh, ow = -(-(11 - 3) // 2) + 1, -(-(8 - 3) // 2) + 1  # Caffe's ceil size rule
    assert_blob_close("pool", stochastic_reference(x, 3, 2, oh, ow), tb["pool"], 1e-5)
    assert any("StoPoolForwardTest" in note for layer in info["layers"] for note in layer.get("notes", []))


def _c_round(v: float) -> float:
    return float(np.sign(v) * np.floor(abs(v) + 0.5))


def psroi_reference(x: np.ndarray, rois: np.ndarray, scale: float, dim: int, g: int) -> np.ndarray:
    """psroi_pooling_layer.cu PSROIPoolingForward (R-FCN): roi corners rounded (C round), end + 1, times
    spatial_scale; roi size at least 0.1; bin h/w = size / group; hstart = floor(ph * bin_h + start), hend =
    ceil((ph + 1) * bin_h + start), clipped to [0, H]; channel (ctop * g + ph) * g + pw; mean over the bin, 0
    when empty."""
    out = np.zeros((len(rois), dim, g, g), np.float32)
    for n, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh = F32(_c_round(x1)) * F32(scale), F32(_c_round(y1)) * F32(scale)
        ew, eh = F32(_c_round(x2) + 1) * F32(scale), F32(_c_round(y2) + 1) * F32(scale)
        bw, bh = max(ew - sw, F32(0.1)) / F32(g), max(eh - sh, F32(0.1)) / F32(g)
        for ctop in range(dim):
            for ph in range(g):
                for pw in range(g):
                    hs = min(max(int(np.floor(F32(ph) * bh + sh)), 0), x.shape[2])
                    he = min(max(int(np.ceil(F32(ph + 1) * bh + sh)), 0), x.shape[2])
                    ws = min(max(int(np.floor(F32(pw) * bw + sw)), 0), x.shape[3])
                    we = min(max(int(np.ceil(F32(pw + 1) * bw + sw)), 0), x.shape[3])
                    c = (ctop * g + ph) * g + pw
                    if he > hs and we > ws:
                        out[n, ctop, ph, pw] = x[int(b), c, hs:he, ws:we].astype(np.float64).mean()
    return out


def test_psroi_pooling_matches_rfcn_kernel(tmp_path):
    rng = _rng(11)
    x = rng.standard_normal((2, 2 * 3 * 3, 10, 12)).astype(np.float32)
    rois = np.array([[0, 3.5, 2.2, 30.4, 25.0], [1, 0, 0, 47.6, 39.5], [1, 20.5, 30.2, 21.0, 31.0],
                     [0, -8.0, -5.0, 12.0, 9.4]], np.float32)
    proto = _input("data", x.shape) + _input("rois", rois.shape) + (
        'layer { name: "psroi" type: "PSROIPooling" bottom: "data" bottom: "rois" top: "psroi" '
        'psroi_pooling_param { spatial_scale: 0.25 output_dim: 2 group_size: 3 } }\n')
    info, tb = convert_fork_net(tmp_path, proto, [("psroi", "PSROIPooling", [])], {"data": x, "rois": rois})
    assert_blob_close("psroi", psroi_reference(x, rois, 0.25, 2, 3), tb["psroi"], 1e-5)


# ------------------------------------------------------------------------------------- forks' data layers
@pytest.mark.parametrize("data_layer", [
    'layer { name: "data" type: "DenseImageData" top: "data" top: "label" '
    'dense_image_data_param { source: "train.txt" batch_size: 4 shuffle: true } }',
    'layer { name: "data" type: "ImageSegData" top: "data" top: "label" top: "data_dim" '
    'image_data_param { source: "list.txt" batch_size: 1 root_folder: "img/" } '
    'transform_param { mean_value: 104.008 mean_value: 116.669 mean_value: 122.675 crop_size: 9 mirror: true } }',
])
def test_fork_data_layers_become_inputs(tmp_path, data_layer):
    """SegNet's DenseImageData and DeepLab's ImageSegData become model inputs like Caffe's Data layer."""
    rng = _rng(12)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    proto = data_layer + '\nlayer { name: "conv" type: "Convolution" bottom: "data" top: "conv" ' \
        'convolution_param { num_output: 2 kernel_size: 3 bias_term: false } }\n'
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    info, tb = convert_fork_net(tmp_path, proto, [("conv", "Convolution", [w])], {"data": x},
                                input_shapes={"data": (1, 3, 9, 9)})
    assert [i["blob"] for i in info["inputs"]] == ["data"]
    assert [o["blob"] for o in info["outputs"]] == ["conv"]
