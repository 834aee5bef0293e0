"""`Predictor`: any backend, one question: how likely is each pixel of this image to be the object?

Every model, whatever its framework and output, answers with a foreground log-odds map at the image's
own resolution: for 2-class scores (FCN) the difference s1 - s0 (softmax's log-odds, so `logit > 0` is
exactly argmax), for a sigmoid model its logit. Probability = sigmoid(log-odds); mask = log-odds > 0.

Resolution: the image is run at the size the model's preprocessing asks for (its own size for fully
convolutional nets). Images whose longer side exceeds `max_side` are first resized down (area
interpolation); raw outputs are resized back (bilinear) before the log-odds are taken, so the answer
always matches the input pixel for pixel. Batches group images that run at the same size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from fcnkit.errors import UserError
from fcnkit.inference.postprocess import postprocess_extractnet
from fcnkit.models.registry import Preprocessing


def _resize_maps(maps: np.ndarray, h: int, w: int) -> np.ndarray:
    """(C, h0, w0) -> (C, h, w), bilinear per channel."""
    if maps.shape[1:] == (h, w):
        return maps
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in maps])


class Predictor:
    def __init__(self, backend, preprocessing: Preprocessing, output: str, *, label: str = "",
                 max_side: int = 0, batch_size: int = 1):
        self.backend = backend
        self.preprocessing = preprocessing
        self.output = output
        self.label = label
        self.max_side = max_side
        self.batch_size = max(1, batch_size)

    @property
    def name(self) -> str:
        return self.backend.name

    def _net_image(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        if self.max_side and max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            bgr = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        nh, nw = self.preprocessing.input_size(*bgr.shape[:2])
        if (nh, nw) != bgr.shape[:2]:
            shrink = nh * nw < bgr.shape[0] * bgr.shape[1]
            bgr = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return bgr

    def scores_many(self, images: Iterable[np.ndarray], reduce=None) -> Iterator[np.ndarray]:
        """Raw outputs (C, H, W) at each image's own size, in input order; same-size images share batches.
        `reduce` (C, h, w) -> (C', h, w) is applied at the net's resolution, before the resize to the image's
        size (the log-odds: one full-size channel instead of C)."""
        images = list(images)
        nets = [self._net_image(im) for im in images]
        out: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, x in enumerate(nets):
            by_size.setdefault(x.shape[:2], []).append(i)
        for idx in by_size.values():
            for k in range(0, len(idx), self.batch_size):
                chunk = idx[k:k + self.batch_size]
                batch = np.stack([self.preprocessing.to_input(nets[i]) for i in chunk])
                y = self.backend.forward(batch)
                if not np.isfinite(y).all():
                    n = int(y.size - np.isfinite(y).sum())
                    raise UserError(f"model {self.label or self.name} ({self.name}) gave {n} NaN/inf output values; "
                                    "its weights are corrupt or diverged (`convert` names the layers): no mask is "
                                    "made from it")
                for j, i in enumerate(chunk):
                    out[i] = _resize_maps(y[j] if reduce is None else reduce(y[j]), *images[i].shape[:2])
        return iter(out)

    def scores(self, bgr: np.ndarray) -> np.ndarray:
        """Raw output (C, H, W) at the image's own size."""
        return next(self.scores_many([bgr]))

    def logit_from_scores(self, scores: np.ndarray) -> np.ndarray:
        if self.output == "softmax2":
            return scores[1] - scores[0]
        return scores[0]

    def _logit_map(self, scores: np.ndarray) -> np.ndarray:
        """(C, h, w) raw output -> (1, h, w) log-odds. Bilinear resizing is linear, so taking the log-odds
        before resizing gives the same map while only one full-size float channel is ever allocated."""
        return np.ascontiguousarray(self.logit_from_scores(scores)[None], dtype=np.float32)

    def logits(self, images: Iterable[np.ndarray]) -> list[np.ndarray]:
        return [s[0] for s in self.scores_many(images, reduce=self._logit_map)]

    def logit(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W) float32 foreground log-odds."""
        return self.logits([bgr])[0]

    def proba(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W) float32 foreground probability."""
        return probability(self.logit(bgr))

    def mask(self, bgr: np.ndarray, postprocess: str | None = None) -> np.ndarray:
        """(H, W) uint8 0/1 mask."""
        return to_mask(self.logit(bgr), postprocess)


def probability(logit: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -80, 80)))).astype(np.float32)


def to_mask(logit: np.ndarray, postprocess: str | None = None) -> np.ndarray:
    mask = (logit > 0).astype(np.uint8)
    if postprocess == "extractnet":
        mask = postprocess_extractnet(mask)
    elif postprocess not in (None, "none"):
        raise ValueError(f"unknown post-processing {postprocess!r}")
    return mask
