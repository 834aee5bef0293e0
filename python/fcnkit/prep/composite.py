"""`prep composite`: paste masked sneakers onto scenes at random scales and positions (paper, §Data).

Each composite i is drawn from its own random stream, seeded by (seed, i), so the output does not depend
on the number of worker processes or their scheduling: the same seed gives byte-identical files.

Per composite (ranges are options, defaults in brackets):

* background: a random scene, a random square crop of side U(bg_crop_min [0.6], 1) x its short side,
  resized to `size` [224] and mirrored with probability 1/2;
* objects: U{1..max_objects [1]} sneakers, each cropped to its mask's bounding box, scaled so its longer
  side is U(scale_min [0.3], scale_max [0.9]) x `size`, mirrored with probability 1/2;
* position: uniform, and the object may leave the frame: up to `max_outside` [0.25] of its width (height)
  may lie beyond the left/right (top/bottom) edge, so at least ~half of it in each direction stays in view.
  The paper neither requires nor forbids this; it teaches the net that cut-off shoes are still shoes;
* edge blending: the hard mask (alpha >= 0.5) is the label; the pixels pasted are blended with an alpha
  that is the mask blurred by `feather` [1.0] px and kept inside the mask (an inward feather), which
  hides the white fringe that anti-aliased product photos carry without blurring the label. 0 = hard paste.

Outputs: images/NNNNNN.jpg (or .png), masks/NNNNNN.png (0/255), manifest.jsonl, preview.png.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.paper import IMAGE_SIZE
from fcnkit.errors import UserError
from fcnkit.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    encode_jpeg,
    encode_png,
    mask_to_label,
    read_bgr,
    read_mask,
    write_bytes,
)
from fcnkit.prep import common
from fcnkit.prep import preview as previews

# Real photographs inside the scikit-image wheel (skimage/data); others there are fetched on first use.
BUILTIN_BACKGROUNDS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "page.png",
)


@dataclass(frozen=True)
class CompositeOptions:
    size: int = IMAGE_SIZE
    scale_min: float = 0.3
    scale_max: float = 0.9
    max_outside: float = 0.25
    feather: float = 1.0
    flip: bool = True
    max_objects: int = 1
    bg_crop_min: float = 0.6
    ext: str = "jpg"
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.size < 8:
            raise UserError(f"--size {self.size}: too small (at least 8 px)")
        if not 0 < self.scale_min <= self.scale_max:
            raise UserError(
                f"--scale-min {self.scale_min} / --scale-max {self.scale_max}: need 0 < min <= max"
            )
        if not 0 <= self.max_outside < 0.5:
            raise UserError(f"--max-outside {self.max_outside}: must be in [0, 0.5)")
        if not 0 < self.bg_crop_min <= 1:
            raise UserError(f"--bg-crop-min {self.bg_crop_min}: must be in (0, 1]")
        if self.max_objects < 1:
            raise UserError(f"--max-objects {self.max_objects}: must be at least 1")
        if self.ext not in ("jpg", "png"):
            raise UserError(f"--ext {self.ext}: choose jpg or png")
        if self.feather < 0:
            raise UserError(f"--feather {self.feather}: must be >= 0")


def builtin_backgrounds() -> list[Path]:
    """The real photographs scikit-image ships in its wheel (no network)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "scikit-image is not installed; its bundled photos are the built-in backgrounds "
            "(pip install scikit-image, or pass --backgrounds DIR)"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = [data / n for n in BUILTIN_BACKGROUNDS if (data / n).is_file()]
    if not found:
        raise UserError(f"{data}: none of scikit-image's bundled photos found; pass --backgrounds DIR")
    return found


def voc_root(path: Path) -> Path | None:
    """VOCdevkit/VOC2012 (or a VOC20xx folder itself) if `path` is, or contains, one."""
    for cand in (path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"):
        if (cand / "ImageSets" / "Segmentation").is_dir() and (cand / "JPEGImages").is_dir():
            return cand
    return None


def resolve_backgrounds(spec: str | os.PathLike, voc_list: str = "trainval") -> list[Path]:
    """Background photos from 'builtin', a VOCdevkit tree (its ImageSets/Segmentation list) or a folder."""
    if str(spec) == "builtin":
        return builtin_backgrounds()
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{path}: no such folder (give VOCdevkit/VOC2012, a folder of photos, or 'builtin')")
    voc = voc_root(path) if path.is_dir() else None
    if voc is not None:
        lst = voc / "ImageSets" / "Segmentation" / f"{voc_list}.txt"
        if not lst.is_file():
            have = sorted(p.stem for p in (voc / "ImageSets" / "Segmentation").glob("*.txt"))
            raise UserError(
                f"{lst}: no such list; --voc-list must be one of {', '.join(have) or '(none found)'}"
            )
        ids = [line.split()[0] for line in lst.read_text().splitlines() if line.strip()]
        files = [voc / "JPEGImages" / f"{i}.jpg" for i in ids]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise UserError(
                f"{missing[0]}: listed in {lst} but missing ({len(missing)} missing); "
                "re-extract the VOC2012 archive (`prep fetch voc2012`)"
            )
        return files
    if path.is_file():
        return [path]
    files = common.list_files(path)
    if not files:
        raise UserError(f"{path}: no background photos in this folder")
    return files


# ---------------------------------------------------------------------------------------------- worker

_W: dict = {}


def _init(
    objects: list[tuple[str, str]], backgrounds: list[str], opts: CompositeOptions, staging: str, seed: int
) -> None:
    _W.clear()
    _W.update(objects=objects, backgrounds=backgrounds, opts=opts, staging=staging, seed=seed)
    _load_object.cache_clear()
    _load_background.cache_clear()


@functools.lru_cache(maxsize=256)
def _load_object(i: int):
    """(bgr, alpha float32 0..1) cropped to the mask's bounding box, at most `size` px on its long side."""
    image, mask = _W["objects"][i]
    opts: CompositeOptions = _W["opts"]
    rgb = read_bgr(image, max_pixels=opts.max_pixels)  # BGR throughout: what cv2 encodes and Caffe reads
    m = mask_to_label(read_mask(mask, max_pixels=opts.max_pixels)) == 1
    if m.shape != rgb.shape[:2]:
        raise ImageReadError(
            "size-mismatch",
            f"mask {m.shape[1]}x{m.shape[0]} does not match image {rgb.shape[1]}x{rgb.shape[0]}",
        )
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        raise ImageReadError("all-white", "empty mask")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb, alpha = rgb[y0:y1, x0:x1], m[y0:y1, x0:x1].astype(np.float32)
    long_side = max(rgb.shape[:2])
    cap = max(opts.size, round(opts.size * opts.scale_max))
    if long_side > cap:
        f = cap / long_side
        dsize = (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f)))
        rgb = cv2.resize(rgb, dsize, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, dsize, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)


@functools.lru_cache(maxsize=64)
def _load_background(i: int) -> np.ndarray:
    """BGR, shrunk so its short side is at most 2 x size (crops are resized to `size` anyway)."""
    opts: CompositeOptions = _W["opts"]
    rgb = read_bgr(_W["backgrounds"][i], max_pixels=opts.max_pixels)
    short = min(rgb.shape[:2])
    if short > 2 * opts.size:
        f = 2 * opts.size / short
        rgb = cv2.resize(
            rgb,
            (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))),
            interpolation=cv2.INTER_AREA,
        )
    return rgb


def _pick(load, n: int, start: int, failed: dict) -> tuple[int, object]:
    """Load item `start`, or deterministically the next loadable one; unloadable ones are recorded."""
    for k in range(n):
        i = (start + k) % n
        if i in failed:
            continue
        try:
            return i, load(i)
        except ImageReadError as exc:
            failed[i] = f"{exc.code}: {exc.reason}"
            _W.setdefault("new_failures", []).append((load.__name__, i, failed[i]))
    raise ImageReadError("no-input", "no loadable input left")


def _paste(
    canvas: np.ndarray, label: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int, feather: float
) -> None:
    S = canvas.shape[0]
    h, w = alpha.shape
    cx0, cy0, cx1, cy1 = max(0, x), max(0, y), min(S, x + w), min(S, y + h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    ox0, oy0 = cx0 - x, cy0 - y
    a = alpha[oy0 : oy0 + cy1 - cy0, ox0 : ox0 + cx1 - cx0]
    hard = a >= 0.5
    if feather > 0:
        soft = cv2.GaussianBlur(alpha, (0, 0), feather)[oy0 : oy0 + cy1 - cy0, ox0 : ox0 + cx1 - cx0]
        a = np.where(hard, np.clip(np.minimum(a, soft), 0.5, 1.0), 0.0).astype(np.float32)
    else:
        a = hard.astype(np.float32)
    region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    obj = rgb[oy0 : oy0 + cy1 - cy0, ox0 : ox0 + cx1 - cx0].astype(np.float32)
    a3 = a[..., None]
    canvas[cy0:cy1, cx0:cx1] = (region * (1.0 - a3) + obj * a3 + 0.5).astype(np.uint8)
    label[cy0:cy1, cx0:cx1][hard] = 255


def make_composite(i: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Composite number i of the current worker setup: (BGR image, 0/255 mask, record)."""
    opts: CompositeOptions = _W["opts"]
    S = opts.size
    rng = np.random.default_rng([_W["seed"], i])
    failed_bg = _W.setdefault("failed_bg", {})
    failed_obj = _W.setdefault("failed_obj", {})
    bi, bg = _pick(
        _load_background, len(_W["backgrounds"]), int(rng.integers(len(_W["backgrounds"]))), failed_bg
    )
    h, w = bg.shape[:2]
    side = max(1, round(min(h, w) * rng.uniform(opts.bg_crop_min, 1.0)))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = bg[y0 : y0 + side, x0 : x0 + side]
    canvas = cv2.resize(crop, (S, S), interpolation=cv2.INTER_AREA if side > S else cv2.INTER_LINEAR)
    if opts.flip and rng.random() < 0.5:
        canvas = canvas[:, ::-1]
    canvas = np.ascontiguousarray(canvas)
    label = np.zeros((S, S), np.uint8)
    record = {"background": bi, "bg_crop": [x0, y0, side], "objects": []}
    for _ in range(int(rng.integers(1, opts.max_objects + 1))):
        oi, (orgb, oalpha) = _pick(
            _load_object, len(_W["objects"]), int(rng.integers(len(_W["objects"]))), failed_obj
        )
        scale = rng.uniform(opts.scale_min, opts.scale_max)
        f = scale * S / max(oalpha.shape)
        dsize = (max(1, round(oalpha.shape[1] * f)), max(1, round(oalpha.shape[0] * f)))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        rgb, alpha = (
            cv2.resize(orgb, dsize, interpolation=interp),
            cv2.resize(oalpha, dsize, interpolation=interp),
        )
        flip = bool(opts.flip and rng.random() < 0.5)
        if flip:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        ow, oh = dsize
        m = opts.max_outside
        x = int(np.floor(rng.uniform(min(-m * ow, S - ow + m * ow), max(-m * ow, S - ow + m * ow))))
        y = int(np.floor(rng.uniform(min(-m * oh, S - oh + m * oh), max(-m * oh, S - oh + m * oh))))
        _paste(canvas, label, np.ascontiguousarray(rgb), np.ascontiguousarray(alpha), x, y, opts.feather)
        record["objects"].append(
            {"object": oi, "scale": round(float(scale), 4), "x": x, "y": y, "w": ow, "h": oh, "flip": flip}
        )
    return canvas, label, record


def _one(i: int) -> dict:
    opts: CompositeOptions = _W["opts"]
    try:
        bgr, label, rec = make_composite(i)
    except ImageReadError as exc:
        return {
            "index": i,
            "status": "skipped",
            "code": exc.code,
            "reason": exc.reason,
            "input_errors": _W.pop("new_failures", []),
        }
    if _W.get("new_failures"):
        rec["input_errors"] = _W.pop("new_failures")
    name = f"{i:06d}"
    staging = Path(_W["staging"])
    img_rel = f"images/{name}.{opts.ext}"
    write_bytes(staging / img_rel, encode_jpeg(bgr, opts.quality) if opts.ext == "jpg" else encode_png(bgr))
    write_bytes(staging / f"masks/{name}.png", encode_png(label, binary=True))
    rec.update(
        index=i,
        name=name,
        status="ok",
        image=img_rel,
        mask=f"masks/{name}.png",
        fg_fraction=round(float(np.count_nonzero(label)) / label.size, 5),
    )
    return rec


def run_composite(
    objects: list[common.Pair],
    backgrounds: list[Path],
    out_dir: str | os.PathLike,
    n: int,
    *,
    opts: CompositeOptions = CompositeOptions(),
    seed: int = 0,
    workers: int | None = None,
    force: bool = False,
    preview: bool = True,
    quiet: bool = False,
) -> dict:
    """Write `n` composites of `objects` (image/mask pairs) over `backgrounds` into `out_dir`."""
    out_dir = Path(out_dir)
    if n < 1:
        raise UserError(f"-n {n}: ask for at least one composite")
    if not objects:
        raise UserError("no objects: give a folder written by `prep masks` (or --images/--masks)")
    if not backgrounds:
        raise UserError("no backgrounds")
    obj_list = [(os.path.abspath(p.image), os.path.abspath(p.mask)) for p in objects]
    bg_list = [os.path.abspath(b) for b in backgrounds]
    common.refuse_inside(out_dir, [p for o in obj_list for p in o], "object")
    common.refuse_inside(out_dir, bg_list, "background")
    with common.staged_dir(out_dir, marker=common.MANIFEST, force=force, step="composite") as staging:
        (staging / "images").mkdir()
        (staging / "masks").mkdir()
        rows = list(
            common.parallel_map(
                _one,
                range(n),
                workers=workers,
                desc="composite",
                quiet=quiet,
                initializer=_init,
                initargs=(obj_list, bg_list, opts, str(staging), seed),
            )
        )
        ok = [r for r in rows if r["status"] == "ok"]
        bad_inputs: dict[str, str] = {}
        for r in rows:
            for kind, idx, why in r.pop("input_errors", []):
                path = bg_list[idx] if kind == "_load_background" else obj_list[idx][0]
                bad_inputs[common.relpath(path, out_dir)] = why
        if not ok:
            raise UserError(
                f"no composite could be made: {rows[0].get('reason')}; unusable inputs: "
                + "; ".join(f"{k}: {v}" for k, v in list(bad_inputs.items())[:3])
            )
        for r in ok:  # name the inputs by path rather than index, relative to the output folder
            r["background"] = common.relpath(bg_list[r["background"]], out_dir)
            for o in r["objects"]:
                o["object"] = common.relpath(obj_list[o["object"]][0], out_dir)
        common.write_manifest(staging, rows)
        summary = {
            "step": "composite",
            "out": str(out_dir),
            "requested": n,
            "ok": len(ok),
            "skipped": len(rows) - len(ok),
            "objects": len(obj_list),
            "backgrounds": len(bg_list),
            "seed": seed,
            "unusable_inputs": bad_inputs,
            "options": asdict(opts),
        }
        if preview:
            chosen = ok[:8]
            previews.preview_pairs(
                [common.Pair(str(staging / r["image"]), str(staging / r["mask"]), r["name"]) for r in chosen],
                staging / "preview.png",
                title=f"prep composite: {out_dir}",
            )
            summary["preview"] = str(out_dir / "preview.png")
    return summary
