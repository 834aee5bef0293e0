"""`prep sample`: the embedded default dataset, built in seconds, with nothing downloaded.

No installed package ships shoe photos, so the white-background photos are drawn: side views of
sneaker-like objects (low and high tops, toe spring, varied soles, toe caps, heel counters, stripes,
laces and eyelets, a visible collar lining), in varied colours including white-on-white, with shading that
darkens towards the silhouette edge as real photos do, mild sensor noise, a soft floor shadow, a small
tilt, either facing, then saved as JPEG like a shop photo.

The masks are NOT the renderer's ground truth: the real `prep masks` rule runs on the saved JPEGs, the
same code path a user's photos take. The renderer's silhouettes are kept only to measure how well the
rule agrees with them (IoU, recorded in dataset.json and checked by the tests).

Then the real pipeline runs: masks -> LMDBs (white), composites over the photographs scikit-image ships
-> LMDBs (composite). The composite val split uses only val-split objects and held-out background photos,
so it measures generalisation to unseen sneakers and unseen scenes.

Layout under ROOT:
    white/photos/*.jpg  white/masks/{masks/*.png, manifest.jsonl}  white/{train,val}_{image,label}_lmdb
    composite/{train,val}_pairs/  composite/{train,val}_{image,label}_lmdb
    preview.png  dataset.json
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.paper import IMAGE_SIZE, VAL_FRACTION
from fcnkit.config.stages import SAMPLE_IMAGES
from fcnkit.errors import UserError
from fcnkit.io.images import encode_jpeg, mask_to_label, read_mask, write_bytes
from fcnkit.prep import common
from fcnkit.prep import preview as previews
from fcnkit.prep.composite import CompositeOptions, builtin_backgrounds, run_composite
from fcnkit.prep.lmdb_build import build_lmdbs, split_pairs
from fcnkit.prep.masks import MaskOptions, run_masks

SUPERSAMPLE = 2
DATASET_JSON = "dataset.json"  # written last: its presence marks a complete dataset folder

_PALETTE = {
    "white": (246, 246, 244),
    "offwhite": (238, 233, 222),
    "black": (32, 32, 35),
    "charcoal": (62, 64, 70),
    "grey": (142, 144, 150),
    "red": (196, 32, 42),
    "navy": (30, 42, 92),
    "blue": (42, 86, 204),
    "green": (42, 132, 72),
    "orange": (238, 122, 34),
    "yellow": (236, 198, 44),
    "pink": (236, 150, 182),
    "teal": (32, 150, 152),
    "tan": (202, 170, 122),
    "brown": (112, 72, 42),
    "purple": (112, 62, 162),
    "lightblue": (150, 190, 230),
}
_COLOURS = list(_PALETTE)
_SOLES = {"white": 0.6, "gum": 0.14, "black": 0.16, "grey": 0.1}
_GUM = (184, 124, 64)


def _catmull_rom(points: np.ndarray, n: int = 12, closed: bool = True) -> np.ndarray:
    """A smooth curve through `points` (centripetal-free, uniform Catmull-Rom), n samples per segment."""
    p = np.asarray(points, np.float64)
    if closed:
        p = np.vstack([p[-1], p, p[0], p[1]])
    else:
        p = np.vstack([p[0], p, p[-1]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    return np.vstack(out)


def _colour(rng: np.random.Generator, name: str | tuple) -> np.ndarray:
    base = np.array(_PALETTE[name] if isinstance(name, str) else name, np.float32)
    return np.clip(base + rng.normal(0, 6, 3), 0, 255)


class _Shoe:
    """Shoe geometry in shoe units: x from heel (0) to toe (1), y up from the floor (0)."""

    def __init__(self, rng: np.random.Generator):
        self.high = rng.random() < 0.3
        self.sole_h = rng.uniform(0.075, 0.12)
        self.spring = rng.uniform(0.02, 0.06)
        self.collar = rng.uniform(0.5, 0.62) if self.high else rng.uniform(0.3, 0.4)
        self.dip = rng.uniform(0.02, 0.06)
        self.opening = rng.uniform(0.28, 0.36)
        self.tongue = self.collar + rng.uniform(-0.01, 0.05)
        self.toe_h = self.sole_h + rng.uniform(0.075, 0.11)
        self.cap_x = rng.uniform(0.76, 0.86)

    def bottom(self, x):
        x = np.asarray(x, np.float64)
        return self.spring * np.clip((x - 0.7) / 0.3, 0, 1) ** 2 + 0.012 * np.clip(1 - x / 0.05, 0, 1)

    def sole_top(self, x):
        return self.bottom(x) + self.sole_h * (1 - 0.3 * np.asarray(x))

    def sole(self) -> np.ndarray:
        xs = np.linspace(0.0, 1.0, 40)
        bot = np.stack([xs, self.bottom(xs)], 1)
        top = np.stack([xs, self.sole_top(xs)], 1)[::-1]
        toe = np.array([[1.012, self.bottom(1.0) + 0.45 * self.sole_h * 0.7]])
        heel = np.array([[-0.012, self.bottom(0.0) + 0.5 * self.sole_h]])
        return np.vstack([bot, toe, top, heel])

    def vamp_top(self, x):
        xs = [self.opening + 0.03, self.opening + 0.08, 0.62, 0.82, 0.95]
        ys = [
            self.tongue,
            self.tongue - 0.03,
            0.55 * self.tongue + 0.45 * self.toe_h,
            self.toe_h + 0.02,
            self.toe_h - 0.01,
        ]
        return np.interp(x, xs, ys)

    def upper(self) -> np.ndarray:
        st = lambda x: float(self.sole_top(x)) - 0.01  # noqa: E731 - tiny local helper
        ctrl = [
            (0.02, st(0.02)),
            (-0.012, 0.45 * self.collar + 0.05),
            (0.0, 0.92 * self.collar),
            (0.045, self.collar),
            (0.17, self.collar - self.dip),
            (self.opening, self.collar - 0.6 * self.dip),
            (self.opening + 0.03, self.tongue),
            (self.opening + 0.08, self.vamp_top(self.opening + 0.08)),
            (0.62, self.vamp_top(0.62)),
            (0.82, self.vamp_top(0.82)),
            (0.95, self.vamp_top(0.95)),
            (1.0, st(1.0) + 0.03),
            (0.8, st(0.8)),
            (0.5, st(0.5)),
            (0.2, st(0.2)),
        ]
        return _catmull_rom(np.array(ctrl))

    def lining(self) -> np.ndarray:
        xs = np.linspace(0.045, self.opening, 12)
        top = np.interp(
            xs,
            [0.045, 0.17, self.opening],
            [self.collar, self.collar - self.dip, self.collar - 0.6 * self.dip],
        )
        return np.vstack([np.stack([xs, top - 0.004], 1), np.stack([xs[::-1], top[::-1] - 0.045], 1)])

    def height(self) -> float:
        return max(self.collar, self.tongue) + 0.01


def render_sneaker(seed: int, index: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Photo number `index` (RGB uint8, size x size) and the renderer's silhouette (bool), deterministic."""
    rng = np.random.default_rng([seed, index, 0x5EA])
    R = size * SUPERSAMPLE
    shoe = _Shoe(rng)
    upper_c = _colour(rng, "white" if rng.random() < 0.25 else _COLOURS[rng.integers(len(_COLOURS))])
    sole_name = rng.choice(list(_SOLES), p=list(_SOLES.values()))
    sole_c = _colour(rng, _GUM if sole_name == "gum" else str(sole_name))
    accent_c = _colour(rng, _COLOURS[rng.integers(len(_COLOURS))])
    lace_c = _colour(rng, ["white", "black"][rng.integers(2)]) if rng.random() < 0.6 else upper_c
    lining_c = np.clip(upper_c * rng.uniform(0.3, 0.6), 0, 255) if rng.random() < 0.7 else accent_c * 0.7

    # Pose: length fraction of the frame, tilt, placement fully inside with a margin.
    angle = math.radians(rng.uniform(-12, 12))
    frac = rng.uniform(0.62, 0.95)
    hgt = shoe.height()
    pts_all = np.vstack([shoe.sole(), shoe.upper()])
    ca, sa = math.cos(angle), math.sin(angle)

    def to_px(p: np.ndarray, L: float, cx: float, cy: float) -> np.ndarray:
        u, v = (p[:, 0] - 0.5) * L, -(p[:, 1] - hgt / 2) * L
        return np.stack([cx + ca * u - sa * v, cy + sa * u + ca * v], 1)

    L = frac * R
    box = to_px(pts_all, L, 0, 0)
    span = box.max(0) - box.min(0)
    margin = 0.04 * R
    L *= min(1.0, (R - 2 * margin) / span.max())
    box = to_px(pts_all, L, 0, 0)
    lo, hi = box.min(0), box.max(0)
    cx = rng.uniform(margin - lo[0], max(margin - lo[0], R - margin - hi[0]))
    cy = rng.uniform(margin - lo[1], max(margin - lo[1], R - margin - hi[1]))

    def poly(p: np.ndarray) -> np.ndarray:
        return np.round(to_px(p, L, cx, cy) * 16).astype(np.int32)  # 4 fractional bits for cv2

    def fill(p: np.ndarray) -> np.ndarray:
        m = np.zeros((R, R), np.uint8)
        cv2.fillPoly(m, [poly(p)], 255, cv2.LINE_AA, shift=4)
        return m

    def line(p: np.ndarray, width: float, clip: np.ndarray) -> np.ndarray:
        m = np.zeros((R, R), np.uint8)
        cv2.polylines(m, [poly(p)], False, 255, max(1, round(width * L)), cv2.LINE_AA, shift=4)
        return cv2.min(m, clip)

    upper_m, sole_m = fill(shoe.upper()), fill(shoe.sole())
    sil = cv2.max(upper_m, sole_m)
    upper_only = cv2.min(upper_m, cv2.bitwise_not(sole_m))

    canvas = np.full((R, R, 3), 255.0, np.float32)
    # soft floor shadow, light enough to stay within the mask rule's tolerance of white
    shadow = np.zeros((R, R), np.float32)
    base = to_px(np.array([[0.5, -0.01]]), L, cx, cy)[0]
    cv2.ellipse(
        shadow,
        (round(base[0]), round(base[1])),
        (max(1, round(0.56 * L)), max(1, round(0.035 * L))),
        math.degrees(angle),
        0,
        360,
        1.0,
        -1,
    )
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, 0.03 * L))
    canvas *= (1.0 - rng.uniform(0.025, 0.055) * shadow)[..., None]

    layers = [(upper_only, upper_c)]
    xs = np.linspace(shoe.cap_x, 1.05, 10)
    cap_poly = np.vstack(
        [np.stack([xs, shoe.vamp_top(xs) + 0.1], 1), [[1.05, -0.1], [shoe.cap_x - 0.02, -0.1]]]
    )
    if rng.random() < 0.6:
        layers.append(
            (cv2.min(upper_only, fill(cap_poly)), accent_c if rng.random() < 0.5 else upper_c * 0.9)
        )
    if rng.random() < 0.6:
        heel_poly = np.array(
            [[-0.1, -0.1], [0.15, -0.1], [0.12, 0.3 * shoe.collar + 0.1], [-0.1, shoe.collar]]
        )
        layers.append((cv2.min(upper_only, fill(heel_poly)), accent_c))
    stripe = rng.integers(3)
    st0 = float(shoe.sole_top(0.3))
    if stripe == 1:  # a swoosh-like curve
        curve = _catmull_rom(np.array([[0.22, st0 + 0.05], [0.45, st0 + 0.06], [0.7, st0 + 0.16]]), 10, False)
        layers.append((line(curve, rng.uniform(0.03, 0.05), upper_only), accent_c))
    elif stripe == 2:  # three slanted stripes
        for k in range(3):
            x0 = 0.38 + 0.07 * k
            seg = np.array([[x0, st0 + 0.01], [x0 + 0.08, shoe.vamp_top(x0 + 0.08) - 0.02]])
            layers.append((line(seg, 0.022, upper_only), accent_c))
    lining = fill(shoe.lining())
    layers.append((cv2.min(lining, upper_m), lining_c))
    n_laces = int(rng.integers(4, 7))
    for k in range(n_laces):
        x = shoe.opening + 0.07 + k * (0.66 - shoe.opening - 0.07) / max(1, n_laces - 1)
        y = float(shoe.vamp_top(x)) - 0.035
        seg = np.array([[x - 0.03, y - 0.012], [x + 0.03, y + 0.012]])
        layers.append((line(seg, 0.016, upper_m), lace_c))
        eyelet = np.zeros((R, R), np.uint8)
        ep = to_px(np.array([[x - 0.035, y - 0.035]]), L, cx, cy)[0]
        cv2.circle(eyelet, (round(ep[0]), round(ep[1])), max(1, round(0.008 * L)), 255, -1, cv2.LINE_AA)
        layers.append((cv2.min(eyelet, upper_m), np.clip(upper_c * 0.55, 0, 255)))
    layers.append((sole_m, sole_c))
    xs = np.linspace(0, 1, 30)
    outsole = np.vstack(
        [
            np.stack([xs, shoe.bottom(xs) - 0.02], 1),
            np.stack([xs[::-1], shoe.bottom(xs[::-1]) + 0.25 * shoe.sole_h], 1),
        ]
    )
    layers.append((cv2.min(sole_m, fill(outsole)), sole_c * rng.uniform(0.55, 0.85)))
    seam = np.stack([xs, shoe.sole_top(xs)], 1)
    layers.append((line(seam, 0.008, sil), np.minimum(upper_c, sole_c) * 0.7))
    for m, c in layers:  # alpha-blend each part only inside its bounding box
        x, y, w, h = cv2.boundingRect(m)
        if w and h:
            a = m[y : y + h, x : x + w].astype(np.float32)[..., None] * (1 / 255)
            reg = canvas[y : y + h, x : x + w]
            reg += (np.asarray(c, np.float32) - reg) * a

    # shading: lighter towards the top, darker at the silhouette edge (as a photographed form is)
    x, y, w, h = cv2.boundingRect(sil)
    win = (slice(y, y + h), slice(x, x + w))
    inside = sil[win] > 0
    dist = cv2.distanceTransform(
        cv2.copyMakeBorder(inside.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 3
    )[1:-1, 1:-1]
    rim = max(2.0 * SUPERSAMPLE, 0.012 * L)  # >= 2 output px: a white shoe keeps a closed outline at 64 px
    edge = 0.74 + 0.26 * np.clip(dist / rim, 0, 1)
    vert = 1.0 - 0.08 * (np.arange(h, dtype=np.float32)[:, None] / max(1, h - 1))
    shade = np.where(inside, edge * vert, 1.0).astype(np.float32)
    noise = rng.normal(0, 2.5, (h, w)).astype(np.float32) * inside
    canvas[win] = canvas[win] * shade[..., None] + noise[..., None]
    if rng.random() < 0.5:
        canvas, sil = canvas[:, ::-1], sil[:, ::-1]
    img = cv2.resize(np.clip(canvas, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    truth = cv2.resize(sil.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) >= 127.5
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), truth


# ------------------------------------------------------------------------------------------- the build

_W: dict = {}


def _init_render(seed: int, size: int, photos: str) -> None:
    _W.update(seed=seed, size=size, photos=photos)


def _render_one(i: int) -> bytes:
    rgb, truth = render_sneaker(_W["seed"], i, _W["size"])
    write_bytes(Path(_W["photos"]) / f"{i:05d}.jpg", encode_jpeg(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 95))
    return np.packbits(truth).tobytes()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def build_sample_dataset(
    root: str | os.PathLike,
    *,
    n_white: int = SAMPLE_IMAGES,
    n_composite: int = SAMPLE_IMAGES,
    size: int = IMAGE_SIZE,
    seed: int = 0,
    workers: int | None = None,
    val_fraction: float = VAL_FRACTION,
    force: bool = False,
    preview: bool = True,
    quiet: bool = False,
) -> dict:
    """Build the embedded default dataset under `root` (replaced as a whole when complete).

    Returns {"root", "white": {dir, train/val counts and LMDB paths, mean_bgr}, "composite": {...},
    "rule_vs_render_iou", "preview", "seconds"}, also saved as root/dataset.json.
    """
    root = Path(root)
    if n_white < 10:
        raise UserError(f"--n-white {n_white}: need at least 10 white-background photos")
    if size < 32:
        raise UserError(f"--size {size}: the sample needs at least 32 px")
    t0 = time.perf_counter()
    with common.staged_dir(root, marker=DATASET_JSON, force=force, step="sample") as st:
        photos = st / "white" / "photos"
        photos.mkdir(parents=True)
        truths = list(
            common.parallel_map(
                _render_one,
                range(n_white),
                workers=workers,
                desc="render",
                quiet=quiet,
                initializer=_init_render,
                initargs=(seed, size, str(photos)),
            )
        )
        bgs = builtin_backgrounds()
        val_bgs = bgs[2::5] if len(bgs) >= 5 else bgs
        train_bgs = [b for b in bgs if b not in val_bgs] or bgs
        result = build_two_stage(
            st,
            root,
            photos,
            train_bgs=train_bgs,
            val_bgs=val_bgs,
            n_composite=n_composite,
            size=size,
            seed=seed,
            val_fraction=val_fraction,
            workers=workers,
            quiet=quiet,
            preview=preview,
            title=f"prep sample (seed {seed}, {size}x{size})",
        )
        ious = []
        for p in common.pairs_from_manifest(st / "white" / "masks"):
            i = int(Path(p.image).stem)
            truth = (
                np.unpackbits(np.frombuffer(truths[i], np.uint8))[: size * size]
                .reshape(size, size)
                .astype(bool)
            )
            ious.append(_iou(mask_to_label(read_mask(p.mask)) == 1, truth))
        result.update(
            kind="sample",
            n_white=n_white,
            n_composite=n_composite,
            rule_vs_render_iou={
                "mean": round(float(np.mean(ious)), 4),
                "min": round(float(np.min(ious)), 4),
                "below_0.9": int(np.sum(np.array(ious) < 0.9)),
            },
            seconds=round(time.perf_counter() - t0, 2),
        )
        (st / DATASET_JSON).write_text(json.dumps(result, indent=1) + "\n")
    return result


def build_two_stage(
    st: Path,
    root: Path,
    photos: Path,
    *,
    train_bgs: list[Path],
    val_bgs: list[Path],
    n_composite: int,
    size: int,
    seed: int,
    val_fraction: float,
    workers: int | None,
    quiet: bool,
    preview: bool,
    title: str,
    mask_opts: MaskOptions | None = None,
    strict: bool = False,
    composite_opts: CompositeOptions | None = None,
    test_fraction: float = 0.0,
    test_bgs: list[Path] | None = None,
    limit: int | None = None,
) -> dict:
    """Under staging folder `st` (to become `root`): masks of `photos`, white LMDBs, composites, their LMDBs.

    The white split is random (by `seed`); composite train/val use train/val objects over
    `train_bgs` / `val_bgs` respectively, so the composite val set holds no sneaker seen in training.
    With `test_fraction`, that share of the photos is held out first (white test_*_lmdb) and the test
    composites paste only those sneakers over `test_bgs`, scenes used nowhere else.
    """
    if n_composite < 0:
        raise UserError(f"--n-composite {n_composite}: must be >= 0")
    if not 0 <= test_fraction < 1:
        raise UserError(f"--test-fraction {test_fraction}: must be in [0, 1)")
    if test_fraction and n_composite and not test_bgs:
        raise UserError("--test-fraction: test composites need scenes unseen in training; give --backgrounds a "
                        "folder with train/ val/ test/ subfolders (BSDS500) or --test-backgrounds DIR")
    white, comp = st / "white", st / "composite"
    mopts = mask_opts or MaskOptions()
    masks = run_masks(
        photos, white / "masks", mopts, workers=workers, preview=False, quiet=quiet, strict=strict, limit=limit
    )
    pairs = common.pairs_from_manifest(white / "masks")
    test: list[common.Pair] = []
    if test_fraction:
        held = split_pairs(pairs, test_fraction, seed + 2)
        test, pairs = held["val"], held["train"]
    split = split_pairs(pairs, val_fraction, seed)
    wman = build_lmdbs(
        split["train"],
        white,
        size=size,
        seed=seed,
        workers=workers,
        quiet=quiet,
        val_pairs=split["val"],
        test_pairs=test,
        sources=["white/masks"],
        strict=strict,
    )
    result = {
        "root": str(root),
        "size": size,
        "seed": seed,
        "val_fraction": val_fraction,
        "white": _lmdb_info(root / "white", wman, masks["ok"]),
        "masks": {k: masks[k] for k in ("total", "ok", "skipped", "skipped_by_reason")},
    }
    n_val = 0
    if n_composite:
        n_test = round(n_composite * test_fraction) if test else 0
        n_composite -= n_test
        n_val = min(n_composite - 1, max(1, round(n_composite * val_fraction))) if val_fraction > 0 else 0
        val_objects = split["val"] or split["train"]
        opts = composite_opts or CompositeOptions(size=size)
        if opts.size != size:
            raise UserError(f"composite size {opts.size} != LMDB size {size}")
        run_composite(
            split["train"],
            train_bgs,
            comp / "train_pairs",
            n_composite - n_val,
            opts=opts,
            seed=seed,
            workers=workers,
            preview=False,
            quiet=quiet,
        )
        if n_val:
            run_composite(
                val_objects,
                val_bgs,
                comp / "val_pairs",
                n_val,
                opts=opts,
                seed=seed + 1,
                workers=workers,
                preview=False,
                quiet=quiet,
            )
        if n_test:
            run_composite(test, test_bgs, comp / "test_pairs", n_test, opts=opts, seed=seed + 2, workers=workers,
                          preview=False, quiet=quiet)
        cman = build_lmdbs(
            common.pairs_from_manifest(comp / "train_pairs"),
            comp,
            size=size,
            seed=seed,
            workers=workers,
            quiet=quiet,
            sources=["composite/train_pairs", "composite/val_pairs"] + (["composite/test_pairs"] if n_test else []),
            val_pairs=common.pairs_from_manifest(comp / "val_pairs") if n_val else [],
            test_pairs=common.pairs_from_manifest(comp / "test_pairs") if n_test else None,
            strict=strict,
        )
        result["composite"] = _lmdb_info(root / "composite", cman, n_composite + n_test)
        result["composite"]["backgrounds"] = {
            "train": [common.relpath(b, root) for b in train_bgs[:50]],
            "val": [common.relpath(b, root) for b in val_bgs[:50]],
            "n_train": len(train_bgs),
            "n_val": len(val_bgs),
        }
        if n_test:
            result["composite"]["backgrounds"].update(test=[common.relpath(b, root) for b in test_bgs[:50]],
                                                      n_test=len(test_bgs))
    if preview:
        blocks = [("white background", previews.load_examples((split["val"] or split["train"])[:6]))]
        if n_composite:
            blocks.append(
                (
                    "composite",
                    previews.load_examples(
                        common.pairs_from_manifest(comp / ("val_pairs" if n_val else "train_pairs"))[:6]
                    ),
                )
            )
        previews.preview_grid(blocks, st / "preview.png", title=title)
        result["preview"] = str(root / "preview.png")
    return result


def _lmdb_info(out: Path, manifest: dict, made: int) -> dict:
    info = {"dir": str(out), "made": made, "mean_bgr": manifest["mean_bgr"]}
    for s in manifest["splits"]:
        info[s] = {
            "count": manifest["splits"][s]["count"],
            "image_lmdb": str(out / f"{s}_image_lmdb"),
            "label_lmdb": str(out / f"{s}_label_lmdb"),
            "sneaker_fraction": manifest["splits"][s]["sneaker_fraction"],
        }
    return info
