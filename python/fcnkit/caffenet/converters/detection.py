"""Converters for the detection layers of this Caffe: SSD's Permute, Normalize, PriorBox and DetectionOutput,
and the Faster R-CNN / R-FCN Proposal and PSROIPooling layers. They register into `fcnkit.caffenet.registry.LAYERS`.

DetectionOutput, Proposal and PSROIPooling produce data-dependent output sizes: they record Caffe's setup
shapes and are left out of model.onnx (see `ModuleSpec.onnx_exportable`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register

FLT_MAX = float(np.finfo(np.float32).max)


def _legacy(shape: tuple[int, ...], axis: int) -> int:
    """Caffe's num()/channels()/height()/width() accessors: the axis' size, or 1 past the last axis."""
    return shape[axis] if axis < len(shape) else 1


@register("Permute")
def permute(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1)
    ctx.tops(1)
    nd = len(ctx.x)
    order = [int(o) for o in ctx.layer.permute_param.order]
    if any(o >= nd for o in order) or len(set(order)) != len(order):
        ctx.fail(f"order {order} must name distinct axes below {nd}")
    order += [i for i in range(nd) if i not in order]
    return ModuleSpec("CaffePermute", (order,))


@register("Normalize")
def normalize(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1)
    ctx.tops(1)
    p = ctx.layer.norm_param
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got {ctx.x}")
    c = ctx.x[1]
    (scale,) = ctx.blobs([("scale", () if p.channel_shared else (c,))])
    kw: dict[str, Any] = {}
    if not p.across_spatial:
        kw["across_spatial"] = False
    if not p.channel_shared:
        kw["channel_shared"] = False
    if p.eps != np.float32(1e-10):
        kw["eps"] = float(p.eps)
    return ModuleSpec("CaffeNormalize", (c,), kw, {"weight": scale.reshape(1 if p.channel_shared else c)})


def prior_aspect_ratios(values, flip: bool) -> list[float]:
    """SSD's list: 1 first, then each new ratio (and its inverse when flip), duplicates within 1e-6 dropped."""
    ratios = [1.0]
    for ar in values:
        ar = float(np.float32(ar))
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if flip:
            ratios.append(float(np.float32(1.0 / ar)))
    return ratios


@register("PriorBox")
def prior_box(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2)
    ctx.tops(1)
    p = ctx.layer.prior_box_param
    if not len(p.min_size) or min(p.min_size) <= 0:
        ctx.fail("prior_box_param needs positive min_size values")
    if len(p.max_size) and len(p.max_size) != len(p.min_size):
        ctx.fail(f"{len(p.max_size)} max_size values for {len(p.min_size)} min_size values; give one per min_size")
    if any(mx <= mn for mn, mx in zip(p.min_size, p.max_size, strict=False)):
        ctx.fail("every max_size must be greater than its min_size")
    variance = [float(v) for v in p.variance] or [0.1]
    if len(variance) not in (1, 4) or min(variance) <= 0:
        ctx.fail(f"variance must be 1 or 4 positive values, got {variance}")
    if (p.HasField("img_h") or p.HasField("img_w")) and p.HasField("img_size"):
        ctx.fail("give img_size or img_h/img_w, not both")
    if (p.HasField("step_h") or p.HasField("step_w")) and p.HasField("step"):
        ctx.fail("give step or step_h/step_w, not both")
    img_h = p.img_h if p.HasField("img_h") or p.HasField("img_w") else p.img_size
    img_w = p.img_w if p.HasField("img_h") or p.HasField("img_w") else p.img_size
    step_h = p.step_h if p.HasField("step_h") or p.HasField("step_w") else p.step
    step_w = p.step_w if p.HasField("step_h") or p.HasField("step_w") else p.step
    if len(ctx.x) < 3:
        ctx.fail(f"the feature-map bottom must have spatial axes, got {ctx.x}")
    kw: dict[str, Any] = {"min_sizes": [int(v) for v in p.min_size],  # Caffe truncates the sizes to int
                          "max_sizes": [int(v) for v in p.max_size],
                          "aspect_ratios": prior_aspect_ratios(p.aspect_ratio, p.flip), "variance": variance}
    if not p.clip:
        kw["clip"] = False
    if img_h and img_w:
        kw |= {"img_h": int(img_h), "img_w": int(img_w)}
    if step_h and step_w:
        kw |= {"step_h": float(step_h), "step_w": float(step_w)}
    if p.offset != np.float32(0.5):
        kw["offset"] = float(p.offset)
    return ModuleSpec("CaffePriorBox", (), kw, call="args")


@register("DetectionOutput")
def detection_output(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(3)
    ctx.tops(1)
    p = ctx.layer.detection_output_param
    if not p.HasField("num_classes") or p.num_classes < 1:
        ctx.fail("detection_output_param.num_classes is required")
    loc, conf, prior = ctx.bottom_shapes
    n_loc = 1 if p.share_location else p.num_classes
    n_priors = _legacy(prior, 2) // 4
    if n_priors * n_loc * 4 != _legacy(loc, 1):
        ctx.fail(f"{n_priors} priors x {n_loc} location classes x 4 != {_legacy(loc, 1)} location values "
                 f"(bottom '{ctx.layer.bottom[0]}' {loc})")
    if n_priors * p.num_classes != _legacy(conf, 1):
        ctx.fail(f"{n_priors} priors x {p.num_classes} classes != {_legacy(conf, 1)} confidences "
                 f"(bottom '{ctx.layer.bottom[1]}' {conf})")
    if loc[0] != conf[0]:
        ctx.fail(f"location and confidence bottoms disagree on the batch size: {loc[0]} vs {conf[0]}")
    kw: dict[str, Any] = {}
    if not p.share_location:
        kw["share_location"] = False
    if p.background_label_id != 0:
        kw["background_label_id"] = int(p.background_label_id)
    if p.code_type != 1:
        kw["code_type"] = int(p.code_type)
    if p.variance_encoded_in_target:
        kw["variance_encoded_in_target"] = True
    if p.keep_top_k != -1:
        kw["keep_top_k"] = int(p.keep_top_k)
    if p.HasField("confidence_threshold"):
        kw["confidence_threshold"] = float(p.confidence_threshold)
    if p.HasField("nms_param"):
        nms = p.nms_param
        if nms.nms_threshold < 0 or not 0 < nms.eta <= 1:
            ctx.fail("nms_param needs nms_threshold >= 0 and 0 < eta <= 1")
        kw["nms_threshold"] = float(nms.nms_threshold)
        if nms.HasField("top_k"):
            kw["top_k"] = int(nms.top_k)
        if nms.eta != 1:
            kw["eta"] = float(nms.eta)
    else:
        kw["nms"] = False
    spec = ModuleSpec("CaffeDetectionOutput", (int(p.num_classes),), kw, call="args", top_shapes=[(1, 1, 1, 7)],
                      onnx_exportable=False)
    spec.notes.append("the number of detections depends on the data; the shape shown is Caffe's setup shape")
    if p.save_output_param.output_directory or p.visualize:
        spec.notes.append("save_output_param / visualize are side effects of Caffe's layer; not reproduced")
    return spec


def proposal_anchors(base_size: int, ratios, scales) -> list[list[float]]:
    """The Proposal layer's anchors, with its float32 arithmetic and its rounding (int(x + 0.5))."""
    f32 = np.float32
    base_area = f32(base_size * base_size)
    center = f32(0.5) * (f32(base_size) - f32(1))
    out = []
    for ratio in ratios:
        ratio_w = f32(math.sqrt(float(base_area / f32(ratio))))
        ratio_h = f32(ratio_w * f32(ratio))
        for scale in scales:
            half_w = 0.5 * int(float(f32(ratio_w * f32(scale))) / base_size - 1.0 + 0.5)
            half_h = 0.5 * int(float(f32(ratio_h * f32(scale))) / base_size - 1.0 + 0.5)
            out.append([float(f32(center - half_w)), float(f32(center - half_h)), float(f32(center + half_w)),
                        float(f32(center + half_h))])
    return out


@register("Proposal")
def proposal(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(3)
    ctx.tops(1, 2)
    p = ctx.layer.proposal_param
    if not len(p.ratio) or not len(p.scale):
        ctx.fail("proposal_param needs ratio and scale values")
    anchors = proposal_anchors(p.base_size, list(p.ratio), list(p.scale))
    scores, deltas, info = ctx.bottom_shapes
    a = len(anchors)
    if len(scores) != 4 or scores[1] != 2 * a or tuple(deltas) != (scores[0], 4 * a, scores[2], scores[3]):
        ctx.fail(f"with {a} anchors the bottoms must be scores (N, {2 * a}, H, W) and deltas (N, {4 * a}, H, W); "
                 f"got {scores} and {deltas}")
    if math.prod(info) < 2:
        ctx.fail(f"the image-info bottom needs (height, width), got shape {info}")
    with_scores = len(ctx.layer.top) == 2
    kw: dict[str, Any] = {"feat_stride": int(p.feat_stride), "min_size": int(p.min_size),
                          "pre_nms_topn": int(p.pre_nms_topn), "post_nms_topn": int(p.post_nms_topn),
                          "nms_thresh": float(p.nms_thresh)}
    if with_scores:
        kw["with_scores"] = True
    rows = scores[0] * p.post_nms_topn
    spec = ModuleSpec("CaffeProposal", (a,), kw, {"anchors": np.asarray(anchors, np.float32)}, call="args",
                      multi_top=True,
                      top_shapes=[(rows, 5)] + ([(rows,)] if with_scores else []), onnx_exportable=False)
    spec.notes.append("the number of RoIs depends on the data; the shape shown is Caffe's setup shape")
    return spec


@register("PSROIPooling")
def psroi_pooling(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2)
    ctx.tops(1)
    p = ctx.layer.psroi_pooling_param
    g, dim = int(p.group_size), int(p.output_dim)
    if g <= 0 or dim <= 0:
        ctx.fail("psroi_pooling_param needs positive output_dim and group_size")
    if len(ctx.x) != 4 or ctx.x[1] != dim * g * g:
        ctx.fail(f"the input must have output_dim x group_size^2 = {dim * g * g} channels, got {ctx.x}")
    rois = ctx.bottom_shapes[1]
    if math.prod(rois[1:]) != 5:
        ctx.fail(f"RoIs must be (R, 5) = (batch index, x1, y1, x2, y2), got {rois}")
    spec = ModuleSpec("CaffePSROIPooling", (float(p.spatial_scale), dim, g), call="args",
                      top_shapes=[(rois[0], dim, g, g)], onnx_exportable=False)
    spec.notes.append("rule of R-FCN's CUDA kernel: this Caffe's CPU build has no PSROIPooling forward")
    return spec


@register("ROIPooling")
def roi_pooling(ctx: LayerCtx) -> ModuleSpec:
    """py-faster-rcnn's ROIPooling (Fast/Faster R-CNN's roi_pool5); see CaffeROIPooling. Its second top (the
    argmax, for training) is not produced."""
    ctx.bottoms(2)
    ctx.tops(1)
    p = ctx.layer.roi_pooling_param
    if p.pooled_h <= 0 or p.pooled_w <= 0:
        ctx.fail("roi_pooling_param needs positive pooled_h and pooled_w")
    if len(ctx.x) != 4:
        ctx.fail(f"the feature map must be 4-D (N, C, H, W), got {ctx.x}")
    rois = ctx.bottom_shapes[1]
    if math.prod(rois[1:]) != 5:
        ctx.fail(f"RoIs must be (R, 5) = (batch index, x1, y1, x2, y2), got {rois}")
    spec = ModuleSpec("CaffeROIPooling", (int(p.pooled_h), int(p.pooled_w), float(p.spatial_scale)), call="args",
                      top_shapes=[(rois[0], ctx.x[1], int(p.pooled_h), int(p.pooled_w))], onnx_exportable=False)
    spec.notes.append("py-faster-rcnn ROIPooling (roi_pooling_layer.cpp; this Caffe has no ROIPooling)")
    return spec
