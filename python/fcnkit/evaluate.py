"""`evaluate`: segmentation metrics for Caffe and its PyTorch conversion side by side, plus the seed baseline.

    evaluate [DATA] [--model DIR] [--backend caffe|torch|both] [--baseline] [--postprocess extractnet]
             [--report DIR] [--json FILE] [--limit N]

DATA is a dataset directory holding val_image_lmdb/val_label_lmdb (what `prep lmdb` and `make demo` write),
an image LMDB whose label LMDB is its sibling (`*image*` -> `*label*`), or a folder of photos with masks
in DATA/masks (or --masks DIR), paired by file stem. Default: data/tiny/white.

--model DIR is a `convert` output directory (model.py, weights.safetensors, conversion.json). The torch
backend runs its model.py; the Caffe backend runs the prototxt and caffemodel that conversion.json names as
its source (or --deploy/--caffemodel). Default: the composite-finetuned FCN-8s `make demo` converted.

Every prediction is argmax over the `score` output at the image's own size. The table gives dataset
figures (FCN histogram scores over all pixels; Jaccard % and Hausdorff as per-image mean ± std), and for
`both` the per-image Caffe-vs-PyTorch disagreement: pixels whose argmax differs (expected 0).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcnkit.errors import UserError, cli_entry
from fcnkit.metrics import aggregate, image_scores

FCN_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # the FCN reference's data layer (not in any prototxt)
DEFAULT_MODEL = Path("runs/demo/torch/fcn8s_finetune")
DEFAULT_DATA = Path("data/tiny/white")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Sample:
    name: str
    bgr: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8, 0/1/255


def _lmdb_pair(data: Path, split: str) -> tuple[Path, Path] | None:
    if (data / f"{split}_image_lmdb" / "data.mdb").is_file():
        return data / f"{split}_image_lmdb", data / f"{split}_label_lmdb"
    if (data / "data.mdb").is_file() and "image" in data.name:
        return data, data.with_name(data.name.replace("image", "label"))
    return None


def load_samples(data: str | Path, *, split: str = "val", masks: str | Path | None = None,
                 limit: int | None = None) -> list[Sample]:
    """Images and labels from an LMDB pair or a photo folder + mask folder (see the module doc)."""
    from fcnkit.lmdb_io import decode_datum, read_lmdb  # noqa: PLC0415

    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such dataset directory")
    pair = _lmdb_pair(data, split)
    out: list[Sample] = []
    if pair is not None:
        if not (pair[1] / "data.mdb").is_file():
            raise UserError(f"{pair[1]}: label LMDB missing next to {pair[0]}")
        for (k1, v1), (k2, v2) in zip(read_lmdb(pair[0]), read_lmdb(pair[1]), strict=False):
            if k1 != k2:
                raise UserError(f"{pair[0]} and {pair[1]} disagree on keys ({k1!r} vs {k2!r})")
            img, lab = decode_datum(v1)[0], decode_datum(v2)[0]
            out.append(Sample(k1.decode(errors="replace"), img.transpose(1, 2, 0), lab[0]))
            if limit and len(out) >= limit:
                break
        return out
    from fcnkit.prep.imageio import ImageReadError, mask_to_label, read_bgr, read_mask  # noqa: PLC0415

    mask_dir = Path(masks) if masks else data / "masks"
    if not mask_dir.is_dir():
        raise UserError(f"{data}: neither an LMDB dataset ({split}_image_lmdb) nor a photo folder with "
                        f"{mask_dir}; pass --masks DIR")
    by_stem = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    for p in sorted(q for q in data.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS):
        if p.stem not in by_stem:
            continue
        try:
            bgr, label = read_bgr(p), mask_to_label(read_mask(by_stem[p.stem]))
        except (ImageReadError, ValueError) as exc:
            print(f"evaluate: skipping {p.name}: {exc}", file=sys.stderr)
            continue
        if bgr.shape[:2] != label.shape:
            print(f"evaluate: skipping {p.name}: image {bgr.shape[:2]} and mask {label.shape} sizes differ",
                  file=sys.stderr)
            continue
        out.append(Sample(p.name, bgr, label))
        if limit and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{data}: no photo has a mask of the same stem in {mask_dir}")
    return out


# ------------------------------------------------------------------------------------------- backends


@dataclass
class ModelFiles:
    torch_dir: Path | None
    deploy: Path | None
    caffemodel: Path | None
    mean: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)


def resolve_model(model_dir: str | Path | None, deploy=None, caffemodel=None) -> ModelFiles:
    """Find the converted module and its Caffe source; mean from conversion.json, else FCN's mean."""
    notes = []
    if model_dir is None:
        model_dir = DEFAULT_MODEL
        notes.append(f"no --model given: using the model `make demo` trained and converted, {model_dir}")
    model_dir = Path(model_dir)
    info_path = model_dir / "conversion.json"
    if not info_path.is_file():
        hint = " (run `make demo` first)" if model_dir == DEFAULT_MODEL else ""
        raise UserError(f"{model_dir}: not a converted model directory (no conversion.json){hint}")
    info = json.loads(info_path.read_text())
    src = info.get("source", {})
    deploy = Path(deploy) if deploy else (Path(src["prototxt"]) if src.get("prototxt") else None)
    caffemodel = Path(caffemodel) if caffemodel else (Path(src["caffemodel"]) if src.get("caffemodel") else None)
    pre = info.get("preprocessing", {})
    if pre.get("known") and len(pre.get("mean_value", [])) == 3 and pre.get("scale", 1.0) == 1.0:
        mean = tuple(pre["mean_value"])
    else:
        mean = FCN_MEAN_BGR
    return ModelFiles(model_dir, deploy, caffemodel, mean, notes)


def preprocess(bgr: np.ndarray, mean) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 minus the mean, as FCN's data layer feeds Caffe."""
    x = bgr.astype(np.float32) - np.asarray(mean, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class CaffeBackend:
    name = "caffe"

    def __init__(self, mf: ModelFiles):
        for p, what in ((mf.deploy, "deploy prototxt"), (mf.caffemodel, "caffemodel")):
            if p is None or not p.is_file():
                raise UserError(f"Caffe backend: {what} {p} not found; pass --deploy/--caffemodel")
        from fcnkit.caffe_env import load_caffe  # noqa: PLC0415

        caffe = load_caffe()
        self.net = caffe.Net(str(mf.deploy), caffe.TEST, weights=str(mf.caffemodel))
        self.input = self.net.inputs[0]
        self.mean = mf.mean

    def scores(self, bgr: np.ndarray) -> np.ndarray:
        x = preprocess(bgr, self.mean)
        self.net.blobs[self.input].reshape(*x.shape)
        self.net.blobs[self.input].data[...] = x
        self.net.forward()
        return self.net.blobs["score"].data[0].copy()


def import_model_py(model_dir: Path):
    spec = importlib.util.spec_from_file_location(f"fcnkit_converted_{abs(hash(str(model_dir)))}",
                                                  model_dir / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class TorchBackend:
    name = "torch"

    def __init__(self, mf: ModelFiles, device: str = "cpu"):
        import torch  # noqa: PLC0415

        if not (mf.torch_dir / "model.py").is_file():
            raise UserError(f"{mf.torch_dir}: no model.py; convert the net with `convert DEPLOY MODEL -o DIR`")
        self.torch = torch
        self.device = device
        mod = import_model_py(mf.torch_dir)
        self.model = mod.load_model(device=device)
        self.out_index = list(getattr(mod, "OUTPUT_NAMES", ["score"])).index("score")
        self.mean = mf.mean

    def scores(self, bgr: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(preprocess(bgr, self.mean)).to(self.device)
        with self.torch.inference_mode():
            y = self.model(x)
        y = y[self.out_index] if isinstance(y, tuple | list) else y
        return y[0].float().cpu().numpy()


def make_backends(which: str, mf: ModelFiles, device: str = "cpu") -> list:
    names = ["caffe", "torch"] if which == "both" else [which]
    return [CaffeBackend(mf) if n == "caffe" else TorchBackend(mf, device) for n in names]


# ---------------------------------------------------------------------------------------------- evaluate


def run_evaluation(samples: list[Sample], backends: list, *, baseline: bool = False,
                   postprocess: str | None = None, keep_predictions: bool = False) -> dict:
    """Per-image and dataset metrics for every method; Caffe-vs-torch disagreement when both ran."""
    from fcnkit.baselines import extractnet_baseline, postprocess_extractnet  # noqa: PLC0415

    methods = [b.name for b in backends] + (["baseline"] if baseline else [])
    if postprocess == "extractnet":
        methods += [f"{m}+pp" for m in methods]
    per: dict[str, list[dict]] = {m: [] for m in methods}
    preds: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    disagreement = []
    for s in tqdm(samples, desc="evaluate", unit="img", disable=None, leave=False):
        masks, raw = {}, {}
        for b in backends:
            raw[b.name] = b.scores(s.bgr)
            masks[b.name] = raw[b.name].argmax(0).astype(np.uint8)
        if baseline:
            masks["baseline"] = extractnet_baseline(s.bgr)
        if postprocess == "extractnet":
            for m in list(masks):
                masks[f"{m}+pp"] = postprocess_extractnet(masks[m])
        for m in methods:
            r = image_scores(s.label, masks[m])
            r["name"] = s.name
            per[m].append(r)
            if keep_predictions:
                preds[m].append(masks[m])
        if "caffe" in raw and "torch" in raw:
            disagreement.append({"name": s.name,
                                 "pixels": int(np.count_nonzero(masks["caffe"] != masks["torch"])),
                                 "max_abs_score_diff": float(np.abs(raw["caffe"] - raw["torch"]).max()),
                                 "total": int(s.label.size)})
    result = {"methods": methods, "per_image": per, "summary": {m: aggregate(per[m]) for m in methods},
              "disagreement": disagreement}
    if keep_predictions:
        result["predictions"] = preds
    return result


def _fmt(x: float, d: int = 4) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{d}f}"


def table_rows(result: dict) -> list[list[str]]:
    rows = [["method", "pixel acc", "mean acc", "mean IoU", "fg IoU", "Jaccard % (mean ± std)",
             "Hausdorff px (mean ± std)"]]
    for m in result["methods"]:
        s = result["summary"][m]
        rows.append([m, _fmt(s["pixel_acc"]), _fmt(s["mean_acc"]), _fmt(s["mean_iou"]), _fmt(s["iou"][1]),
                     f"{_fmt(s['jaccard_mean'], 2)} ± {_fmt(s['jaccard_std'], 2)}",
                     f"{_fmt(s['hausdorff_mean'], 2)} ± {_fmt(s['hausdorff_std'], 2)}"])
    return rows


def disagreement_summary(result: dict) -> dict | None:
    d = result["disagreement"]
    if not d:
        return None
    px = [x["pixels"] for x in d]
    return {"images": len(d), "images_differing": sum(p > 0 for p in px), "pixels_differing": int(sum(px)),
            "pixels_total": int(sum(x["total"] for x in d)), "max_pixels_one_image": int(max(px)),
            "max_abs_score_diff": float(max(x["max_abs_score_diff"] for x in d))}


def format_text(result: dict) -> str:
    rows = table_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    ds = disagreement_summary(result)
    if ds:
        lines.append("")
        lines.append(f"caffe vs torch: {ds['pixels_differing']} of {ds['pixels_total']} pixels differ in argmax "
                     f"({ds['images_differing']} of {ds['images']} images; at most {ds['max_pixels_one_image']} "
                     f"in one image); max |score difference| {ds['max_abs_score_diff']:.3g}")
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    def clean(r):
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()}

    return {"methods": result["methods"], "summary": {m: clean(s) for m, s in result["summary"].items()},
            "per_image": {m: [clean(r) for r in rs] for m, rs in result["per_image"].items()},
            "disagreement": result["disagreement"], "disagreement_summary": disagreement_summary(result)}


def _overlay_grid(result: dict, samples: list[Sample], method: str, idx: list[int], path: Path, title: str):
    """Rows of (image, truth, prediction, difference): green = missed object, red = false object."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(len(idx), 4, figsize=(8, 2.1 * len(idx)), squeeze=False)
    per, preds = result["per_image"][method], result["predictions"][method]
    for row, i in zip(axes, idx, strict=True):
        s, pred = samples[i], preds[i]
        t = s.label == 1
        diff = np.zeros((*t.shape, 3), np.uint8)
        diff[t & (pred == 1)] = (255, 255, 255)
        diff[t & (pred != 1)] = (0, 200, 0)
        diff[~t & (pred == 1) & (s.label != 255)] = (230, 0, 0)
        for ax, im, lab in zip(row, (s.bgr[..., ::-1], t, pred, diff),
                               (s.name, "truth", f"{method}", f"J {per[i]['jaccard']:.1f}%  "
                                f"H {per[i]['hausdorff']:.1f}px"), strict=True):
            ax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(lab, fontsize=7)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(out_dir: str | Path, result: dict, samples: list[Sample], *, data: str, model: str | None,
                 n_show: int = 4) -> Path:
    """OUT/report.md + PNGs: metrics table, best/worst overlays of the first method, Caffe-vs-PyTorch table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(result)
    md = ["# Segmentation evaluation", "", f"- data: `{data}` ({len(samples)} images)"]
    if model:
        md.append(f"- model: `{model}`")
    md += ["- pixel acc / mean acc / IoU: FCN histogram definitions over all pixels (truth 255 ignored); "
           "Jaccard % and Hausdorff (contour, px): per image, mean ± std. Empty masks: see fcnkit.metrics.", "",
           "## Metrics", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    method = result["methods"][0]
    per = result["per_image"][method]
    order = sorted(range(len(per)), key=lambda i: per[i]["jaccard"])
    k = min(n_show, len(order))
    md += ["", f"## Best and worst images ({method})", "",
           "Columns: image, truth, prediction, difference (white: correct object, green: missed, red: false).", ""]
    for tag, idx in (("best", order[::-1][:k]), ("worst", order[:k])):
        name = f"{tag}_{method.replace('+', '_')}.png"
        _overlay_grid(result, samples, method, idx, out / name, f"{tag} {k} by Jaccard ({method})")
        md += [f"### {tag.capitalize()}", "", f"![{tag}]({name})", ""]
    ds = disagreement_summary(result)
    md += ["## Caffe vs PyTorch", ""]
    if ds:
        md += ["| | value |", "|---|---|",
               f"| images | {ds['images']} |",
               f"| images with any argmax difference | {ds['images_differing']} |",
               f"| pixels whose argmax differs | {ds['pixels_differing']} of {ds['pixels_total']} |",
               f"| most in one image | {ds['max_pixels_one_image']} |",
               f"| max abs score difference | {ds['max_abs_score_diff']:.3g} |", ""]
        if ds["images_differing"]:
            md += ["| image | pixels differing | max abs score diff |", "|---|---|---|"]
            md += [f"| {d['name']} | {d['pixels']} | {d['max_abs_score_diff']:.3g} |"
                   for d in result["disagreement"] if d["pixels"]]
    else:
        md.append("Not compared (run with `--backend both`).")
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    (out / "metrics.json").write_text(json.dumps(to_json(result), indent=1) + "\n")
    return path


@cli_entry("evaluate")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help=f"dataset (default {DEFAULT_DATA})")
    p.add_argument("--split", default="val", help="LMDB split prefix (default val)")
    p.add_argument("--masks", help="mask folder for a photo folder (default DATA/masks)")
    p.add_argument("--model", help=f"converted model directory (default {DEFAULT_MODEL})")
    p.add_argument("--deploy", help="Caffe deploy prototxt (default: conversion.json's source)")
    p.add_argument("--caffemodel", help="Caffe weights (default: conversion.json's source)")
    p.add_argument("--backend", choices=["caffe", "torch", "both", "none"], default="both")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--baseline", action="store_true", help="add ExtractNet's classical baseline (§4.2)")
    p.add_argument("--postprocess", choices=["none", "extractnet"], default="none",
                   help="also report every method after ExtractNet's blur/threshold/opening")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--json", help="write all figures (per image too) to this JSON file")
    p.add_argument("--report", help="write a Markdown + PNG report into this directory")
    a = p.parse_args(argv)
    if a.backend == "none" and not a.baseline:
        raise UserError("--backend none needs --baseline (nothing to evaluate)")
    samples = load_samples(a.data, split=a.split, masks=a.masks, limit=a.limit)
    backends = []
    mf = None
    if a.backend != "none":
        mf = resolve_model(a.model, a.deploy, a.caffemodel)
        for n in mf.notes:
            print(f"evaluate: {n}")
        backends = make_backends(a.backend, mf, a.device)
    pp = None if a.postprocess == "none" else a.postprocess
    result = run_evaluation(samples, backends, baseline=a.baseline, postprocess=pp, keep_predictions=bool(a.report))
    print(f"evaluate: {len(samples)} images from {a.data}")
    print(format_text(result))
    if a.json:
        Path(a.json).write_text(json.dumps(to_json(result), indent=1) + "\n")
        print(f"evaluate: wrote {a.json}")
    if a.report:
        path = write_report(a.report, result, samples, data=str(a.data),
                            model=str(mf.torch_dir) if mf else None)
        print(f"evaluate: report {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
