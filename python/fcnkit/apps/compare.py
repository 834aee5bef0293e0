"""`fcnkit compare`: every family trained (or loaded) on the same train split and scored on the same held-out
split by the same code, reported in the seeds' own table formats.

Methods per dataset (white-background and composite val sets):
* the FCN in Caffe (the final stage `solve` trained on that data: FCN-8s on white, the fine-tuned FCN-8s on
  composites) and its PyTorch conversion (`convert`); if no snapshot exists, `--fcn auto` trains the tiny
  chain with `fcnkit.apps.demo.train_chain` (quick preset) or names the command to run;
* every PyTorch family of the preset, trained by `fcnkit.training` into OUT/checkpoints/<dataset>/ and
  loaded back through `fcnkit.inference` exactly as `evaluate` would;
* the patch CNN (boxes only: trained from the bounding boxes of the train masks);
* ExtractNet's classical baseline;
* each of the above again after ExtractNet's post-processing ("+pp").
Scores (fcnkit.evaluation.metrics): FCN pixel accuracy and mean IoU (summed histogram), foreground IoU
(ExtractNet's IoU, from the same histogram), Jaccard % and Hausdorff px (per image, mean ± std, the LRN
paper's). Timing: `train_seconds` of the training run, `ms_per_image` of inference (batch 1, this machine).

OUT/compare.json, OUT/compare.md (tables in the seeds' formats, the floors, the LRN-variant claim) and
OUT/overlays_<dataset>.png (rows: the same val images; columns: image, truth, every model) are written
atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit import inference, models
from fcnkit import models as registry
from fcnkit.apps.demo import DEFAULT_SIZE, ensure_sample, train_chain
from fcnkit.caffenet.model_folder import is_model_folder, read_info
from fcnkit.config.paths import DEMO_RUN_DIR, in_project
from fcnkit.config.seeds import EXTRACTNET_TABLE, LRN_TABLE
from fcnkit.convert.convert import convert
from fcnkit.data.boxes import box_of
from fcnkit.data.datasets import load_samples
from fcnkit.errors import UserError
from fcnkit.evaluation.baselines import extractnet_baseline
from fcnkit.evaluation.metrics import aggregate, image_scores
from fcnkit.inference.postprocess import finish_mask, postprocess_extractnet
from fcnkit.inference.predict import to_mask
from fcnkit.io.atomic import atomic_path, write_text_atomic
from fcnkit.io.caffe_schema import read_caffemodel
from fcnkit.io.figures import pyplot
from fcnkit.models.encoders.releases import get_release
from fcnkit.models.recipe import Recipe
from fcnkit.training.trainer import train

SHOW = 6  # val images in the overlay grids


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data_root: str                     # project-relative; holds one folder per dataset
    datasets: tuple[str, ...]
    fcn: dict[str, str]                # dataset -> the registered Caffe model trained on it
    device: str = "cpu"
    train: dict = field(default_factory=dict)  # per-model recipe overrides: {"model": {"epochs": n}}

    def overrides(self, name: str) -> dict:
        """Recipe overrides for model `name`: the preset's "*" entry, then its own."""
        return {**self.train.get("*", {}), **self.train.get(name, {})}

    @property
    def models(self) -> tuple[str, ...]:
        """The PyTorch models registered for this preset (`ModelSpec.presets`), in registration order."""
        return tuple(s.name for s in models.registered().values() if self.name in s.presets)


PRESETS = {
    "quick": Preset("quick", "tiny widths on the embedded sample data (CPU, minutes)", "data/tiny",
                    ("white", "composite"), {"white": "tiny/fcn8s", "composite": "tiny/fcn8s_finetune"},
                    train={"patchcnn": {"epochs": 2, "patches_per_epoch": 6_400}}),
    "paper": Preset("paper", "the seeds' full nets, sizes and schedules (a GPU job)", "data",
                    ("white", "composite"), {"white": "fcn8s", "composite": "fcn8s_finetune"},
                    device="cuda"),
}


@dataclass
class Method:
    name: str
    family: str
    framework: str
    supervision: str
    params: int | None
    train_seconds: float | None
    predict: object                    # Sample -> (H, W) uint8 mask (a sample: the image, and its truth for boxes)
    learned: bool = True


def _caffe_params(caffemodel: Path) -> int:
    return int(sum(b.data.size for layer in read_caffemodel(caffemodel).layers.values() for b in layer.blobs))


def _mask_fn(predictor):
    return lambda s: to_mask(predictor.logit(s.bgr))


def fcn_methods(name: str, out: Path, mode: str, *, precision: str = "fp32", log=print) -> list[Method]:
    """The Caffe FCN `name` and its PyTorch conversion, trained first if `mode` is "auto"/"train" and missing."""
    spec = models.get(name)
    weights = spec.find_weights()
    seconds = None
    summary_file = in_project(DEMO_RUN_DIR) / "summary.json"
    if weights is None or mode == "train":
        if mode == "load":
            raise UserError(f"{spec.name} has no trained weights ({spec.snapshot_prefix}_iter_*.caffemodel); run "
                            f"`make demo` (or `{spec.how_to_train()}` after its earlier stages), or --fcn skip")
        if not spec.name.startswith("tiny/"):
            raise UserError(f"{spec.name} has no trained weights; train the paper's chain with `solve` (README: "
                            "Reproducing the paper), or --fcn skip")

        log(f"compare: no trained {spec.name}; training the tiny FCN chain with real Caffe (fcnkit.apps.demo)")
        summary = train_chain(out / "fcn_logs", log=log)
        summary_file = out / "fcn_summary.json"
        _write_json(summary_file, summary)
        weights = spec.find_weights()
    if summary_file.is_file():
        chain = json.loads(summary_file.read_text())
        stage = spec.extra.get("stage")
        idx = next((i for i, s in enumerate(chain) if s.get("stage") == stage), None)
        if idx is not None:
            seconds = float(sum(s.get("seconds", 0) for s in chain[:idx + 1]))
    caffe = inference.load(spec.name, backend="caffe")
    params = _caffe_params(weights)
    # Its PyTorch copy: the demo's conversion if it is of these very weights, else convert now.
    folder = in_project(DEMO_RUN_DIR) / "torch" / spec.extra["stage"]
    if not (is_model_folder(folder) and Path(read_info(folder)["source"]["caffemodel"]).resolve()
            == Path(weights).resolve()):
        folder = out / "torch" / spec.extra["stage"]
        folder.parent.mkdir(parents=True, exist_ok=True)
        convert(in_project(spec.deploy), weights, folder, force=True, check_export=False)
        log(f"compare: converted {weights} -> {folder}")
    torch_p = inference.load(folder, backend="torch", precision=precision)
    sup = spec.supervision
    return [Method(f"{spec.name} (Caffe)", "fcn", "caffe", sup, params, seconds, _mask_fn(caffe)),
            Method(f"{spec.name} (converted)", "fcn", "torch", sup, params, seconds, _mask_fn(torch_p))]


def trained_methods(name: str, data: Path, ckpt: Path, *, preset: Preset, device: str, seed: int, reuse: bool,
                    val: Path | None = None, split: str = "val", precision: str = "fp32",
                    log=print) -> list[Method]:
    """Train `name` on DATA's train split (validating on VAL, a photo folder, when given) into `ckpt` (or reuse
    it) and load it back through fcnkit.inference (scored in `precision`).

    The patch CNN gives two rows: applied to the whole image (tag-free), and refining each `split` image's tag
    (the bounding box of its true mask, as the seed uses it: the mask clipped to the box)."""
    spec = models.get(name)
    sidecar = ckpt.with_suffix(".json")
    done = {}
    if reuse and sidecar.is_file() and ckpt.is_file():
        try:
            done = json.loads(sidecar.read_text())
        except ValueError as exc:
            raise UserError(f"{sidecar}: unreadable sidecar ({exc}); delete it (or drop --reuse) to train {name} "
                            "again") from None
        if not isinstance(done, dict):
            raise UserError(f"{sidecar}: not a checkpoint sidecar (a JSON object); delete it or drop --reuse")

    overrides = preset.overrides(name)
    target = Recipe.of(spec, **overrides).epochs
    if not done or done.get("interrupted") or done.get("epoch", 0) < target:
        # --reuse: a finished checkpoint is kept; an unfinished one (killed, interrupted, or a schedule that
        # has grown since) is resumed to the preset's epochs
        train(name, data, val=val, out=ckpt, seed=seed, device=device, overrides=overrides or None, log=log,
              resume=bool(done))
    info = json.loads(sidecar.read_text())
    p = inference.load(ckpt, device=device, precision=precision)
    params = sum(int(t.numel()) for t in p.backend.model.parameters())
    m = Method(name, spec.family, "torch", spec.supervision, params, info.get("train_seconds"), _mask_fn(p))
    if spec.supervision != "boxes":
        return [m]

    logits: dict[str, np.ndarray] = {}  # the dense patch map is slow: one per image serves every row

    def logit(s):
        if s.name not in logits:
            logits[s.name] = p.logit(s.bgr)
        return logits[s.name]

    m.predict = lambda s: to_mask(logit(s))
    boxed = Method(f"{name} ({split} box)", spec.family, "torch", f"boxes (and the {split} box)", params,
                   m.train_seconds, lambda s: finish_mask(logit(s), box_of(s.label)))
    m.name = f"{name} (tag-free)"
    return [m, boxed]


def baseline_method() -> Method:
    return Method("baseline (Otsu + watershed)", "classical", "opencv", "none", 0, 0.0,
                  lambda s: extractnet_baseline(s.bgr), learned=False)


def score_method(m: Method, samples) -> tuple[list[dict], list[np.ndarray], float]:
    masks, per, t = [], [], 0.0
    for s in samples:
        t0 = time.perf_counter()
        mask = m.predict(s)
        t += time.perf_counter() - t0
        masks.append(mask)
        per.append(image_scores(s.label, mask))
    return per, masks, 1000.0 * t / max(1, len(samples))


def score_methods(methods: list[Method], samples, dataset: str, rows: list[dict], log=print) -> dict:
    """Score every method on SAMPLES, as it is and after ExtractNet's post-processing: two rows each appended
    to ROWS; returns each method's first SHOW masks (for the overlay grid)."""
    shown = {}
    for m in methods:
        per, masks, ms = score_method(m, samples)
        rows.append(row(m, dataset, aggregate(per), ms, False))
        pp_per = [image_scores(s.label, postprocess_extractnet(k)) for s, k in zip(samples, masks, strict=True)]
        rows.append(row(m, dataset, aggregate(pp_per), ms, True))
        shown[m.name] = masks[:SHOW]
        log(f"compare: {dataset}: {m.name}: IoU {rows[-2]['iou'] or 0:.3f}, Jaccard {rows[-2]['jaccard_mean']:.2f} %, "
            f"mean IoU {rows[-2]['mean_iou']:.4f}, {ms:.1f} ms/image")
    return shown


def row(m: Method, dataset: str, summary: dict, ms: float, postprocess: bool) -> dict:
    def f(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 6)

    return {"name": m.name + (" +pp" if postprocess else ""), "family": m.family, "framework": m.framework,
            "supervision": m.supervision, "params": m.params, "train_seconds": f(m.train_seconds),
            "ms_per_image": f(ms), "iou": f(summary["iou"][1]), "jaccard_mean": f(summary["jaccard_mean"]),
            "jaccard_std": f(summary["jaccard_std"]), "hausdorff_mean": f(summary["hausdorff_mean"]),
            "hausdorff_std": f(summary["hausdorff_std"]), "pixel_acc": f(summary["pixel_acc"]),
            "mean_iou": f(summary["mean_iou"]), "dataset": dataset, "postprocess": postprocess,
            "learned": m.learned}


def run_compare(preset: str = "quick", out: str | Path = "runs/compare", *, models: list[str] | None = None,
                datasets: list[str] | None = None, fcn: str = "auto", device: str | None = None, seed: int = 0,
                precision: str = "fp32", reuse: bool = False, data_root: str | Path | None = None,
                train_overrides: dict | None = None,
                log=print) -> dict:
    """Run the comparison (see the module doc); `train_overrides` {model or "*": recipe fields} change the
    preset's schedules (e.g. {"*": {"epochs": 1}} for a smoke run)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    pre = PRESETS[preset]
    if train_overrides:
        merged = {n: {**pre.train.get(n, {}), **train_overrides.get("*", {}), **train_overrides.get(n, {})}
                  for n in set(pre.train) | set(pre.models) | set(models or [])}
        pre = Preset(pre.name, pre.description, pre.data_root, pre.datasets, pre.fcn, pre.device, merged)
    if fcn not in ("auto", "load", "train", "skip"):
        raise UserError(f"--fcn {fcn!r}: choose auto, load, train or skip")
    names = list(models) if models else list(pre.models)

    for n in names:
        spec = registry.get(n)
        if spec.framework != "torch":
            raise UserError(f"--models {n}: a Caffe model; the FCN rows come from --fcn")
        release = spec.recipe.pretrained if spec.recipe else None
        if release:  # before any training: a missing download is a one-line error naming its command
            rel = get_release(release)
            for path in rel.paths():
                if not path.is_file():
                    raise UserError(f"{path}: {n} starts from {rel.title} ImageNet weights; fetch them with "
                                    f"`{rel.fetch_command}` (or leave {n} out with --models)")
    sets = list(datasets) if datasets else list(pre.datasets)
    device = device or pre.device
    out = Path(out)
    root = Path(data_root) if data_root else in_project(pre.data_root)
    if preset == "quick" and data_root is None and not (root / "dataset.json").is_file():
        ensure_sample(root, DEFAULT_SIZE, 0, log=log)
    for ds in sets:
        if not (root / ds / "val_image_lmdb" / "data.mdb").is_file():
            raise UserError(f"{root / ds}: no val_image_lmdb; prepare it first (`prep sample` for the quick preset, "
                            "`prep ingest ... --out data` for the paper preset)")
    if fcn == "load":  # before any training: a missing snapshot is a one-line error, not a late crash
        for ds in sets:
            spec = registry.get(pre.fcn[ds]) if ds in pre.fcn else None
            if spec is not None and spec.find_weights() is None:
                raise UserError(f"{spec.name} has no trained weights ({spec.snapshot_prefix}_iter_*.caffemodel); "
                                f"run `make demo` (or `{spec.how_to_train()}` after its earlier stages), or --fcn "
                                "skip")
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows, grids, data_info = [], {}, {}
    for ds in sets:
        data = root / ds
        samples = load_samples(data, split="val")
        data_info[ds] = {"path": str(data), "val_images": len(samples),
                         "size": f"{samples[0].bgr.shape[1]}x{samples[0].bgr.shape[0]}"}
        methods = [baseline_method()]
        if fcn != "skip" and ds in pre.fcn:
            methods += fcn_methods(pre.fcn[ds], out, fcn, precision=precision, log=log)
        for n in names:
            ckpt = out / "checkpoints" / ds / f"{n}.safetensors"
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            log(f"compare: {ds}: {n}")
            methods += trained_methods(n, data, ckpt, preset=pre, device=device, seed=seed, reuse=reuse,
                                       precision=precision, log=log)
        shown = score_methods(methods, samples, ds, rows, log=log)
        grids[ds] = write_overlays(out / f"overlays_{ds}.png", samples[:SHOW], shown, ds)
        partial = {"preset": preset, "complete": False, "data": data_info, "models": rows}
        _write_json(out / "compare.json", partial)  # each finished val set is on disk before the next starts
    result = {"complete": True, "preset": preset, "description": pre.description, "device": device,
              "precision": precision, "seed": seed,
              "data": data_info, "models": rows, "floors": floors(rows, sets), "claims": lrn_claim(rows, sets),
              "seconds": round(time.perf_counter() - t_start, 1),
              "overlays": {k: str(v) for k, v in grids.items()}}
    _write_json(out / "compare.json", result)

    write_text_atomic(out / "compare.md", markdown(result))
    log(f"compare: wrote {out / 'compare.json'}, {out / 'compare.md'} and the overlay grids in "
        f"{result['seconds']:.0f}s")
    return result


def _write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def _baseline_jaccard(rows: list[dict], ds: str) -> float | None:
    """The classical baseline's Jaccard on val set `ds` (None when it did not run)."""
    return next((r["jaccard_mean"] for r in rows if r["dataset"] == ds and not r["learned"]
                 and not r["postprocess"]), None)


def floors(rows: list[dict], sets: list[str]) -> list[dict]:
    """The quick preset's floor: every learned model beats the classical baseline's Jaccard on every val set."""
    out = []
    for ds in sets:
        base = _baseline_jaccard(rows, ds)
        for r in rows:
            if r["dataset"] == ds and r["learned"] and not r["postprocess"]:
                out.append({"dataset": ds, "model": r["name"], "jaccard": r["jaccard_mean"], "baseline": base,
                            "pass": bool((r["jaccard_mean"] or 0) > (base or 0))})
    return out


def lrn_claim(rows: list[dict], sets: list[str]) -> list[dict]:
    """The LRN seed's claim: with one output channel the original LRN (1-filter skip convolution) "was unable
    to learn properly". It holds on a val set when the original does not beat the classical baseline's Jaccard
    (the floors' test of having learned) while the seed's variant does; `seed_better` records the ranking."""
    out = []
    for ds in sets:
        by = {r["name"]: r for r in rows if r["dataset"] == ds and not r["postprocess"]}
        base = _baseline_jaccard(rows, ds)
        for ours, orig in (("tiny/lrn", "tiny/lrn-original"), ("lrn", "lrn-original")):
            if ours in by and orig in by:
                a, b = by[ours]["jaccard_mean"] or 0.0, by[orig]["jaccard_mean"] or 0.0
                learns = base is None or b > base
                out.append({"dataset": ds, "seed_variant": ours, "original": orig, "jaccard_seed": a,
                            "jaccard_original": b, "baseline": base, "original_learns": bool(learns),
                            "seed_better": bool(a > b), "holds": bool(not learns and (base is None or a > base))})
    return out


def _pm(m, s, d=2) -> str:
    return "n/a" if m is None else f"{m:.{d}f} ± {s:.{d}f}"


def _n(x, d=4) -> str:
    return "n/a" if x is None else f"{x:.{d}f}"


def markdown(result: dict) -> str:
    md = [f"# compare: preset `{result['preset']}`", "",
          f"{result['description']}; device {result['device']}, seed {result['seed']}; "
          f"total {result['seconds']:.0f} s.", ""]
    for ds, info in result["data"].items():
        rows = [r for r in result["models"] if r["dataset"] == ds]
        plain = [r for r in rows if not r["postprocess"]]
        md += [f"## {ds} ({info['val_images']} val images, {info['size']}, `{info['path']}`)", "",
               "| model | family | framework | supervision | params | train s | ms / image |",
               "|---|---|---|---|---:|---:|---:|"]
        md += [f"| {r['name']} | {r['family']} | {r['framework']} | {r['supervision']} | "
               f"{r['params'] if r['params'] is not None else 'n/a'} | "
               f"{_n(r['train_seconds'], 0)} | {_n(r['ms_per_image'], 1)} |" for r in plain]
        md += ["", "LRN paper format (Table 1: per-image Jaccard index and Hausdorff distance, mean ± std):", "",
               "| Method | Jaccard index (%) | Hausdorff distance |", "|---|---|---|"]
        md += [f"| {r['name']} | {_pm(r['jaccard_mean'], r['jaccard_std'])} | "
               f"{_pm(r['hausdorff_mean'], r['hausdorff_std'])} |" for r in plain]
        md += ["", "ExtractNet format (Table 1: IoU of the object class; here over the val set's pixels):", "",
               "| Model | Validation IoU |", "|---|---|"]
        md += [f"| {r['name']} | {_n(r['iou'], 3)} |" for r in plain]
        md += ["", "FCN format (pixel accuracy, mean IoU over both classes):", "",
               "| Net | pixel acc. | mean IU |", "|---|---|---|"]
        md += [f"| {r['name']} | {_n(r['pixel_acc'])} | {_n(r['mean_iou'])} |" for r in plain]
        md += ["", "After ExtractNet's post-processing (blur 27, threshold 0.5, opening 39, scaled to the image):", "",
               "| Method | Jaccard index (%) | Hausdorff distance | IoU | mean IU |", "|---|---|---|---|---|"]
        md += [f"| {r['name']} | {_pm(r['jaccard_mean'], r['jaccard_std'])} | "
               f"{_pm(r['hausdorff_mean'], r['hausdorff_std'])} | {_n(r['iou'], 3)} | {_n(r['mean_iou'])} |"
               for r in rows if r["postprocess"]]
        md += ["", f"![overlays](overlays_{ds}.png)", ""]
    md += ["## Floors (every learned model beats the classical baseline's Jaccard)", "",
           "| val set | model | Jaccard % | baseline | |", "|---|---|---|---|---|"]
    md += [f"| {f['dataset']} | {f['model']} | {_n(f['jaccard'], 2)} | {_n(f['baseline'], 2)} | "
           f"{'PASS' if f['pass'] else 'FAIL'} |" for f in result["floors"]]
    md += ["", "## The LRN seed's claim", "",
           "The seed drops the original LRN's 1-filter convolution on each skip because with one output channel "
           "the original \"was unable to learn properly\".", ""]
    if result["claims"]:
        md += [f"- {c['dataset']}: seed's variant {c['seed_variant']} Jaccard {_n(c['jaccard_seed'], 2)} % vs "
               f"original {c['original']} {_n(c['jaccard_original'], 2)} % (baseline {_n(c.get('baseline'), 2)} %): "
               + ("holds here: the original does not beat the baseline" if c["holds"] else
                  "does not hold here: the original learns" + (", the seed's variant scores higher" if
                  c.get("seed_better") else ", and scores higher than the seed's variant"))
               for c in result["claims"]]
    else:
        md.append("- not measured (both LRN variants are needed)")
    md += ["", "## As published (their data, their nets; for orientation only)", "",
           "| LRN paper | Jaccard % | Hausdorff |", "|---|---|---|"]
    md += [f"| {k} | {v[0]:.2f} ± {v[1]:.2f} | {v[2]:.2f} ± {v[3]:.2f} |" for k, v in LRN_TABLE.items()]
    md += ["", "| ExtractNet report | IoU |", "|---|---|"]
    md += [f"| {k} | {v:.3f} |" for k, v in EXTRACTNET_TABLE.items()]
    return "\n".join(md) + "\n"


def write_overlays(path: Path, samples, masks: dict[str, list[np.ndarray]], title: str) -> Path:
    """Rows: the same val images; columns: image, truth, then every method's mask over the image."""
    plt = pyplot()


    cols = ["image", "truth", *masks]
    fig, axes = plt.subplots(len(samples), len(cols), figsize=(1.3 * len(cols), 1.45 * len(samples)), squeeze=False)
    for i, s in enumerate(samples):
        rgb = s.bgr[..., ::-1]
        for j, c in enumerate(cols):
            ax = axes[i, j]
            if c == "image":
                ax.imshow(rgb)
            else:
                m = (s.label == 1) if c == "truth" else (masks[c][i] == 1)
                tint = rgb.astype(np.float32) * 0.35
                tint[m] = rgb[m] * 0.5 + np.array([0, 255, 0]) * 0.5
                ax.imshow(tint.astype(np.uint8))
            if i == 0:
                ax.set_title(c.replace(" (", "\n("), fontsize=5)
            ax.axis("off")
    fig.suptitle(f"{title}: object in green", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
