"""Per-layer parity: every converted Caffe layer type, in tiny nets with random weights, run in real Caffe
and in the generated PyTorch module; every blob must agree to 1e-4 of its max magnitude.

Awkward shapes on purpose: odd sizes, Caffe-vs-torch pooling size disagreements, pad > kernel/2,
deconvolution with groups and dilation, per-axis Crop offsets, N-d convolution.
"""

from __future__ import annotations

import numpy as np
import pytest
from convert_helpers import Case, assign_tops, expect_shape, run_case, run_table_case

pytestmark = pytest.mark.caffe


X = (2, 3, 11, 13)  # odd spatial sizes


def conv(n, L, P, bottom, name, **kw):
    setattr(n, name, L.Convolution(bottom, **kw))
    return getattr(n, name)


def _pool(**kw):
    def build(n, L, P):
        n.pool = L.Pooling(n.data, **kw)
    return build


def _set_blob(layer: str, index: int, fn):
    def fill(net):
        b = net.params[layer][index]
        b.data[...] = fn(b.data.shape)
    return fill


def _bn_fill(factor: float):
    def fill(net):
        mean, var, f = net.params["bn"]
        var.data[...] = np.abs(var.data) + 0.5
        mean.data[...] *= 10
        f.data[...] = factor
    return fill


def _ties(rng, inputs):
    return {k: rng.integers(0, 3, size=s).astype(np.float32) for k, s in inputs.items()}


def _positive(rng, inputs):
    return {k: (np.abs(rng.standard_normal(s)) + 0.1).astype(np.float32) for k, s in inputs.items()}


def _expect_torch(layer, text):
    def check(info, cb, tb):
        entry = next(x for x in info["layers"] if x["name"] == layer)
        assert text in entry["torch"], entry["torch"]
    return check


def _expect_min(blob, value):
    def check(info, cb, tb):
        assert np.isclose(cb[blob].min(), value) and np.isclose(tb[blob].min(), value)
    return check


CASES = [
    # --- convolution
    Case("conv_3x3_pad", ("Convolution", "ReLU"), lambda n, L, P: (
        conv(n, L, P, n.data, "conv", num_output=5, kernel_size=3, pad=1),
        setattr(n, "relu", L.ReLU(n.conv, in_place=True)))),
    Case("conv_group_dilation_hw_nobias", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=9, kernel_h=3, kernel_w=2, stride_h=2, stride_w=1, pad_h=1,
        pad_w=0, dilation=2, group=3, bias_term=False), inputs={"data": (2, 6, 15, 12)}),
    Case("conv_repeated_kernel_stride_pad", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=4, kernel_size=[3, 5], stride=[2, 3], pad=[0, 2])),
    # 7x7 kernels run as unfold + matmul (Conv2dGemm) while the output is small, else as a convolution
    Case("conv_7x7_gemm_path", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=6, kernel_size=7, pad=2, stride=2, dilation=1),
        inputs={"data": (2, 5, 15, 17)}, check=_expect_torch("conv", "Conv2dGemm(")),
    Case("conv_5x5_large_output_conv_path", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=2, kernel_size=5, pad=2),
        inputs={"data": (1, 2, 67, 70)}),
    Case("conv_3d", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=3, kernel_size=[3, 2, 3], pad=[1, 0, 1], stride=[1, 2, 1]),
        inputs={"data": (1, 2, 5, 6, 7)}),
    Case("conv_1d", ("Convolution",), lambda n, L, P: conv(
        n, L, P, n.data, "conv", num_output=3, kernel_size=3, stride=2, pad=1), inputs={"data": (2, 4, 9)}),
    # --- deconvolution
    Case("deconv_4_2", ("Deconvolution",), lambda n, L, P: setattr(n, "up", L.Deconvolution(
        n.data, convolution_param=dict(num_output=4, kernel_size=4, stride=2)))),
    Case("deconv_group_dilation_pad_nobias", ("Deconvolution",), lambda n, L, P: setattr(
        n, "up", L.Deconvolution(n.data, convolution_param=dict(
            num_output=6, kernel_size=3, stride=2, pad=1, group=2, dilation=2, bias_term=False))),
        inputs={"data": (2, 4, 7, 9)}),
    Case("deconv_fcn_16_8", ("Deconvolution",), lambda n, L, P: setattr(n, "up", L.Deconvolution(
        n.data, convolution_param=dict(num_output=2, kernel_size=16, stride=8, bias_term=False))),
        inputs={"data": (1, 2, 5, 6)}),
    # --- pooling: torch-compatible and Caffe-only size rules
    Case("pool_max_3_2_ceil", ("Pooling",), _pool(pool=0, kernel_size=3, stride=2),
         inputs={"data": (2, 3, 12, 14)}, check=expect_shape("pool", (2, 3, 6, 7))),
    Case("pool_max_pad1", ("Pooling",), _pool(pool=0, kernel_size=3, stride=2, pad=1)),
    Case("pool_ave_pad1", ("Pooling",), _pool(pool=1, kernel_size=3, stride=2, pad=1)),
    Case("pool_ave_ceil_overhang", ("Pooling",), _pool(pool=1, kernel_size=2, stride=2)),
    Case("pool_max_h5_k2_s2_p1", ("Pooling",), _pool(pool=0, kernel_size=2, stride=2, pad=1),
         inputs={"data": (1, 2, 5, 5)}, check=expect_shape("pool", (1, 2, 3, 3))),
    Case("pool_ave_h5_k2_s2_p1", ("Pooling",), _pool(pool=1, kernel_size=2, stride=2, pad=1),
         inputs={"data": (1, 2, 5, 5)}),
    # p = 0 and stride > kernel: Caffe keeps a last window that starts past the input (torch drops it)
    Case("pool_max_stride_gt_kernel", ("Pooling",), _pool(pool=0, kernel_size=1, stride=2),
         inputs={"data": (1, 2, 2, 2)}, check=_expect_min("pool", -3.4028235e38)),
    Case("pool_ave_stride_gt_kernel", ("Pooling",), _pool(pool=1, kernel_size=1, stride=2),
         inputs={"data": (1, 2, 4, 6)}),
    # pad > kernel / 2: accepted by Caffe (pad < kernel), rejected by torch's pooling
    Case("pool_max_pad_gt_half_kernel", ("Pooling",), _pool(pool=0, kernel_size=3, stride=2, pad=2)),
    Case("pool_ave_pad_gt_half_kernel", ("Pooling",), _pool(pool=1, kernel_size=3, stride=2, pad=2)),
    # pad only along w: Caffe's "last window starts in the padding" fix then applies to h as well
    Case("pool_max_pad_w_only", ("Pooling",), _pool(pool=0, kernel_h=1, kernel_w=3, stride_h=2, stride_w=2,
                                                    pad_h=0, pad_w=1), inputs={"data": (1, 2, 4, 7)},
         check=expect_shape("pool", (1, 2, 2, 4))),
    Case("pool_ave_rect_floor", ("Pooling",), _pool(pool=1, kernel_h=3, kernel_w=2, stride_h=2, stride_w=3,
                                                    pad_h=1, pad_w=1, ceil_mode=False)),
    Case("pool_global_max", ("Pooling",), _pool(pool=0, global_pooling=True)),
    Case("pool_global_ave", ("Pooling",), _pool(pool=1, global_pooling=True)),
    # --- inner product
    Case("ip_axis1", ("InnerProduct",), lambda n, L, P: setattr(
        n, "ip", L.InnerProduct(n.data, num_output=7))),
    Case("ip_axis2_nobias", ("InnerProduct",), lambda n, L, P: setattr(n, "ip", L.InnerProduct(
        n.data, inner_product_param=dict(num_output=4, axis=2, bias_term=False)))),
    Case("ip_transpose", ("InnerProduct",), lambda n, L, P: setattr(n, "ip", L.InnerProduct(
        n.data, inner_product_param=dict(num_output=5, transpose=True)))),
    Case("ip_2d_input", ("InnerProduct",), lambda n, L, P: setattr(n, "ip", L.InnerProduct(
        n.data, num_output=3)), inputs={"data": (4, 9)}),
    # --- neurons
    Case("relu_leaky", ("ReLU",), lambda n, L, P: setattr(n, "r", L.ReLU(n.data, negative_slope=0.1))),
    Case("prelu_channel", ("PReLU",), lambda n, L, P: setattr(n, "r", L.PReLU(n.data))),
    Case("prelu_shared", ("PReLU",), lambda n, L, P: setattr(n, "r", L.PReLU(n.data, channel_shared=True))),
    Case("elu", ("ELU",), lambda n, L, P: setattr(n, "r", L.ELU(n.data, alpha=0.5))),
    Case("sigmoid_tanh_absval_bnll", ("Sigmoid", "TanH", "AbsVal", "BNLL"), lambda n, L, P: (
        setattr(n, "s", L.Sigmoid(n.data)), setattr(n, "t", L.TanH(n.data)),
        setattr(n, "a", L.AbsVal(n.data)), setattr(n, "b", L.BNLL(n.data)))),
    Case("power", ("Power",), lambda n, L, P: (
        setattr(n, "p2", L.Power(n.data, power=2.0, scale=0.5, shift=1.0)),
        setattr(n, "p1", L.Power(n.data, scale=-3.0, shift=0.25)),
        setattr(n, "p3", L.Power(n.data, power=-1.5, scale=2.0)))),
    Case("exp_log", ("Exp", "Log"), lambda n, L, P: (
        setattr(n, "e", L.Exp(n.data)), setattr(n, "e2", L.Exp(n.data, base=2.0, scale=0.5, shift=0.1)),
        setattr(n, "lg", L.Log(n.data)), setattr(n, "lg10", L.Log(n.data, base=10.0, scale=3.0, shift=0.5))),
        feed=_positive),
    Case("threshold", ("Threshold",), lambda n, L, P: setattr(n, "t", L.Threshold(n.data, threshold=0.3))),
    Case("dropout_inplace", ("Dropout", "ReLU"), lambda n, L, P: (
        conv(n, L, P, n.data, "conv", num_output=4, kernel_size=1),
        setattr(n, "drop", L.Dropout(n.conv, dropout_ratio=0.5, in_place=True)),
        setattr(n, "relu", L.ReLU(n.conv, in_place=True)))),
    Case("lrn_across", ("LRN",), lambda n, L, P: setattr(n, "norm", L.LRN(
        n.data, local_size=5, alpha=0.3, beta=0.75, k=2.0)), inputs={"data": (2, 7, 5, 6)}),
    Case("lrn_within", ("LRN",), lambda n, L, P: setattr(n, "norm", L.LRN(
        n.data, local_size=3, alpha=0.5, beta=0.6, norm_region=1))),
    # --- normalisation and affine
    Case("batchnorm_scale", ("BatchNorm", "Scale"), lambda n, L, P: (
        setattr(n, "bn", L.BatchNorm(n.data)), setattr(n, "sc", L.Scale(n.bn, bias_term=True))),
        fill=_bn_fill(0.25)),
    Case("batchnorm_inplace_eps", ("BatchNorm", "Scale"), lambda n, L, P: (
        conv(n, L, P, n.data, "conv", num_output=4, kernel_size=1),
        setattr(n, "bn", L.BatchNorm(n.conv, in_place=True, batch_norm_param=dict(eps=1e-3))),
        setattr(n, "sc", L.Scale(n.conv, in_place=True))), fill=_bn_fill(999.5)),
    Case("batchnorm_zero_factor", ("BatchNorm",), lambda n, L, P: setattr(n, "bn", L.BatchNorm(n.data)),
         fill=_bn_fill(0.0)),
    Case("batchnorm_batch_stats", ("BatchNorm",), lambda n, L, P: setattr(n, "bn", L.BatchNorm(
        n.data, batch_norm_param=dict(use_global_stats=False))), fill=_bn_fill(1.0)),
    Case("batchnorm_2d", ("BatchNorm",), lambda n, L, P: setattr(n, "bn", L.BatchNorm(n.data)),
         inputs={"data": (5, 4)}, fill=_bn_fill(2.0)),
    Case("scale_axes", ("Scale",), lambda n, L, P: (
        setattr(n, "s2", L.Scale(n.data, scale_param=dict(axis=1, num_axes=2))),
        setattr(n, "s0", L.Scale(n.data, scale_param=dict(num_axes=0, bias_term=True))),
        setattr(n, "sall", L.Scale(n.data, scale_param=dict(axis=2, num_axes=-1))))),
    Case("scale_by_blob", ("Scale",), lambda n, L, P: (
        setattr(n, "s", L.Scale(n.data, n.w)), setattr(n, "sb", L.Scale(n.data, n.w2, bias_term=True,
                                                                         axis=0))),
        inputs={"data": X, "w": (3,), "w2": (2, 3)}),
    Case("bias", ("Bias",), lambda n, L, P: (
        setattr(n, "b", L.Bias(n.data)),
        setattr(n, "b2", L.Bias(n.data, bias_param=dict(axis=2, num_axes=2))),
        setattr(n, "bb", L.Bias(n.data, n.w))), inputs={"data": X, "w": (3, 11)}),
    # --- blob plumbing
    Case("eltwise_sum_coeff_prod_max", ("Eltwise",), lambda n, L, P: (
        setattr(n, "s", L.Eltwise(n.a, n.b, n.c, operation=1, coeff=[0.5, -2.0, 1.0])),
        setattr(n, "p", L.Eltwise(n.a, n.b, operation=0)),
        setattr(n, "m", L.Eltwise(n.a, n.b, n.c, operation=2))),
        inputs={"a": X, "b": X, "c": X}),
    Case("concat_axes", ("Concat",), lambda n, L, P: (
        setattr(n, "c1", L.Concat(n.a, n.b)), setattr(n, "c2", L.Concat(n.a, n.a, axis=2)),
        setattr(n, "c0", L.Concat(n.a, n.b, concat_dim=1))), inputs={"a": (2, 3, 5, 4), "b": (2, 2, 5, 4)}),
    Case("slice_points_and_equal", ("Slice",), lambda n, L, P: (
        assign_tops(n, ("s1", "s2", "s3"), L.Slice(n.data, ntop=3, slice_param=dict(axis=1, slice_point=[1, 2]))),
        assign_tops(n, ("h1", "h2"), L.Slice(n.data, ntop=2, slice_param=dict(axis=0))))),
    Case("split", ("Split",), lambda n, L, P: (
        assign_tops(n, ("x1", "x2"), L.Split(n.data, ntop=2)),
        setattr(n, "y", L.Eltwise(n.x1, n.x2, operation=1, coeff=[1.0, 2.0])))),
    Case("flatten", ("Flatten",), lambda n, L, P: (
        setattr(n, "f", L.Flatten(n.data)), setattr(n, "f2", L.Flatten(n.data, axis=1, end_axis=2)),
        setattr(n, "f3", L.Flatten(n.data, axis=-2)))),
    Case("reshape", ("Reshape",), lambda n, L, P: (
        setattr(n, "r", L.Reshape(n.data, shape=dict(dim=[0, -1, 13]))),
        setattr(n, "r2", L.Reshape(n.data, reshape_param=dict(shape=dict(dim=[11, 1]), axis=2, num_axes=1))),
        setattr(n, "r3", L.Reshape(n.data, reshape_param=dict(shape=dict(dim=[-1]), axis=-2)))),
        check=expect_shape("r2", (2, 3, 11, 1, 13))),
    Case("crop_offsets", ("Crop",), lambda n, L, P: (
        setattr(n, "c1", L.Crop(n.data, n.ref, crop_param=dict(axis=2, offset=[1, 3]))),
        setattr(n, "c2", L.Crop(n.data, n.ref2, crop_param=dict(axis=1, offset=[1, 0, 2]))),
        setattr(n, "c3", L.Crop(n.data, n.ref, crop_param=dict(offset=4))),
        setattr(n, "c4", L.Crop(n.data, n.ref))),
        inputs={"data": X, "ref": (2, 3, 7, 9), "ref2": (2, 2, 5, 11)}),
    Case("softmax", ("Softmax",), lambda n, L, P: (
        setattr(n, "p", L.Softmax(n.data)), setattr(n, "p2", L.Softmax(n.data, axis=2)))),
    Case("argmax", ("ArgMax",), lambda n, L, P: (
        setattr(n, "a", L.ArgMax(n.data)), setattr(n, "a3v", L.ArgMax(n.data, top_k=3, out_max_val=True)),
        setattr(n, "ax", L.ArgMax(n.data, axis=1)),
        setattr(n, "axv", L.ArgMax(n.data, axis=1, out_max_val=True)),
        setattr(n, "ax2", L.ArgMax(n.data, axis=-1, top_k=2))), feed=_ties),
    Case("tile_reduction", ("Tile", "Reduction"), lambda n, L, P: (
        setattr(n, "t", L.Tile(n.data, axis=2, tiles=3)),
        setattr(n, "rs", L.Reduction(n.data, axis=1)),
        setattr(n, "ra", L.Reduction(n.data, operation=2, axis=2, coeff=0.5)),
        setattr(n, "rq", L.Reduction(n.data, operation=3, axis=0)),
        setattr(n, "rm", L.Reduction(n.data, operation=4, axis=3, coeff=-2.0)))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_parity(case: Case, tmp_path):
    run_table_case(case, tmp_path)


def test_inplace_relu_is_torch_inplace_only_when_safe(tmp_path):
    """ReLU in place on a fresh conv output runs with inplace=True; after a Split (shared memory) or on
    the net input it must not (it would clobber the other name / the caller's tensor)."""
    def build(n, L, P):
        n.relu_in = L.ReLU(n.data, in_place=True)
        conv(n, L, P, n.relu_in, "conv", num_output=3, kernel_size=1)
        n.relu = L.ReLU(n.conv, in_place=True)
        n.a, n.b = L.Split(n.conv, ntop=2)
        n.relu_a = L.ReLU(n.a, in_place=True)
        n.sum = L.Eltwise(n.a, n.b, operation=1)

    info, cb, tb = run_case(tmp_path, build, {"data": X})
    torch_of = {layer["name"]: layer.get("torch", "") for layer in info["layers"]}
    assert "inplace=True" in torch_of["relu"]
    assert "inplace=True" not in torch_of["relu_a"]
    assert "inplace=True" not in torch_of["relu_in"]
