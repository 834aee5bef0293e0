"""Preview grids (matplotlib PNG) for a person to look at: photo, mask, and the mask drawn on the photo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fcnkit.io.figures import pyplot
from fcnkit.io.images import DEFAULT_MAX_PIXELS, mask_to_label, read_mask, read_rgb
from fcnkit.prep.common import Pair

_TINT = np.array([255, 40, 40], np.float32)


def overlay(rgb: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The photo with the sneaker class tinted red, ignore pixels grey, and the mask outline in yellow."""
    out = rgb.astype(np.float32)
    fg = label == 1
    out[fg] = out[fg] * 0.55 + _TINT * 0.45
    out[label == 255] = out[label == 255] * 0.5 + 64
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 230, 0), max(1, round(min(rgb.shape[:2]) / 200)))
    return out


def _thumb(a: np.ndarray, side: int = 256, nearest: bool = False) -> np.ndarray:
    h, w = a.shape[:2]
    f = side / max(h, w)
    if f < 1:
        a = cv2.resize(
            a,
            (max(1, round(w * f)), max(1, round(h * f))),
            interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA,
        )
    return a


def preview_grid(
    blocks: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, np.ndarray]]]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write a PNG grid. Each block is (heading, [(name, rgb, label), ...]); each example is one column
    with three rows: photo, mask (white = sneaker, grey = ignore), overlay."""
    plt = pyplot()

    path = Path(path)
    ncols = max((len(ex) for _, ex in blocks), default=1) or 1
    nrows = 3 * len(blocks)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 1.9 * nrows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for b, (heading, examples) in enumerate(blocks):
        for c, (name, rgb, label) in enumerate(examples):
            lab_vis = np.where(label == 1, 255, np.where(label == 255, 128, 0)).astype(np.uint8)
            panels = (_thumb(rgb), _thumb(lab_vis, nearest=True), _thumb(overlay(rgb, label)))
            for r, img in enumerate(panels):
                ax = axes[3 * b + r, c]
                ax.imshow(
                    img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest"
                )
                if r == 0:
                    fg = float(np.mean(label == 1))
                    ax.set_title(f"{name[:18]}\n{fg:.0%} sneaker", fontsize=7)
        axes[3 * b, 0].text(
            -0.08,
            0.5,
            heading,
            transform=axes[3 * b, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
            weight="bold",
        )
    for b in range(len(blocks)):
        for r, label in enumerate(("photo", "mask", "overlay")):
            axes[3 * b + r, -1].text(
                1.04,
                0.5,
                label,
                transform=axes[3 * b + r, -1].transAxes,
                rotation=-90,
                ha="left",
                va="center",
                fontsize=7,
            )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def load_examples(pairs: Sequence[Pair], max_pixels: int = DEFAULT_MAX_PIXELS):
    out = []
    for p in pairs:
        rgb = read_rgb(p.image, max_pixels=max_pixels)
        label = mask_to_label(read_mask(p.mask, max_pixels=max_pixels))
        if label.shape != rgb.shape[:2]:
            continue
        out.append((p.name, rgb, label))
    return out


def preview_pairs(
    pairs: Sequence[Pair], path: str | os.PathLike, title: str = "", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Path:
    return preview_grid([("", load_examples(pairs, max_pixels))], path, title)
