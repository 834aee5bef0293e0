"""From a photo and a model to the file people want; shared by `remove-bg` and `serve`.

- `segment_many(predictor, images, postprocess)`: masks and foreground log-odds for decoded images, in
  batches through `fcnkit.inference` (transparent areas are flattened onto white for the net);
- `render(image, mask, look)`: the cut-out on transparency, the mask, or the object over a background
  colour, optionally cropped to the subject with a margin;
- `encode(array, fmt)`: PNG, WebP or JPEG bytes (JPEG has no alpha: a cut-out is put on white unless a
  background colour is given).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fcnkit.inference import to_mask
from fcnkit.io.images import Loaded, encode_jpeg, encode_png, flatten_on_white

OUTPUTS = ("cutout", "mask")
FORMATS = ("png", "webp", "jpeg")
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
POSTPROCESS = ("none", "extractnet")
WEBP_QUALITY = 90  # cut-outs; masks are written lossless (101)
WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class Look:
    """What to make of a mask: `output` cutout|mask, `bgcolor` RGBA or None (transparent), `fmt`,
    `crop` to the subject's box grown by `margin` pixels on each side."""

    output: str = "cutout"
    bgcolor: tuple[int, int, int, int] | None = None
    fmt: str = "png"
    crop: bool = False
    margin: int = 0

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.margin < 0:
            raise ValueError(f"margin must be 0 or more pixels, got {self.margin}")

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.fmt]


def parse_bgcolor(text: str) -> tuple[int, int, int, int]:
    """`r,g,b` or `r,g,b,a`, each 0-255 -> (r, g, b, a); ValueError with the reason otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (3, 4) or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"background colour must be r,g,b or r,g,b,a with values 0-255, got {text!r}")
    r, g, b, *a = map(int, parts)
    return r, g, b, (a[0] if a else 255)


def segment_many(predictor, images: list[Loaded], postprocess: str | None = None):
    """[(mask (H, W) uint8 0/1, logit (H, W) float32)] for decoded images (BGR), batched by the predictor."""
    pp = None if postprocess in (None, "none") else postprocess
    logits = predictor.logits([flatten_on_white(im.pixels, im.alpha) for im in images])
    return [(to_mask(logit, pp), logit) for logit in logits]


def subject_box(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the mask's non-zero pixels grown by `margin`, clipped to the image; None if empty."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    if w == 0 or h == 0:
        return None
    H, W = mask.shape[:2]
    return max(0, x - margin), max(0, y - margin), min(W, x + w + margin), min(H, y + h + margin)


BAND_ROWS = 256  # float work is done this many rows at a time: no full-size float copy of a large image


def _over(bgr: np.ndarray, alpha: np.ndarray, bg: tuple[int, int, int, int]) -> np.ndarray:
    """Porter-Duff "over": the object (BGR, alpha) on a flat RGBA colour -> BGR if the colour is opaque, else BGRA.
    Computed in bands of rows, so the float temporaries stay a few MB whatever the image size."""
    out = np.empty((*bgr.shape[:2], 3 if bg[3] == 255 else 4), np.uint8)
    for y in range(0, bgr.shape[0], BAND_ROWS):
        out[y:y + BAND_ROWS] = _over_band(bgr[y:y + BAND_ROWS], alpha[y:y + BAND_ROWS], bg)
    return out


def _over_band(bgr: np.ndarray, alpha: np.ndarray, bg: tuple[int, int, int, int]) -> np.ndarray:
    fa = alpha.astype(np.float32)[..., None] / 255.0
    ba = bg[3] / 255.0
    colour = np.array(bg[2::-1], np.float32)  # RGB -> BGR
    out_a = fa + ba * (1.0 - fa)
    out = (bgr.astype(np.float32) * fa + colour * (ba * (1.0 - fa))) / np.maximum(out_a, 1e-6)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if bg[3] == 255:
        return out
    return np.dstack([out, np.clip(out_a[..., 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)])


def render(image: Loaded, mask: np.ndarray, look: Look) -> np.ndarray:
    """The output picture (uint8; gray for masks, BGR or BGRA otherwise) at the image's own resolution or cropped.
    Cut-out alpha = mask x the input's own alpha, so transparent input stays transparent."""
    bgr = image.pixels if image.order == "bgr" else image.pixels[..., ::-1]
    if look.output == "mask":
        out = mask.astype(np.uint8) * 255
    else:
        a = mask.astype(np.uint8) * 255
        if image.alpha is not None:
            a = np.minimum(a, image.alpha)
        bg = look.bgcolor or (WHITE if look.fmt == "jpeg" else None)
        out = _over(bgr, a, bg) if bg else np.dstack([bgr, a])
    if look.crop:
        box = subject_box(mask, look.margin)
        if box is not None:
            x0, y0, x1, y1 = box
            out = out[y0:y1, x0:x1]
    return np.ascontiguousarray(out)


def encode(picture: np.ndarray, fmt: str) -> bytes:
    """`render`'s output as file bytes; JPEG drops an alpha channel (render already flattened it)."""
    binary = picture.ndim == 2 and not np.any((picture != 0) & (picture != 255))
    if fmt == "png":
        return encode_png(picture, binary=binary)
    if fmt == "jpeg":
        return encode_jpeg(picture[..., :3] if picture.ndim == 3 else picture)
    if fmt == "webp":
        quality = 101 if picture.ndim == 2 else WEBP_QUALITY  # > 100: lossless
        ok, buf = cv2.imencode(".webp", picture, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes
            raise RuntimeError("WebP encoding failed")
        return buf.tobytes()
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
