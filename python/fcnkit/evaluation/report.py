"""Evaluation output: the metrics table (text and Markdown), JSON, and a report with overlay grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fcnkit.data.datasets import Sample
from fcnkit.io.atomic import atomic_path, write_text_atomic
from fcnkit.io.figures import pyplot


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


def disagreement_summary(result: dict, d: list[dict] | None = None) -> dict | None:
    """Totals over per-image comparisons `d` (default: Caffe vs PyTorch)."""
    d = result["disagreement"] if d is None else d
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
    for p in result.get("precision", ()):
        ps = disagreement_summary(result, p["images"])
        share = 100.0 * (1 - ps["pixels_differing"] / max(1, ps["pixels_total"]))
        lines.append(f"{p['method']} vs {p['reference']} (fp32): {share:.2f} % of pixels agree "
                     f"({ps['pixels_differing']} of {ps['pixels_total']} differ; {ps['images_differing']} of "
                     f"{ps['images']} images); fg IoU change {p['iou_change']:+.4f}, mean IoU change "
                     f"{p['mean_iou_change']:+.4f}")
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    def clean(r):
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()}

    return {"methods": result["methods"], "summary": {m: clean(s) for m, s in result["summary"].items()},
            "per_image": {m: [clean(r) for r in rs] for m, rs in result["per_image"].items()},
            "disagreement": result["disagreement"], "disagreement_summary": disagreement_summary(result),
            "precision": [{**p, "summary": disagreement_summary(result, p["images"])}
                          for p in result.get("precision", ())]}


def _overlay_grid(result: dict, samples: list[Sample], method: str, idx: list[int], path: Path, title: str):
    """Rows of (image, truth, prediction, difference): green = missed object, red = false object."""
    plt = pyplot()

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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
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
           "Jaccard % and Hausdorff (contour, px): per image, mean ± std. Empty masks: see "
           "fcnkit.evaluation.metrics.", "",
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
    write_text_atomic(out / "metrics.json", json.dumps(to_json(result), indent=1) + "\n")
    write_text_atomic(path, "\n".join(md) + "\n")  # last: its presence means the report is complete
    return path
