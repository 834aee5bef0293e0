"""`prep masks`: binary masks from product photos on white backgrounds, by the paper's rule.

The rule (paper, §Data): "setting the white backgrounds to 0 and anything not within some small range
of white to 1". Here a pixel is background when *every* channel is within `tolerance` of 255, i.e.
min(R, G, B) >= 255 - tolerance (the Chebyshev distance to white). The default tolerance, 20, absorbs
JPEG noise and faint studio shadows on a white sweep while keeping light-grey and pastel product parts.

Optional clean-up, in this order (all on by default, each can be switched off):

1. fill holes: background regions not connected to the image border become foreground, so the white
   panels of a white sneaker, enclosed by its seams, sole and laces, stay part of the shoe;
2. drop specks: connected foreground components smaller than `min_component` of the image area
   (dust, JPEG ringing, stray text) are removed;
3. keep components: only the `keep_components` largest components are kept (2: a pair; 0: all).

A photo with a non-opaque alpha channel uses the alpha instead (alpha >= 128 is foreground; steps 2-3
still apply, holes are kept because the alpha is authoritative).

Skipped, with the reason in the manifest: unreadable inputs (see fcnkit.io.images), all-white photos (mask
below `min_fg` of the image), and photos without a white background, where the rule cannot work:
less than `min_border_white` of the image border is near-white, or the mask covers more than `max_fg`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.paper import WHITE_TOLERANCE
from fcnkit.errors import UserError
from fcnkit.io.images import DEFAULT_MAX_PIXELS, ImageReadError, encode_png, read_image, write_bytes
from fcnkit.prep import common
from fcnkit.prep import preview as previews


@dataclass(frozen=True)
class MaskOptions:
    tolerance: int = WHITE_TOLERANCE
    fill_holes: bool = True
    min_component: float = 0.001
    keep_components: int = 2
    use_alpha: bool = True
    min_fg: float = 0.002
    max_fg: float = 0.9
    min_border_white: float = 0.5
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if not 0 <= self.tolerance <= 254:
            raise UserError(f"--tolerance {self.tolerance}: must be 0..254 (distance from white, 8-bit)")
        for name in ("min_component", "min_fg", "max_fg", "min_border_white"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise UserError(f"--{name.replace('_', '-')} {v}: must be a fraction between 0 and 1")


def white_rule(pixels: np.ndarray, tolerance: int) -> np.ndarray:
    """0/255 uint8 foreground: pixels with some channel more than `tolerance` below 255 (any channel order)."""
    c0, c1, c2 = cv2.split(pixels)
    darkest = cv2.min(cv2.min(c0, c1), c2)
    # darkest < 255 - tol  <=>  darkest <= 254 - tol (threshold: any image size, unlike cv2.compare on 1x1)
    return cv2.threshold(darkest, 254 - tolerance, 255, cv2.THRESH_BINARY_INV)[1]


def fill_holes(fg: np.ndarray) -> np.ndarray:
    """Background not 4-connected to the image border becomes foreground."""
    bg = cv2.bitwise_not(fg)
    padded = cv2.copyMakeBorder(bg, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)
    cv2.floodFill(padded, None, (0, 0), 0)  # everything reachable from outside -> 0; holes stay 255
    return cv2.bitwise_or(fg, padded[1:-1, 1:-1])


def keep_components(fg: np.ndarray, min_area: int, keep: int) -> np.ndarray:
    """Drop 8-connected components below `min_area` pixels, then keep the `keep` largest (0: all)."""
    # 16-bit labels halve the memory traffic; a speckled image with >= 65535 blobs falls back to 32-bit.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8, ltype=cv2.CV_16U)
    if n >= 65535:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return fg
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    ids = np.flatnonzero(areas >= max(1, min_area))
    if keep > 0 and ids.size > keep:
        ids = ids[np.argsort(-areas[ids], kind="stable")[:keep]]
    if ids.size == n - 1:
        return fg
    if ids.size <= 4:  # the usual case (one shoe or a pair): a few comparisons beat a lookup table
        keep_mask = labels == ids[0]
        for i in ids[1:]:
            keep_mask |= labels == i
        return keep_mask.view(np.uint8) * np.uint8(255)
    lut = np.zeros(n, np.uint8)
    lut[ids] = 255
    return lut[labels]


def border_white_fraction(bg: np.ndarray) -> float:
    """Fraction of the image's outer band (1 % of the short side, >= 1 px) that is background (> 0)."""
    h, w = bg.shape
    k = max(1, round(0.01 * min(h, w)))
    band = np.concatenate([bg[:k].ravel(), bg[-k:].ravel(), bg[k:-k, :k].ravel(), bg[k:-k, -k:].ravel()])
    return float(np.count_nonzero(band)) / max(1, band.size)


@dataclass
class MaskResult:
    mask: np.ndarray | None
    method: str  # "white" or "alpha"
    fg_fraction: float
    border_white: float | None
    code: str | None = None  # None when usable, else the skip category
    reason: str | None = None


def compute_mask(
    pixels: np.ndarray, alpha: np.ndarray | None, opts: MaskOptions = MaskOptions()
) -> MaskResult:
    """The mask of one photo (RGB or BGR: the rule is symmetric) as 0/255 uint8, or why there is none."""
    h, w = pixels.shape[:2]
    area = h * w
    if alpha is not None and opts.use_alpha:
        method, border = "alpha", None
        fg = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)[1]
    else:
        method = "white"
        fg = white_rule(pixels, opts.tolerance)
        raw_fg = cv2.countNonZero(fg) / area
        border = border_white_fraction(cv2.bitwise_not(fg))
        if border < opts.min_border_white or raw_fg > opts.max_fg:
            return MaskResult(
                None,
                method,
                raw_fg,
                border,
                "no-white-background",
                f"no white background: only {border:.0%} of the image border is within "
                f"{opts.tolerance} of white and the rule marks {raw_fg:.0%} of the image as "
                "object; use a photo on white (or one with an alpha channel)",
            )
        if opts.fill_holes:
            fg = fill_holes(fg)
    if opts.min_component > 0 or opts.keep_components > 0:
        fg = keep_components(fg, int(opts.min_component * area), opts.keep_components)
    frac = cv2.countNonZero(fg) / area
    if frac < opts.min_fg:
        what = (
            "fully transparent"
            if method == "alpha"
            else f"all white (nothing differs from white by more than {opts.tolerance})"
        )
        return MaskResult(
            None, method, frac, border, "all-white", f"{what}: empty mask ({frac:.2%} of the image)"
        )
    if frac > opts.max_fg:
        return MaskResult(
            None,
            method,
            frac,
            border,
            "no-white-background",
            f"mask covers {frac:.0%} of the image (over --max-fg {opts.max_fg:g}): no background left",
        )
    return MaskResult(fg, method, frac, border)


# --------------------------------------------------------------------------------------------- the step

_W: dict = {}


def _init(opts: MaskOptions, staging: str) -> None:
    _W.update(opts=opts, staging=staging)


def _one(task: tuple[str, str, str]) -> dict:
    src, mask_rel, source_rel = task
    row = {"image": source_rel, "source": source_rel, "name": Path(mask_rel).with_suffix("").name}
    try:
        img = read_image(src, max_pixels=_W["opts"].max_pixels, order="bgr")
    except ImageReadError as exc:
        return row | {"status": "skipped", "code": exc.code, "reason": exc.reason, "mask": None}
    res = compute_mask(img.pixels, img.alpha, _W["opts"])
    h, w = img.pixels.shape[:2]
    row |= {
        "width": w,
        "height": h,
        "format": img.format,
        "mode": img.mode,
        "method": res.method,
        "fg_fraction": round(res.fg_fraction, 5),
        "border_white": None if res.border_white is None else round(res.border_white, 4),
    }
    if res.mask is None:
        return row | {"status": "skipped", "code": res.code, "reason": res.reason, "mask": None}
    out = Path(_W["staging"]) / mask_rel
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, encode_png(res.mask, binary=True))
    return row | {"status": "ok", "mask": mask_rel}


def _mask_names(files: list[Path], root: Path) -> list[str]:
    """masks/<relative path>.png, with the original suffix kept where two inputs share a stem."""
    names, taken = [], set()
    for f in files:
        rel = f.relative_to(root)
        name = rel.with_suffix(".png").as_posix()
        if name in taken:
            name = rel.with_name(rel.name + ".png").as_posix()
        taken.add(name)
        names.append("masks/" + name)
    return names


def run_masks(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    opts: MaskOptions = MaskOptions(),
    *,
    workers: int | None = None,
    strict: bool = False,
    force: bool = False,
    preview: bool = True,
    quiet: bool = False,
    limit: int | None = None,
) -> dict:
    """Masks for every file under `input_dir` (the first `limit` in sorted order) into `out_dir`
    (masks/*.png, manifest.jsonl, preview.png).

    Returns a summary dict. Raises UserError when nothing usable remains, or with `strict` when any
    input was skipped; in both cases nothing is written.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if not input_dir.is_dir():
        raise UserError(f"{input_dir}: no such folder (give the folder of product photos)")
    if out_dir.resolve() == input_dir.resolve() or input_dir.resolve() in out_dir.resolve().parents:
        raise UserError(f"{out_dir}: the output folder must be outside the input folder {input_dir}")
    common.refuse_inside(out_dir, [input_dir], "input folder")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    files = common.list_files(input_dir)[:limit]
    if not files:
        raise UserError(f"{input_dir}: no files found (expected JPEG/PNG/WebP/BMP product photos)")
    names = _mask_names(files, input_dir)
    with common.staged_dir(out_dir, marker=common.MANIFEST, force=force, step="masks") as staging:
        tasks = [(str(f), n, common.relpath(f, out_dir)) for f, n in zip(files, names, strict=True)]
        rows = list(
            common.parallel_map(
                _one,
                tasks,
                workers=workers,
                desc="masks",
                quiet=quiet,
                initializer=_init,
                initargs=(opts, str(staging)),
            )
        )
        ok = [r for r in rows if r["status"] == "ok"]
        skipped = [r for r in rows if r["status"] != "ok"]
        if not ok:
            raise UserError(
                f"{input_dir}: no usable photo, all {len(rows)} skipped ({common.summarize_skips(skipped)}): "
                f"{common.first_reasons(skipped, 3)}"
            )
        if strict and skipped:
            raise UserError(
                f"--strict: {len(skipped)} of {len(rows)} inputs unusable "
                f"({common.summarize_skips(skipped)}): {common.first_reasons(skipped, 3)}"
            )
        common.write_manifest(staging, rows)
        summary = {
            "step": "masks",
            "input": str(input_dir),
            "out": str(out_dir),
            "total": len(rows),
            "ok": len(ok),
            "skipped": len(skipped),
            "skipped_by_reason": common.summarize_skips(skipped),
            "options": asdict(opts),
        }
        if preview and ok:
            chosen = ok[:: max(1, len(ok) // 8)][:8]
            previews.preview_pairs(
                [
                    common.Pair(os.path.normpath(out_dir / r["image"]), str(staging / r["mask"]), r["name"])
                    for r in chosen
                ],
                staging / "preview.png",
                title=f"prep masks: {input_dir}",
                max_pixels=opts.max_pixels,
            )
            summary["preview"] = str(out_dir / "preview.png")
    return summary
