"""Robust image reading for real-world product photos.

One reader for every step, so an image, its mask and its LMDB record always agree:

* EXIF orientation is applied (a phone photo stored sideways comes out upright);
* CMYK / YCCK JPEGs (Adobe, inverted or not), palette, gray, gray+alpha, 16-bit PNG/TIFF, WebP, BMP,
  GIF (first frame) all become 8-bit RGB, plus the alpha channel when there is a non-opaque one;
* 16-bit data is scaled (65535 -> 255), never clipped (Pillow's own `convert("L")` clips I;16 to white);
* the pixel count is checked from the header before anything is decoded: a decompression bomb (a tiny
  file declaring, say, 30000x30000 pixels) is refused without allocating it;
* zero-byte, non-image, truncated and corrupt files raise `ImageReadError` with a short reason and a
  `code` (empty-file, not-image, too-large, corrupt) that the steps record in their manifests.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}  # what folder arguments pick up
DEFAULT_MAX_PIXELS = 64_000_000  # 64 MP: above any product photo, far below a bomb's gigapixels
_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """A file that cannot be used as an image; `code` is a short category for manifests."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Loaded:
    pixels: np.ndarray  # (H, W, 3) uint8, upright, channels in `order`
    alpha: np.ndarray | None  # (H, W) uint8, or None when absent or fully opaque
    format: str  # "JPEG", "PNG", ...
    mode: str  # the file's Pillow mode before conversion ("CMYK", "I;16", "RGBA", ...)
    order: str = "rgb"  # "rgb" or "bgr" (OpenCV's and Caffe's order)

    @property
    def rgb(self) -> np.ndarray:
        return self.pixels if self.order == "rgb" else np.ascontiguousarray(self.pixels[..., ::-1])


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _signature(path: str | os.PathLike) -> str | None:
    """The image format a file's first bytes announce (WebP: RIFF....WEBP), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def _open(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageReadError("missing", "no such file") from None
    except OSError as exc:
        raise ImageReadError("unreadable", f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageReadError("empty-file", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            "too-large", f"declares too many pixels ({exc}); a decompression bomb?"
        ) from None
    except UnidentifiedImageError:
        kind = _signature(path)
        if kind is not None:  # an image file by its signature that Pillow cannot even open: a broken one
            raise ImageReadError("corrupt", f"a {kind} file whose header is broken (bad CRC, size or structure)"
                                 ) from None
        raise ImageReadError("not-image", "not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError("corrupt", f"corrupt image header ({exc})") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageReadError(
            "too-large",
            f"{w}x{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:g} MP "
            "limit (decompression-bomb guard; raise --max-pixels if it is genuine)",
        )
    if w == 0 or h == 0:
        im.close()
        raise ImageReadError("corrupt", f"image has zero size ({w}x{h})")
    return im


def _decode(im: Image.Image) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib errors...
        msg = str(exc) or type(exc).__name__
        code = "truncated" if "truncated" in msg or isinstance(exc, EOFError) else "corrupt"
        raise ImageReadError(
            code, f"{'truncated' if code == 'truncated' else 'corrupt'} image data ({msg})"
        ) from None
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block should not cost the picture
        orientation = 1
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        im = ImageOps.exif_transpose(im)
    return im


def _to_uint8(a: np.ndarray, top: int | None = None) -> np.ndarray:
    """Scale 16-bit (or wider) integer / float samples to uint8 without clipping the range away.

    `top` is the value that maps to 255 (65535 for 16-bit files); None guesses it from the data.
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float32))
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    if top is None:
        top = 255 if a.max(initial=0) <= 255 else 65535
    return np.clip((a * 255 + top // 2) // top, 0, 255).astype(np.uint8)


def _gray3(g: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(g), cv2.COLOR_GRAY2RGB)


def _convert(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    alpha = None
    if mode == "RGB":
        rgb = np.asarray(im)
    elif mode == "RGBA":
        a = np.asarray(im)
        rgb, alpha = a[..., :3], a[..., 3]
    elif mode in ("L", "1"):
        rgb = _gray3(np.asarray(im.convert("L") if mode == "1" else im))
    elif mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in im.info):
        a = np.asarray(im.convert("RGBA"))
        rgb, alpha = a[..., :3], a[..., 3]
    elif mode.startswith("I") or mode == "F":  # I;16, I;16B, I;16L, I, F: one wide channel
        rgb = _gray3(_to_uint8(np.asarray(im), 65535 if mode.startswith("I;16") else None))
    else:  # CMYK (Pillow undoes Adobe inversion), YCbCr, LAB, HSV, P without transparency
        rgb = np.asarray(im.convert("RGB"))
    if alpha is not None and int(alpha.min()) == 255:
        alpha = None
    return np.ascontiguousarray(rgb), (None if alpha is None else np.ascontiguousarray(alpha))


# EXIF orientation -> the transform that makes the picture upright (as Pillow's ImageOps.exif_transpose)
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _fast_jpeg(path, im: Image.Image) -> np.ndarray | None:
    """BGR pixels of a complete baseline RGB/gray JPEG via OpenCV (~2x faster than Pillow), else None.

    Only files that end in an EOI marker take this path: OpenCV would silently return a truncated JPEG
    half grey, so those (and CMYK, and anything odd) go through Pillow, which reports them.
    """
    if im.format != "JPEG" or im.mode not in ("RGB", "L"):
        return None
    with open(path, "rb") as f:
        buf = f.read()
    if b"\xff\xd9" not in buf[-64:]:
        return None
    bgr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != im.size[::-1]:
        return None
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:
        orientation = 1
    if orientation in _UPRIGHT:
        bgr = np.ascontiguousarray(_UPRIGHT[orientation](bgr))
    return bgr


def read_image(
    path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, order: str = "rgb"
) -> Loaded:
    """Read any supported photo as upright 8-bit pixels in `order` ("rgb" or "bgr"), plus a non-opaque alpha."""
    im = _open(path, max_pixels)
    try:
        fmt, mode = im.format or "?", im.mode
        bgr = _fast_jpeg(path, im)
        if bgr is not None:
            return Loaded(
                bgr if order == "bgr" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, fmt, mode, order
            )
        im = _decode(im)
        rgb, alpha = _convert(im)
    finally:
        im.close()
    if order == "bgr":
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return Loaded(rgb, alpha, fmt, mode, order)


def flatten_on_white(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite an image with alpha over white, as a product cut-out would look in a white-background shot."""
    if alpha is None:
        return pixels
    out = np.empty_like(pixels)
    for y in range(0, pixels.shape[0], 256):  # in bands of rows: no full-size float copy of a large image
        a = alpha[y:y + 256].astype(np.float32)[..., None] * (1.0 / 255.0)
        out[y:y + 256] = (pixels[y:y + 256].astype(np.float32) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    return out


def read_rgb(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The photo as upright RGB uint8, transparent parts flattened onto white."""
    img = read_image(path, max_pixels=max_pixels)
    return flatten_on_white(img.pixels, img.alpha)


def read_bgr(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """As read_rgb, in OpenCV's / Caffe's BGR order."""
    img = read_image(path, max_pixels=max_pixels, order="bgr")
    return flatten_on_white(img.pixels, img.alpha)


def read_mask(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A mask file as (H, W) uint8 with its stored values kept.

    Palette PNGs (VOC's SegmentationClass style) give their palette indices, gray masks their gray
    values, 16-bit masks are scaled to 8 bits only when they exceed 255, colour masks their brightest
    channel, and an RGBA mask whose colour is constant its alpha.
    """
    im = _open(path, max_pixels)
    try:
        im = _decode(im)
        mode = im.mode
        if mode in ("P", "L"):
            m = np.asarray(im)
        elif mode == "1":
            m = np.asarray(im.convert("L"))
        elif mode.startswith("I") or mode == "F":
            m = _to_uint8(np.asarray(im))
        else:
            rgba = np.asarray(im.convert("RGBA"))
            rgb = rgba[..., :3]
            if int(rgba[..., 3].min()) < 255 and int(rgb.max()) == int(rgb.min()):
                m = rgba[..., 3]
            else:
                m = rgb.max(axis=2)
    finally:
        im.close()
    return np.ascontiguousarray(m, dtype=np.uint8)


def histogram(a: np.ndarray) -> np.ndarray:
    """256-bin histogram of a uint8 array (OpenCV's, ~10x faster than np.bincount on images)."""
    return cv2.calcHist([np.ascontiguousarray(a)], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def mask_to_label(mask: np.ndarray, mask_format: str = "auto") -> np.ndarray:
    """Class ids (0 background, 1 sneaker, 255 ignore) from a mask file's values.

    binary: >= 128 is sneaker (0/255 masks as `prep masks` writes them, antialiased gray masks);
    ids:    values are already class ids, 0/1/255 (VOC-style), anything else is an error;
    auto:   ids when the mask holds a 1 and only 0/1/255, else binary.
    """
    if mask_format == "auto":
        present = np.flatnonzero(histogram(mask))
        mask_format = "ids" if 1 in present and set(present.tolist()) <= {0, 1, 255} else "binary"
    if mask_format == "binary":
        return cv2.threshold(mask, 127, 1, cv2.THRESH_BINARY)[1]
    if mask_format == "ids":
        bad = np.setdiff1d(np.unique(mask), [0, 1, 255])
        if bad.size:
            raise ValueError(f"mask holds class ids {bad[:5].tolist()} outside 0/1/255")
        return mask.astype(np.uint8, copy=False)
    raise ValueError(f"unknown mask format {mask_format!r}")


def encode_png(a: np.ndarray, *, binary: bool = False) -> bytes:
    """PNG bytes (deterministic); binary 0/255 masks are written 1-bit, which is 5x faster to encode."""
    params = [cv2.IMWRITE_PNG_BILEVEL, 1] if binary else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(".png", a, params)
    if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(bgr: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
