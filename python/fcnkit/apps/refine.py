"""`refine`: the patch CNN on one image with its tag, or on a dataset's val images with their true boxes.

Outputs are written atomically (fcnkit.io.atomic): a mask PNG (0/255) and an RGBA cut-out per image.
Bad input (an unreadable image, a box outside it, a checkpoint of another family) stops with one line
before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fcnkit import inference
from fcnkit.data.boxes import box_label_map, box_of
from fcnkit.data.datasets import load_samples
from fcnkit.errors import UserError
from fcnkit.evaluation.metrics import aggregate, foreground_jaccard, image_scores
from fcnkit.io.atomic import write_bytes_atomic
from fcnkit.io.images import ImageReadError, encode_png, read_bgr
from fcnkit.training.patches import refine_image


def _model(ref, device: str):
    """A trained patchcnn checkpoint as a module (None: train on each image)."""
    if ref is None:
        return None

    spec = inference.resolve(ref).spec
    if spec is None or spec.supervision != "boxes":
        raise UserError(f"{ref}: a checkpoint of {spec.name if spec else 'a Caffe net'}, not of the patch CNN; "
                        "give a `fcnkit train patchcnn` checkpoint")
    return inference.load(ref, device=device).backend.model


def _check_box(box, shape, what: str) -> None:
    if box is None:
        return
    x, y, w, h = box
    if x >= shape[1] or y >= shape[0] or x + w > shape[1] or y + h > shape[0]:
        raise UserError(f"{what}: --box {x},{y},{w},{h} lies outside the {shape[1]}x{shape[0]} image; fix the box")


def _write(out: Path, stem: str, bgr: np.ndarray, mask: np.ndarray) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    mask_path, cut_path = out / f"{stem}_mask.png", out / f"{stem}_cutout.png"
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    rgba[..., 3] = mask * 255
    write_bytes_atomic(mask_path, encode_png((mask * 255).astype(np.uint8), binary=True))
    write_bytes_atomic(cut_path, encode_png(rgba))
    return mask_path, cut_path


def refine_file(path, box, out: Path, *, model=None, device: str = "cpu", **opts) -> dict:
    path = Path(path)
    try:
        bgr = read_bgr(path)
    except (ImageReadError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the image ({exc}); give a PNG or JPEG photo") from None
    _check_box(box, bgr.shape, str(path))
    trained = _model(model, device)
    if trained is not None:
        opts["steps"] = 0 if not opts.get("relabel") else opts.get("steps", 300)
    r = refine_image(bgr, box, model=trained, device=device, **opts)
    mask_path, cut_path = _write(out, path.stem, bgr, r["mask"])
    area = box[2] * box[3] if box else bgr.shape[0] * bgr.shape[1]
    return {"mask": mask_path, "cutout": cut_path, "foreground": float(r["mask"].sum()) / area, "losses": r["losses"]}


def refine_dataset(data, out: Path, *, model=None, limit: int | None = None, device: str = "cpu", **opts) -> dict:
    """Every val image with the bounding box of its true mask; per-image masks + dataset metrics."""
    samples = load_samples(data, split="val", limit=limit)
    trained = _model(model, device)
    if trained is not None:
        opts["steps"] = 0 if not opts.get("relabel") else opts.get("steps", 300)
    per, box_j = [], []
    for s in tqdm(samples, desc="refine", unit="img", disable=None, leave=False):
        box = box_of(s.label)
        r = refine_image(s.bgr, box, model=trained, device=device, **opts)
        _write(out, Path(s.name).stem, s.bgr, r["mask"])
        per.append(image_scores(s.label, r["mask"]))
        box_j.append(foreground_jaccard(s.label, box_label_map(s.label.shape, box)))
    return {"summary": aggregate(per), "box_jaccard": float(np.mean(box_j))}
