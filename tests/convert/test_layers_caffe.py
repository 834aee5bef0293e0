"""Per-layer parity for the layer types this Caffe registers beyond the classic BVLC set (brocolli/SSD
extras, recurrent, detection, the MAX-pooling mask top...): tiny nets with random weights, run in real Caffe
and in the generated module; every blob must agree to 1e-4 of its max magnitude. Also: every compute layer
type `caffe.layer_type_list()` registers is converted and has a parity case here or in
tests/test_convert_layers.py."""

from __future__ import annotations

import numpy as np
import pytest
from convert_helpers import Case, assign_tops, expect_shape, run_table_case
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.caffenet.registry import INPUT_TYPES, LAYERS, TRAINING_ONLY

pytestmark = pytest.mark.caffe

X = (2, 3, 11, 13)

# Registered by this Caffe but not compute layers, and why they are left out of the module:
NOT_COMPUTE = {
    # data layers: become model inputs
    "AnnotatedData": "input", "Data": "input", "DummyData": "input", "HDF5Data": "input", "ImageData": "input",
    "Input": "input", "MemoryData": "input", "VideoData": "input", "WindowData": "input",
    # losses and evaluation: training only
    "ContrastiveLoss": "loss", "EuclideanLoss": "loss", "HingeLoss": "loss", "InfogainLoss": "loss",
    "MultiBoxLoss": "loss", "MultinomialLogisticLoss": "loss", "SigmoidCrossEntropyLoss": "loss",
    "SmoothL1Loss": "loss", "SoftmaxWithLoss": "loss", "Accuracy": "evaluation", "DetectionEvaluate": "evaluation",
    # no output: Silence swallows its bottoms, HDF5Output writes them to a file
    "Silence": "no output", "HDF5Output": "no output (writes a file)",
}


def _set(**blobs):
    """fill(net): set named layers' blobs with fn(shape) -> array."""
    def fill(net):
        for key, fn in blobs.items():
            layer, index = key.rsplit("_", 1)
            b = net.params[layer][int(index)]
            b.data[...] = fn(b.data.shape)
    return fill


def _feed(**makers):
    """feed(rng, shapes): per input a function (rng, shape) -> array; random normal otherwise."""
    def feed(rng, inputs):
        return {k: (makers[k](rng, s) if k in makers else rng.standard_normal(s)).astype(np.float32)
                for k, s in inputs.items()}
    return feed


def _detections_found(blob, at_least):
    def check(info, cb, tb):
        rows = cb[blob].reshape(-1, 7)
        assert (rows[:, 1] >= 0).sum() >= at_least, rows  # real detections, not the "none" row
    return check


def _pool(**kw):
    def build(n, L, P):
        n.pool, n.mask = L.Pooling(n.data, ntop=2, **kw)
    return build


def _unpool(pool_kw, dst):
    def build(n, L, P):
        n.pool, n.mask = L.Pooling(n.data, ntop=2, pooling_param=dict(pool=0, **pool_kw))
        n.up = L.MaxUnPool(n.pool, n.mask, max_unpool_param=dict(dst_h=dst[0], dst_w=dst[1]))
    return build


def _ssd_head(detection: dict, *, classes: int = 3, share: bool = True, prior: dict | None = None):
    """data -> conv feature map -> loc/conf convs -> Permute/Flatten (and Reshape/Softmax), PriorBox ->
    DetectionOutput, the MobileNet-SSD head layout."""
    prior = prior or dict(min_size=[6.0], max_size=[11.0], aspect_ratio=[2.0], flip=True, clip=False,
                          variance=[0.1, 0.1, 0.2, 0.2])
    n_priors = (1 + 1) * 1 + (2 if prior.get("flip", True) else 1) * len(prior.get("aspect_ratio", []))
    n_loc = 1 if share else classes

    def build(n, L, P):
        n.feat = L.Convolution(n.data, num_output=4, kernel_size=3, stride=4, pad=1)
        n.loc = L.Convolution(n.feat, num_output=n_priors * 4 * n_loc, kernel_size=1)
        n.conf = L.Convolution(n.feat, num_output=n_priors * classes, kernel_size=1)
        n.loc_perm = L.Permute(n.loc, permute_param=dict(order=[0, 2, 3, 1]))
        n.loc_flat = L.Flatten(n.loc_perm, flatten_param=dict(axis=1))
        n.conf_perm = L.Permute(n.conf, permute_param=dict(order=[0, 2, 3, 1]))
        n.conf_flat = L.Flatten(n.conf_perm, flatten_param=dict(axis=1))
        n.conf_reshape = L.Reshape(n.conf_flat, reshape_param=dict(shape=dict(dim=[0, -1, classes])))
        n.conf_softmax = L.Softmax(n.conf_reshape, softmax_param=dict(axis=2))
        n.conf_out = L.Flatten(n.conf_softmax, flatten_param=dict(axis=1))
        n.priors = L.PriorBox(n.feat, n.data, prior_box_param=prior)
        n.detection_out = L.DetectionOutput(n.loc_flat, n.conf_out, n.priors,
                                            detection_output_param=dict(num_classes=classes, share_location=share,
                                                                        **detection))
    return build


def _loc_small(net):
    """Location convs scaled down so decoded boxes stay near their priors (overlapping, as in real nets)."""
    for name in ("loc",):
        net.params[name][0].data[...] *= 0.05
        net.params[name][1].data[...] *= 0.05


def _recurrent(kind: str, *, static: bool = False, expose: bool = False, hidden: int = 5):
    def build(n, L, P):
        bottoms = [n.x, n.cont] + ([n.xs] if static else [])
        if expose:
            bottoms += [n.h0] + ([n.c0] if kind == "LSTM" else [])
        ntop = 1 + (0 if not expose else (2 if kind == "LSTM" else 1))
        tops = getattr(L, kind)(*bottoms, ntop=ntop, recurrent_param=dict(
            num_output=hidden, weight_filler=dict(type="gaussian", std=0.3),
            bias_filler=dict(type="constant", value=0.1), expose_hidden=expose))
        tops = tops if isinstance(tops, tuple) else (tops,)
        for name, top in zip(("h", "h_T", "c_T"), tops, strict=False):
            setattr(n, name, top)
    inputs = {"x": (4, 2, 3), "cont": (4, 2)}
    if static:
        inputs["xs"] = (2, 6)
    if expose:
        inputs["h0"] = (1, 2, hidden)
        if kind == "LSTM":
            inputs["c0"] = (1, 2, hidden)
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float32)
    return build, inputs, _feed(cont=lambda rng, s: cont)


_LSTM, _LSTM_IN, _LSTM_FEED = _recurrent("LSTM")
_LSTM_S, _LSTM_S_IN, _LSTM_S_FEED = _recurrent("LSTM", static=True, expose=True)
_RNN, _RNN_IN, _RNN_FEED = _recurrent("RNN", static=True)
_RNN_E, _RNN_E_IN, _RNN_E_FEED = _recurrent("RNN", expose=True)


def _proposal_feed(rng, inputs):
    out = {}
    for k, s in inputs.items():
        if k == "scores":
            out[k] = rng.uniform(0.01, 1.0, s).astype(np.float32)
        elif k == "deltas":
            out[k] = (rng.standard_normal(s) * 0.2).astype(np.float32)
        else:
            out[k] = np.array([[40.0, 52.0, 1.0]], np.float32)
    return out


CASES = [
    # --- MAX pooling's mask top, and unpooling by it (SegNet's pattern with this Caffe's MaxUnPool)
    Case("pool_mask_2_2", ("Pooling",), _pool(pooling_param=dict(pool=0, kernel_size=2, stride=2))),
    Case("pool_mask_3_2_pad1", ("Pooling",), _pool(pooling_param=dict(pool=0, kernel_size=3, stride=2, pad=1))),
    Case("pool_mask_rect_floor", ("Pooling",), _pool(pooling_param=dict(
        pool=0, kernel_h=3, kernel_w=2, stride_h=2, stride_w=3, pad_h=1, pad_w=0, ceil_mode=False))),
    Case("pool_mask_global", ("Pooling",), _pool(pooling_param=dict(pool=0, global_pooling=True))),
    Case("maxunpool_2_2", ("MaxUnPool", "Pooling"), _unpool(dict(kernel_size=2, stride=2), (11, 13))),
    Case("maxunpool_overlap_bigger", ("MaxUnPool",), _unpool(dict(kernel_size=3, stride=2, pad=1), (12, 14))),
    # --- this Caffe's extra elementwise and shape layers
    Case("relu6_default_and_leaky", ("ReLU6",), lambda n, L, P: (
        setattr(n, "r", L.ReLU6(n.data)),
        setattr(n, "r2", L.ReLU6(n.data, relu6_param=dict(negative_slope=0.1, threshold=1.5)))),
        feed=_feed(data=lambda rng, s: rng.standard_normal(s) * 5)),
    Case("relu6_inplace", ("ReLU6", "Convolution"), lambda n, L, P: (
        setattr(n, "conv", L.Convolution(n.data, num_output=4, kernel_size=1)),
        setattr(n, "relu", L.ReLU6(n.conv, in_place=True)))),
    Case("hardsigmoid_hardswish", ("HardSigmoid", "HardSwish"), lambda n, L, P: (
        setattr(n, "hs", L.HardSigmoid(n.data)),
        setattr(n, "hs2", L.HardSigmoid(n.data, hardsigmoid_param=dict(alpha=0.5, beta=0.25))),
        setattr(n, "sw", L.HardSwish(n.data))),
        feed=_feed(data=lambda rng, s: rng.standard_normal(s) * 4)),
    Case("pixelshuffle", ("PixelShuffle",), lambda n, L, P: setattr(
        n, "ps", L.PixelShuffle(n.data, pixelshuffle_param=dict(upscale_factor=2))), inputs={"data": (2, 8, 5, 7)}),
    Case("upsample_nearest", ("Upsample",), lambda n, L, P: (
        setattr(n, "u2", L.Upsample(n.data, upsample_param=dict(scale=2))),
        setattr(n, "u3", L.Upsample(n.data, upsample_param=dict(scale=3, dims_num=4))))),
    Case("upsample_nearest_3d", ("Upsample",), lambda n, L, P: setattr(
        n, "u", L.Upsample(n.data, upsample_param=dict(scale=3, dims_num=3))), inputs={"data": (2, 3, 7)}),
    Case("pad_constant_replicate_reflect_crop", ("Pad",), lambda n, L, P: (
        setattr(n, "pc", L.Pad(n.data, pad_param=dict(pad_u=1, pad_d=2, pad_l=0, pad_r=3, pad_value=0.5))),
        setattr(n, "pr", L.Pad(n.data, pad_param=dict(pad_type=1, pad_u=2, pad_d=1, pad_l=3, pad_r=1))),
        setattr(n, "pf", L.Pad(n.data, pad_param=dict(pad_type=2, pad_u=2, pad_d=3, pad_l=1, pad_r=4))),
        setattr(n, "pn", L.Pad(n.data, pad_param=dict(pad_u=-1, pad_d=-2, pad_l=-3, pad_r=-1))))),
    Case("resize_fixed", ("Resize",), lambda n, L, P: (
        setattr(n, "up", L.Resize(n.data, resize_param=dict(height=17, width=30))),
        setattr(n, "down", L.Resize(n.data, resize_param=dict(height=4, width=9))))),
    Case("resize_pyramid", ("Resize",), lambda n, L, P: setattr(n, "r", L.Resize(n.data, resize_param=dict(
        is_pyramid_test=True, out_height_scale=1.5, out_width_scale=0.7)))),
    Case("bilinear_interpolate", ("BilinearInterpolate",), lambda n, L, P: (
        setattr(n, "ac", L.BilinearInterpolate(n.data, bilinear_interpolate_param=dict(dst_h=17, dst_w=20))),
        setattr(n, "hp", L.BilinearInterpolate(n.data, bilinear_interpolate_param=dict(
            dst_h=23, dst_w=7, align_corners=False))),
        setattr(n, "sf", L.BilinearInterpolate(n.data, bilinear_interpolate_param=dict(
            scale_factor=1.7, align_corners=False))),
        setattr(n, "h_only", L.BilinearInterpolate(n.data, bilinear_interpolate_param=dict(dst_h=5))))),
    Case("unsqueeze", ("Unsqueeze",), lambda n, L, P: (
        setattr(n, "u1", L.Unsqueeze(n.data, unsqueeze_param=dict(dim=1))),
        setattr(n, "u_last", L.Unsqueeze(n.data, unsqueeze_param=dict(dim=-1)))),
        check=expect_shape("u_last", (2, 3, 11, 13, 1))),
    Case("batchnormkyle", ("BatchNormKyle",), lambda n, L, P: setattr(n, "bn", L.BatchNormKyle(n.data)),
         fill=_set(bn_1=lambda s: np.random.default_rng(3).uniform(0.5, 2.0, s), bn_2=lambda s: np.full(s, 0.8))),
    Case("batchnormkyle_alpha_beta", ("BatchNormKyle",), lambda n, L, P: setattr(n, "bn", L.BatchNormKyle(
        n.data, batch_norm_param=dict(use_alpha_beta=True, eps=1e-3))),
        fill=_set(bn_1=lambda s: np.random.default_rng(4).uniform(0.5, 2.0, s), bn_2=lambda s: np.full(s, 2.5))),
    # --- BVLC layers the converter did not handle before
    Case("mvn", ("MVN",), lambda n, L, P: (
        setattr(n, "m", L.MVN(n.data)),
        setattr(n, "ma", L.MVN(n.data, mvn_param=dict(across_channels=True, eps=1e-3))),
        setattr(n, "mm", L.MVN(n.data, mvn_param=dict(normalize_variance=False))))),
    Case("spp_max_ave_single", ("SPP",), lambda n, L, P: (
        setattr(n, "s3", L.SPP(n.data, spp_param=dict(pyramid_height=3))),
        setattr(n, "s2a", L.SPP(n.data, spp_param=dict(pyramid_height=2, pool=1))),
        setattr(n, "s1", L.SPP(n.data, spp_param=dict(pyramid_height=1))))),
    Case("embed", ("Embed",), lambda n, L, P: (
        setattr(n, "e", L.Embed(n.idx, embed_param=dict(num_output=4, input_dim=7))),
        setattr(n, "e_nb", L.Embed(n.idx, embed_param=dict(num_output=3, input_dim=7, bias_term=False)))),
        inputs={"idx": (3, 5)}, feed=_feed(idx=lambda rng, s: rng.integers(0, 7, s))),
    Case("im2col", ("Im2col",), lambda n, L, P: (
        setattr(n, "c", L.Im2col(n.data, convolution_param=dict(kernel_size=3, stride=2, pad=1))),
        setattr(n, "c2", L.Im2col(n.data, convolution_param=dict(kernel_h=2, kernel_w=3, dilation=2))))),
    Case("filter", ("Filter",), lambda n, L, P: assign_tops(n, ("fa", "fb"), L.Filter(n.a, n.b, n.sel, ntop=2)),
        inputs={"a": (4, 3, 5, 5), "b": (4, 2), "sel": (4,)},
        feed=_feed(sel=lambda rng, s: np.array([1, 0, 2, 1])), check=expect_shape("fa", (3, 3, 5, 5))),
    Case("batch_reindex", ("BatchReindex",), lambda n, L, P: setattr(n, "r", L.BatchReindex(n.a, n.idx)),
         inputs={"a": (3, 2, 4), "idx": (5,)}, feed=_feed(idx=lambda rng, s: np.array([2, 0, 2, 1, 0]))),
    Case("parameter", ("Parameter", "Eltwise"), lambda n, L, P: (
        setattr(n, "p", L.Parameter(parameter_param=dict(shape=dict(dim=list(X))))),
        setattr(n, "r", L.ReLU(n.p, in_place=True)),
        setattr(n, "s", L.Eltwise(n.data, n.p, operation=1))),
        check=lambda info, cb, tb: "inplace" not in next(x for x in info["layers"] if x["name"] == "r")["torch"]),
    Case("lstm", ("LSTM",), _LSTM, inputs=_LSTM_IN, feed=_LSTM_FEED),
    Case("lstm_static_exposed", ("LSTM",), _LSTM_S, inputs=_LSTM_S_IN, feed=_LSTM_S_FEED),
    Case("rnn_static", ("RNN",), _RNN, inputs=_RNN_IN, feed=_RNN_FEED),
    Case("rnn_exposed", ("RNN",), _RNN_E, inputs=_RNN_E_IN, feed=_RNN_E_FEED),
    Case("lstm_unit", ("LSTMUnit",), lambda n, L, P: assign_tops(n, ("c", "h"), L.LSTMUnit(n.c0, n.g, n.cont, ntop=2)),
         inputs={"c0": (1, 3, 4), "g": (1, 3, 16), "cont": (1, 3)},
         feed=_feed(cont=lambda rng, s: np.array([[1, 0, 0.5]]))),
    # --- detection (SSD, Faster R-CNN)
    Case("permute", ("Permute",), lambda n, L, P: (
        setattr(n, "p", L.Permute(n.data, permute_param=dict(order=[0, 2, 3, 1]))),
        setattr(n, "p2", L.Permute(n.data, permute_param=dict(order=[3, 1])))),
        check=expect_shape("p2", (13, 3, 2, 11))),
    Case("normalize", ("Normalize",), lambda n, L, P: (
        setattr(n, "n1", L.Normalize(n.data)),
        setattr(n, "n2", L.Normalize(n.data, norm_param=dict(across_spatial=False, channel_shared=False))),
        setattr(n, "n3", L.Normalize(n.data, norm_param=dict(across_spatial=False, eps=0.5))))),
    Case("priorbox", ("PriorBox",), lambda n, L, P: (
        setattr(n, "pb", L.PriorBox(n.data, n.img, prior_box_param=dict(
            min_size=[4.5, 9.0], max_size=[8.0, 15.0], aspect_ratio=[2.0, 3.0, 2.0], flip=True, clip=True,
            variance=[0.1, 0.1, 0.2, 0.2]))),
        setattr(n, "pb2", L.PriorBox(n.data, n.img, prior_box_param=dict(
            min_size=[10.0], aspect_ratio=[0.5], flip=False, clip=False, variance=[0.2], img_h=40, img_w=50,
            step_h=3.5, step_w=4.0, offset=0.25)))),
        inputs={"data": (2, 3, 5, 7), "img": (2, 3, 33, 47)}),
    Case("detection_center_size_nms_topk", ("DetectionOutput", "PriorBox", "Permute", "Flatten"), _ssd_head(dict(
        code_type=2, keep_top_k=12, confidence_threshold=0.2, nms_param=dict(nms_threshold=0.45, top_k=30))),
        inputs={"data": (2, 3, 22, 26)}, fill=_loc_small, check=_detections_found("detection_out", 4)),
    Case("detection_corner_no_share", ("DetectionOutput",), _ssd_head(dict(
        code_type=1, nms_param=dict(nms_threshold=0.3, eta=0.9), background_label_id=1), share=False),
        inputs={"data": (1, 3, 22, 26)}, fill=_loc_small, check=_detections_found("detection_out", 2)),
    Case("detection_corner_size_no_nms", ("DetectionOutput",), _ssd_head(dict(
        code_type=3, keep_top_k=7, variance_encoded_in_target=True)),
        inputs={"data": (1, 3, 14, 10)}, fill=_loc_small, check=expect_shape("detection_out", (1, 1, 7, 7))),
    Case("detection_nothing_kept", ("DetectionOutput",), _ssd_head(dict(
        code_type=2, confidence_threshold=1.0, nms_param=dict(nms_threshold=0.45))),
        inputs={"data": (2, 3, 22, 26)}, fill=_loc_small, check=expect_shape("detection_out", (1, 1, 2, 7))),
    Case("proposal", ("Proposal",), lambda n, L, P: assign_tops(n, ("rois", "roi_scores"), L.Proposal(
        n.scores, n.deltas, n.im_info, ntop=2, proposal_param=dict(
            feat_stride=4, base_size=4, min_size=1, ratio=[0.5, 1.0, 2.0], scale=[1.0, 2.0], pre_nms_topn=60,
            post_nms_topn=25, nms_thresh=0.5))),
        inputs={"scores": (1, 12, 6, 8), "deltas": (1, 24, 6, 8), "im_info": (1, 3)}, feed=_proposal_feed),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_parity(case: Case, tmp_path):
    run_table_case(case, tmp_path)


def test_every_registered_compute_type_converts_and_has_a_parity_case():
    from test_convert_layers import CASES as BVLC_CASES  # the classic BVLC table
    from test_forks import FORK_TYPES, RULE_TYPES  # types checked against hand-computed values

    registered = set(load_caffe().layer_type_list())
    assert set(NOT_COMPUTE) <= registered
    compute = registered - set(NOT_COMPUTE)
    assert set(NOT_COMPUTE) - {"Silence", "HDF5Output"} <= INPUT_TYPES | TRAINING_ONLY
    missing = compute - set(LAYERS)
    assert not missing, f"registered compute types the converter lacks: {sorted(missing)}"
    covered = {t for c in CASES + BVLC_CASES for t in c.types} | set(RULE_TYPES) | {"Python"}
    assert compute <= covered, f"compute types without a check: {sorted(compute - covered)}"
    assert set(LAYERS) - compute <= set(FORK_TYPES), sorted(set(LAYERS) - compute - set(FORK_TYPES))
    print(f"converted {len(compute & set(LAYERS))} / {len(compute)} registered compute types "
          f"({len(registered)} registered); fork-only types: {sorted(set(LAYERS) - registered)}")
