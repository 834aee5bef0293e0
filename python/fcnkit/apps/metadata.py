"""Per-image facts about a predicted mask, so that bad cut-outs can be sent to review.

`remove-bg --json` and the server's `POST /api/remove.json` both report `describe(...)`:

- `width`, `height`: the image as a viewer shows it (EXIF orientation applied);
- `model`, `backend`, `postprocess`: what produced the mask;
- `foreground`: share of pixels on the object (0..1), after post-processing;
- `bbox`: the object's bounding box `{x, y, width, height}` in pixels, or null for an empty mask;
- `uncertain`: share of pixels whose foreground probability lies strictly between 0.1 and 0.9 (from the
  model's raw output, before post-processing): a blurry, hesitant mask scores high;
- `empty` (foreground below 0.1 %), `whole_frame` (foreground 98 % or more, or the box touching all four
  edges with foreground above 90 %), and `review` with its `reasons` (either flag, or uncertain above 20 %).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

UNCERTAIN_BAND = (0.1, 0.9)          # probability band counted as uncertain
EMPTY_BELOW = 0.001                  # foreground share under which a mask counts as empty
WHOLE_FRAME_FROM = 0.98              # foreground share from which a mask counts as the whole frame
WHOLE_FRAME_EDGES_FROM = 0.90        # ... or this share with the box touching every edge
REVIEW_UNCERTAIN_ABOVE = 0.20        # uncertain share above which a mask is sent to review
# p = sigmoid(logit): p in (0.1, 0.9) <=> |logit| < ln 9 (the band is symmetric), no sigmoid needed.
_UNCERTAIN_LOGIT = math.log(UNCERTAIN_BAND[1] / (1 - UNCERTAIN_BAND[1]))


def bounding_box(mask: np.ndarray) -> dict | None:
    """The box around the non-zero pixels of a (H, W) mask, or None when there are none."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    return None if w == 0 or h == 0 else {"x": int(x), "y": int(y), "width": int(w), "height": int(h)}


def describe(mask: np.ndarray, logit: np.ndarray, *, model: str = "", backend: str = "",
             postprocess: str | None = None) -> dict:
    """The metadata dict above for a 0/1 `mask` and the foreground log-odds `logit` it came from."""
    h, w = mask.shape[:2]
    n = max(1, h * w)
    fg = float(np.count_nonzero(mask)) / n
    uncertain = float(sum(np.count_nonzero(np.abs(logit[y:y + 256]) < _UNCERTAIN_LOGIT)  # bands: no full-size copy
                          for y in range(0, h, 256))) / n
    box = bounding_box(mask)
    touches_all = box is not None and box["x"] == 0 and box["y"] == 0 and box["width"] == w and box["height"] == h
    empty = fg < EMPTY_BELOW
    whole = fg >= WHOLE_FRAME_FROM or (touches_all and fg >= WHOLE_FRAME_EDGES_FROM)
    reasons = [r for r, hit in (("empty mask", empty), ("whole-frame mask", whole),
                                (f"uncertain pixels above {REVIEW_UNCERTAIN_ABOVE:.0%}",
                                 uncertain > REVIEW_UNCERTAIN_ABOVE)) if hit]
    return {"width": int(w), "height": int(h), "model": model, "backend": backend,
            "postprocess": postprocess or "none", "foreground": round(fg, 6), "bbox": box,
            "uncertain": round(uncertain, 6), "empty": empty, "whole_frame": whole,
            "review": bool(reasons), "reasons": reasons}
