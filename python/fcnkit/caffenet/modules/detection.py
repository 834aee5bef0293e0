"""Caffe-semantics modules: SSD's Permute, Normalize, PriorBox, DetectionOutput; Faster R-CNN's Proposal; R-FCN's
PSROIPooling.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class CaffePermute(nn.Module):
    """SSD's Permute: the axes in the given order (the unlisted ones follow in their order)."""

    order: list[int]

    def __init__(self, order: list[int]):
        super().__init__()
        self.order = order

    def extra_repr(self) -> str:
        return f"order={self.order}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order).contiguous()



class CaffeNormalize(nn.Module):
    """SSD's Normalize: x / sqrt(sum of squares + eps) (eps inside the root), summed over C x H x W per
    item (across_spatial) or over the channels at each position, then times a learned scale (one value
    or one per channel)."""

    def __init__(self, channels: int, across_spatial: bool = True, channel_shared: bool = True,
                 eps: float = 1e-10):
        super().__init__()
        self.across_spatial = across_spatial
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1 if channel_shared else channels))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, across_spatial={self.across_spatial}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.across_spatial:
            sq = (x * x).reshape(x.shape[0], -1).sum(dim=1)
            norm = torch.sqrt(sq + self.eps).reshape([x.shape[0]] + [1] * (x.dim() - 1))
        else:
            norm = torch.sqrt((x * x).sum(dim=1, keepdim=True) + self.eps)
        y = x / norm
        if self.weight.shape[0] == 1:
            return y * self.weight
        return y * self.weight.reshape([1, -1] + [1] * (x.dim() - 2))



class CaffePriorBox(nn.Module):
    """SSD's PriorBox: for every cell of the feature map (first input) the prior boxes (xmin, ymin, xmax,
    ymax), normalised by the image size (second input, or img_h/img_w), then the variances:
    (1, 2, H * W * num_priors * 4). Box sizes per cell: min_size (truncated to an integer as Caffe
    does), sqrt(min_size * max_size), then min_size * sqrt(ar) x min_size / sqrt(ar) per aspect ratio."""

    min_sizes: list[int]
    max_sizes: list[int]
    aspect_ratios: list[float]
    variance: list[float]

    def __init__(self, min_sizes: list[int], max_sizes: list[int], aspect_ratios: list[float],
                 variance: list[float], clip: bool = True, img_h: int = 0, img_w: int = 0,
                 step_h: float = 0.0, step_w: float = 0.0, offset: float = 0.5):
        super().__init__()
        self.min_sizes = min_sizes
        self.max_sizes = max_sizes
        self.aspect_ratios = aspect_ratios  # 1.0 first, then the others (flipped ones included)
        self.variance = variance
        self.clip = clip
        self.img_h = img_h
        self.img_w = img_w
        self.step_h = step_h
        self.step_w = step_w
        self.offset = offset

    def extra_repr(self) -> str:
        return (f"min_sizes={self.min_sizes}, max_sizes={self.max_sizes}, aspect_ratios={self.aspect_ratios}, "
                f"clip={self.clip}")

    def forward(self, feature: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        fh, fw = feature.shape[-2], feature.shape[-1]
        img_h, img_w = self.img_h, self.img_w
        if img_h == 0 or img_w == 0:
            img_h, img_w = image.shape[-2], image.shape[-1]
        step_h, step_w = self.step_h, self.step_w
        if step_h == 0.0 or step_w == 0.0:
            step_h = float(img_h) / fh
            step_w = float(img_w) / fw
        # box sizes per prior, in Caffe's order and, like Caffe, as float32 values (whatever the spelling of
        # the ratios: 0.33333334 and 0.3333333432674408 are the same float32)
        dev = feature.device
        f32 = torch.float32
        widths: list[torch.Tensor] = []
        heights: list[torch.Tensor] = []
        other: list[float] = []
        for ar in self.aspect_ratios:
            if abs(ar - 1.0) >= 1e-6:
                other.append(ar)
        others = torch.tensor(other, dtype=f32, device=dev)
        for s in range(len(self.min_sizes)):
            m = torch.full([1], float(self.min_sizes[s]), dtype=f32, device=dev)
            widths.append(m)
            heights.append(m)
            if len(self.max_sizes) > 0:
                side = torch.full([1], math.sqrt(float(self.min_sizes[s] * self.max_sizes[s])), dtype=f32, device=dev)
                widths.append(side)
                heights.append(side)
            widths.append(m * torch.sqrt(others))
            heights.append(m / torch.sqrt(others))
        cx = (torch.arange(fw, device=dev, dtype=f32) + self.offset) * step_w
        cy = (torch.arange(fh, device=dev, dtype=f32) + self.offset) * step_h
        hw = torch.cat(widths).to(torch.float64) / 2.0
        hh = torch.cat(heights).to(torch.float64) / 2.0
        cx = cx.to(torch.float64).reshape(1, fw, 1)
        cy = cy.to(torch.float64).reshape(fh, 1, 1)
        boxes = torch.stack([((cx - hw) / img_w).expand(fh, fw, hw.shape[0]),
                             ((cy - hh) / img_h).expand(fh, fw, hw.shape[0]),
                             ((cx + hw) / img_w).expand(fh, fw, hw.shape[0]),
                             ((cy + hh) / img_h).expand(fh, fw, hw.shape[0])], dim=3)
        boxes = boxes.to(f32).to(feature.dtype).reshape(-1)
        if self.clip:
            boxes = torch.clamp(boxes, 0.0, 1.0)
        var = torch.tensor(self.variance, dtype=torch.float32, device=dev).to(feature.dtype)
        var = var.repeat(boxes.shape[0] // len(self.variance))
        return torch.stack([boxes, var], dim=0).unsqueeze(0)



def _box_area(b: torch.Tensor) -> torch.Tensor:
    """SSD's BBoxSize for normalised boxes: width * height, 0 for an inverted box."""
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    return torch.where((w < 0) | (h < 0), torch.zeros_like(w), w * h)



def _jaccard_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """SSD's JaccardOverlap (normalised) between all pairs of boxes: (..., K, 4) -> (..., K, K)."""
    a = boxes.unsqueeze(-2)
    b = boxes.unsqueeze(-3)
    apart = (b[..., 0] > a[..., 2]) | (b[..., 2] < a[..., 0]) | (b[..., 1] > a[..., 3]) | (b[..., 3] < a[..., 1])
    iw = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    ih = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = iw * ih
    iou = inter / (_box_area(a) + _box_area(b) - inter)
    return torch.where(apart | (iw <= 0) | (ih <= 0), torch.zeros_like(iou), iou)



def _jaccard(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """SSD's JaccardOverlap (normalised) of one box against many."""
    apart = (boxes[:, 0] > box[2]) | (boxes[:, 2] < box[0]) | (boxes[:, 1] > box[3]) | (boxes[:, 3] < box[1])
    iw = torch.minimum(boxes[:, 2], box[2]) - torch.maximum(boxes[:, 0], box[0])
    ih = torch.minimum(boxes[:, 3], box[3]) - torch.maximum(boxes[:, 1], box[1])
    inter = iw * ih
    iou = inter / (_box_area(box) + _box_area(boxes) - inter)
    return torch.where(apart | (iw <= 0) | (ih <= 0), torch.zeros_like(iou), iou)



class CaffeDetectionOutput(nn.Module):
    """SSD's DetectionOutput: decode the location predictions against the priors (CORNER, CENTER_SIZE or
    CORNER_SIZE, variances from the prior blob unless encoded in the target), then per image and class
    (background skipped) keep scores above confidence_threshold, the top_k highest, and greedy NMS (a box
    is dropped when its overlap with a kept one exceeds the threshold; adaptive eta); then keep_top_k over
    all classes. Rows (image, label, score, xmin, ymin, xmax, ymax), by image, then label, then score;
    (1, 1, num_kept, 7), or one row of -1 per image (image id first) when nothing is kept."""

    def __init__(self, num_classes: int, share_location: bool = True, background_label_id: int = 0,
                 code_type: int = 1, variance_encoded_in_target: bool = False, keep_top_k: int = -1,
                 confidence_threshold: float = -3.4028234663852886e38, nms: bool = True,
                 nms_threshold: float = 0.3, top_k: int = -1, eta: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.share_location = share_location
        self.background_label_id = background_label_id
        self.code_type = code_type
        self.variance_encoded_in_target = variance_encoded_in_target
        self.keep_top_k = keep_top_k
        self.confidence_threshold = confidence_threshold
        self.nms = nms
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.eta = eta

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, code_type={self.code_type}, keep_top_k={self.keep_top_k}, "
                f"nms_threshold={self.nms_threshold}, top_k={self.top_k}")

    def _decode(self, loc: torch.Tensor, prior: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        if not self.variance_encoded_in_target:
            loc = loc * var
        if self.code_type == 1:  # CORNER
            return prior + loc
        pw = prior[..., 2] - prior[..., 0]
        ph = prior[..., 3] - prior[..., 1]
        if self.code_type == 3:  # CORNER_SIZE
            return prior + loc * torch.stack([pw, ph, pw, ph], dim=-1)
        cx = loc[..., 0] * pw + (prior[..., 0] + prior[..., 2]) / 2.0
        cy = loc[..., 1] * ph + (prior[..., 1] + prior[..., 3]) / 2.0
        w = torch.exp(loc[..., 2]) * pw
        h = torch.exp(loc[..., 3]) * ph
        return torch.stack([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0], dim=-1)

    def _nms(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cand = torch.nonzero(scores > self.confidence_threshold).reshape(-1)
        order = torch.sort(scores[cand], descending=True, stable=True)[1]
        cand = cand[order]
        if self.top_k > -1 and self.top_k < cand.shape[0]:
            cand = cand[: self.top_k]
        if not self.nms:
            return torch.arange(scores.shape[0], device=scores.device)
        kept = torch.zeros(cand.shape[0], dtype=torch.int64, device=scores.device)
        n_kept = 0
        threshold = self.nms_threshold
        for j in range(cand.shape[0]):
            idx = cand[j]
            keep = True
            if n_kept > 0:
                keep = bool((_jaccard(boxes[idx], boxes[kept[:n_kept]]) <= threshold).all())
            if keep:
                kept[n_kept] = idx
                n_kept += 1
                if self.eta < 1.0 and threshold > 0.5:
                    threshold = threshold * self.eta
        return kept[:n_kept]

    def _nms_classes(self, boxes: torch.Tensor, scores: torch.Tensor) -> list[torch.Tensor]:
        """_nms for all classes at once (boxes (C, P, 4), scores (C, P)): the greedy loop runs over the
        top_k candidates once, vectorised across classes, on their precomputed overlaps."""
        n_cls, n = scores.shape[0], scores.shape[1]
        above = scores > self.confidence_threshold
        ranked = torch.where(above, scores, torch.full_like(scores, float("-inf")))
        order = torch.sort(ranked, dim=1, descending=True, stable=True)[1]
        k = n if self.top_k < 0 else min(self.top_k, n)
        order = order[:, :k]
        valid = torch.gather(above, 1, order)
        cand = torch.gather(boxes, 1, order.unsqueeze(-1).expand(n_cls, k, 4))
        iou = _jaccard_matrix(cand)
        keep = torch.zeros(n_cls, k, dtype=torch.bool, device=scores.device)
        threshold = torch.full([n_cls], self.nms_threshold, dtype=scores.dtype, device=scores.device)
        for j in range(int(valid.sum(1).max().item()) if k > 0 else 0):
            ok = valid[:, j]
            if j > 0:
                ok = ok & ((iou[:, j, :j] <= threshold.unsqueeze(1)) | ~keep[:, :j]).all(1)
            keep[:, j] = ok
            if self.eta < 1.0:
                threshold = torch.where(ok & (threshold > 0.5), threshold * self.eta, threshold)
        return [order[c][keep[c]] for c in range(n_cls)]

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        num = loc.shape[0]
        n_priors = prior.shape[2] // 4
        n_loc = 1 if self.share_location else self.num_classes
        priors = prior[0, 0].reshape(n_priors, 4)
        var = prior[0, 1].reshape(n_priors, 4)
        boxes_all = self._decode(loc.reshape(num, n_priors, n_loc, 4), priors.unsqueeze(1), var.unsqueeze(1))
        scores_all = conf.reshape(num, n_priors, self.num_classes)
        labels: list[int] = []
        for c in range(self.num_classes):
            if c != self.background_label_id:
                labels.append(c)
        label_idx = torch.tensor(labels, dtype=torch.int64, device=loc.device)
        rows: list[torch.Tensor] = []
        for i in range(num):
            picks: list[torch.Tensor] = []
            scores = scores_all[i].index_select(1, label_idx).t()  # (classes, priors)
            if self.share_location:
                boxes = boxes_all[i, :, 0].unsqueeze(0).expand(len(labels), n_priors, 4)
            else:
                boxes = boxes_all[i].index_select(1, label_idx).transpose(0, 1)
            k = n_priors if self.top_k < 0 else min(self.top_k, n_priors)
            if self.nms and len(labels) * k * k <= 1 << 22:
                picks = self._nms_classes(boxes, scores)
            else:  # no top_k: the overlaps of all candidates would not fit, one class at a time
                for c in range(len(labels)):
                    picks.append(self._nms(boxes[c], scores[c]))
            total = 0
            for p in picks:
                total += p.shape[0]
            if self.keep_top_k > -1 and total > self.keep_top_k:
                all_scores: list[torch.Tensor] = []
                all_labels: list[torch.Tensor] = []
                for k in range(len(labels)):
                    all_scores.append(scores_all[i, picks[k], labels[k]])
                    all_labels.append(torch.full_like(picks[k], labels[k]))
                flat_scores = torch.cat(all_scores)
                flat_labels = torch.cat(all_labels)
                flat_idx = torch.cat(picks)
                best = torch.sort(flat_scores, descending=True, stable=True)[1][: self.keep_top_k]
                for k in range(len(labels)):
                    chosen = best[flat_labels[best] == labels[k]]
                    picks[k] = flat_idx[chosen]
            for k in range(len(labels)):
                idx = picks[k]
                if idx.shape[0] == 0:
                    continue
                c = labels[k]
                boxes = boxes_all[i, idx, 0 if self.share_location else c]
                head = torch.stack([torch.full_like(idx, i).to(loc.dtype), torch.full_like(idx, c).to(loc.dtype),
                                    scores_all[i, idx, c]], dim=1)
                rows.append(torch.cat([head, boxes], dim=1))
        if len(rows) == 0:
            out = torch.full((num, 7), -1.0, dtype=loc.dtype, device=loc.device)
            out[:, 0] = torch.arange(num, device=loc.device).to(loc.dtype)
            return out.reshape(1, 1, num, 7)
        return torch.cat(rows, dim=0).reshape(1, 1, -1, 7)



def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (torch.round rounds them to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)



class CaffeProposal(nn.Module):
    """Faster R-CNN's Proposal (this Caffe's C++ port): anchors shifted over the feature map, moved by the
    predicted deltas (box widths counted +1), clipped to the image (first row of im_info: height, width),
    scored by the foreground scores (0 when smaller than min_size), sorted, the best pre_nms_topn kept,
    greedy NMS (IoU with +1 sizes above nms_thresh drops a box), at most post_nms_topn per image.
    Tops: rois (R, 5) = (image, x1, y1, x2, y2) and optionally their scores (R,)."""

    def __init__(self, num_anchors: int, feat_stride: int = 16, min_size: int = 16,
                 pre_nms_topn: int = 6000, post_nms_topn: int = 300, nms_thresh: float = 0.7,
                 with_scores: bool = False):
        super().__init__()
        self.register_buffer("anchors", torch.zeros(num_anchors, 4))  # (x1, y1, x2, y2) around the origin
        self.feat_stride = feat_stride
        self.min_size = min_size
        self.pre_nms_topn = pre_nms_topn
        self.post_nms_topn = post_nms_topn
        self.nms_thresh = nms_thresh
        self.with_scores = with_scores

    def extra_repr(self) -> str:
        return (f"{self.anchors.shape[0]} anchors, feat_stride={self.feat_stride}, min_size={self.min_size}, "
                f"pre_nms_topn={self.pre_nms_topn}, post_nms_topn={self.post_nms_topn}, "
                f"nms_thresh={self.nms_thresh}")

    def forward(self, scores: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor) -> list[torch.Tensor]:
        n_anchors = self.anchors.shape[0]
        fh, fw = scores.shape[2], scores.shape[3]
        img_h = im_info.reshape(-1)[0]
        img_w = im_info.reshape(-1)[1]
        dtype = scores.dtype
        ys = torch.arange(fh, device=scores.device).to(dtype) * self.feat_stride
        xs = torch.arange(fw, device=scores.device).to(dtype) * self.feat_stride
        anchors = self.anchors.to(dtype)
        # proposals in Caffe's order: row, column, anchor
        x1 = xs.reshape(1, fw, 1) + anchors[:, 0].reshape(1, 1, -1)
        y1 = ys.reshape(fh, 1, 1) + anchors[:, 1].reshape(1, 1, -1)
        x2 = xs.reshape(1, fw, 1) + anchors[:, 2].reshape(1, 1, -1)
        y2 = ys.reshape(fh, 1, 1) + anchors[:, 3].reshape(1, 1, -1)
        rois: list[torch.Tensor] = []
        roi_scores: list[torch.Tensor] = []
        for n in range(scores.shape[0]):
            d = deltas[n].reshape(n_anchors, 4, fh, fw).permute(2, 3, 0, 1)
            w = x2 - x1 + 1.0
            h = y2 - y1 + 1.0
            cx = d[..., 0] * w + (x1 + 0.5 * w)
            cy = d[..., 1] * h + (y1 + 0.5 * h)
            pw = torch.exp(d[..., 2]) * w
            ph = torch.exp(d[..., 3]) * h
            bx1 = torch.clamp(torch.minimum(cx - 0.5 * pw, img_w - 1.0), min=0.0)
            by1 = torch.clamp(torch.minimum(cy - 0.5 * ph, img_h - 1.0), min=0.0)
            bx2 = torch.clamp(torch.minimum(cx + 0.5 * pw, img_w - 1.0), min=0.0)
            by2 = torch.clamp(torch.minimum(cy + 0.5 * ph, img_h - 1.0), min=0.0)
            big = ((bx2 - bx1 + 1.0) >= self.min_size) & ((by2 - by1 + 1.0) >= self.min_size)
            fg = scores[n, n_anchors:].permute(1, 2, 0)
            score = torch.where(big, fg, torch.zeros_like(fg)).reshape(-1)
            boxes = torch.stack([bx1, by1, bx2, by2], dim=-1).reshape(-1, 4)
            order = torch.sort(score, descending=True, stable=True)[1][: self.pre_nms_topn]
            boxes = boxes[order]
            score = score[order]
            areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
            dead = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
            keep: list[int] = []
            for i in range(boxes.shape[0]):
                if bool(dead[i]):
                    continue
                keep.append(i)
                if len(keep) == self.post_nms_topn:
                    break
                b = boxes[i]
                iw = torch.clamp(torch.minimum(boxes[:, 2], b[2]) - torch.maximum(boxes[:, 0], b[0]) + 1.0, min=0.0)
                ih = torch.clamp(torch.minimum(boxes[:, 3], b[3]) - torch.maximum(boxes[:, 1], b[1]) + 1.0, min=0.0)
                apart = (b[0] > boxes[:, 2]) | (b[1] > boxes[:, 3]) | (b[2] < boxes[:, 0]) | (b[3] < boxes[:, 1])
                inter = iw * ih
                iou = torch.where(apart, torch.zeros_like(inter), inter / (areas[i] + areas - inter))
                later = torch.arange(boxes.shape[0], device=boxes.device) > i
                dead = dead | (later & (iou > self.nms_thresh))
            idx = torch.tensor(keep, dtype=torch.int64, device=boxes.device)
            rois.append(torch.cat([torch.full((idx.shape[0], 1), float(n), dtype=dtype, device=boxes.device),
                                   boxes[idx]], dim=1))
            roi_scores.append(score[idx])
        out = [torch.cat(rois, dim=0)]
        if self.with_scores:
            out.append(torch.cat(roi_scores, dim=0))
        return out



class CaffePSROIPooling(nn.Module):
    """R-FCN's PSROIPooling (the CUDA kernel's rule; this Caffe has no CPU version): for each RoI (batch,
    x1, y1, x2, y2), rounded, +1 on the far edge, times spatial_scale, a group_size x group_size grid of
    bins (floor/ceil edges, clipped); bin (i, j) of output channel k averages input channel
    (k * group_size + i) * group_size + j over the bin (0 for an empty bin)."""

    def __init__(self, spatial_scale: float, output_dim: int, group_size: int):
        super().__init__()
        self.spatial_scale = spatial_scale
        self.output_dim = output_dim
        self.group_size = group_size

    def extra_repr(self) -> str:
        return f"spatial_scale={self.spatial_scale}, output_dim={self.output_dim}, group_size={self.group_size}"

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        g = self.group_size
        h, w = x.shape[2], x.shape[3]
        # integral image per channel, in float64 so that window sums keep their precision
        integral = F.pad(x.to(torch.float64).cumsum(2).cumsum(3), [1, 0, 1, 0])
        r = rois.reshape(-1, 5).to(torch.float32)
        ss = torch.tensor(self.spatial_scale, dtype=torch.float32)
        x1 = _round_half_away(r[:, 1]) * ss
        y1 = _round_half_away(r[:, 2]) * ss
        x2 = (_round_half_away(r[:, 3]) + 1.0) * ss
        y2 = (_round_half_away(r[:, 4]) + 1.0) * ss
        bin_w = torch.clamp(x2 - x1, min=0.1) / float(g)
        bin_h = torch.clamp(y2 - y1, min=0.1) / float(g)
        steps = torch.arange(g, dtype=torch.float32, device=x.device)
        hs = torch.clamp(torch.floor(steps[None, :] * bin_h[:, None] + y1[:, None]), 0, h).to(torch.int64)
        he = torch.clamp(torch.ceil((steps[None, :] + 1) * bin_h[:, None] + y1[:, None]), 0, h).to(torch.int64)
        ws = torch.clamp(torch.floor(steps[None, :] * bin_w[:, None] + x1[:, None]), 0, w).to(torch.int64)
        we = torch.clamp(torch.ceil((steps[None, :] + 1) * bin_w[:, None] + x1[:, None]), 0, w).to(torch.int64)
        chan = (torch.arange(self.output_dim, device=x.device).reshape(-1, 1, 1) * g
                + torch.arange(g, device=x.device).reshape(1, -1, 1)) * g + torch.arange(g, device=x.device)
        outs: list[torch.Tensor] = []
        for k in range(r.shape[0]):
            plane = integral[int(r[k, 0].item())]  # (C, H + 1, W + 1)
            a = plane[chan, hs[k].reshape(1, -1, 1), ws[k].reshape(1, 1, -1)]
            b = plane[chan, hs[k].reshape(1, -1, 1), we[k].reshape(1, 1, -1)]
            c = plane[chan, he[k].reshape(1, -1, 1), ws[k].reshape(1, 1, -1)]
            d = plane[chan, he[k].reshape(1, -1, 1), we[k].reshape(1, 1, -1)]
            area = ((he[k] - hs[k]).reshape(-1, 1) * (we[k] - ws[k]).reshape(1, -1)).to(torch.float64)
            total = d - b - c + a
            outs.append(torch.where(area > 0, total / area.clamp(min=1.0), torch.zeros_like(total)))
        return torch.stack(outs, 0).to(x.dtype)



class CaffeROIPooling(nn.Module):
    """py-faster-rcnn's ROIPooling (roi_pooling_layer.cpp): each RoI (batch, x1, y1, x2, y2) is rounded (C
    round) and scaled by spatial_scale, its size is end - start + 1 (at least 1), and it is cut into
    pooled_h x pooled_w bins with floor/ceil edges, shifted by the RoI start and clipped to the map; a bin
    is the max of its values, 0 when empty."""

    def __init__(self, pooled_h: int, pooled_w: int, spatial_scale: float):
        super().__init__()
        self.pooled_h = pooled_h
        self.pooled_w = pooled_w
        self.spatial_scale = spatial_scale

    def extra_repr(self) -> str:
        return f"pooled_h={self.pooled_h}, pooled_w={self.pooled_w}, spatial_scale={self.spatial_scale}"

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        r = rois.reshape(-1, 5).to(torch.float32)
        ss = torch.tensor(self.spatial_scale, dtype=torch.float32)
        x1 = _round_half_away(r[:, 1] * ss)
        y1 = _round_half_away(r[:, 2] * ss)
        x2 = _round_half_away(r[:, 3] * ss)
        y2 = _round_half_away(r[:, 4] * ss)
        bin_h = torch.clamp(y2 - y1 + 1.0, min=1.0) / float(self.pooled_h)
        bin_w = torch.clamp(x2 - x1 + 1.0, min=1.0) / float(self.pooled_w)
        sh = torch.arange(self.pooled_h, dtype=torch.float32, device=x.device)
        sw = torch.arange(self.pooled_w, dtype=torch.float32, device=x.device)
        hs = torch.clamp(torch.floor(sh[None, :] * bin_h[:, None]) + y1[:, None], 0, h).to(torch.int64)
        he = torch.clamp(torch.ceil((sh[None, :] + 1) * bin_h[:, None]) + y1[:, None], 0, h).to(torch.int64)
        ws = torch.clamp(torch.floor(sw[None, :] * bin_w[:, None]) + x1[:, None], 0, w).to(torch.int64)
        we = torch.clamp(torch.ceil((sw[None, :] + 1) * bin_w[:, None]) + x1[:, None], 0, w).to(torch.int64)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        outs: list[torch.Tensor] = []
        for k in range(r.shape[0]):
            plane = x[int(r[k, 0].item())]  # (C, H, W)
            mh = (rows[None, :] >= hs[k][:, None]) & (rows[None, :] < he[k][:, None])  # (ph, H)
            mw = (cols[None, :] >= ws[k][:, None]) & (cols[None, :] < we[k][:, None])  # (pw, W)
            # max over each bin's columns, then over its rows
            by_col = torch.where(mw[None, None, :, :], plane[:, :, None, :], float("-inf")).amax(3)  # (C, H, pw)
            by_bin = torch.where(mh[None, :, :, None], by_col[:, None, :, :], float("-inf")).amax(2)  # (C, ph, pw)
            empty = ~(mh.any(1)[:, None] & mw.any(1)[None, :])
            outs.append(torch.where(empty[None], torch.zeros_like(by_bin), by_bin))
        if len(outs) == 0:
            return x.new_zeros((0, x.shape[1], self.pooled_h, self.pooled_w))
        return torch.stack(outs, 0)
