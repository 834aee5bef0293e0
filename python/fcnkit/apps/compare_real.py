"""`fcnkit compare --preset real|real-quick [--data DIR]`: every seed's system on its own real-photo task, and
every family on DUTS, trained here on CPU and scored on held-out real photos by the same code.

Tasks (`config.realdata.REAL_TASKS`; their data prepared by `prep real` under OUT/prep and read back by
`apps.realdata`): real shoes on white and pasted onto unseen
scenes (the FCN study; FCN format: pixel accuracy, mean IU), head-and-torso portraits (the LRN paper's
Table 1, beside the seed's own LFW numbers), COCO prominent objects and DUTS salient objects (ExtractNet's
IoU table; the DUTS-trained models are scored on COCO too), fashion photos refined from a box (the patch
CNN: Jaccard against the hand masks, of the box itself and of each refinement option; the ms / image of its
box rows leave out the dense map, computed once per photo for its tag-free row). The study's FCN itself trains on
the shoe tasks in real Caffe (`apps.real_fcn`: the tiny FCN-32s -> 16s -> 8s on the shoes on white, then FCN-8s
on the composites and fine-tuned, under OUT/fcn), scored in Caffe and as its converted PyTorch copy
(`--fcn skip`: leave it out). On every test set:
ExtractNet's classical baseline and every method
again after ExtractNet's post-processing ("+pp").

Per task: OUT/prep/<set> (`prep real`'s output, its splits), OUT/data/<task>/{train,val} (the preset's
subsets as the image folders the trainer reads), OUT/checkpoints/<task>/<model>
(the registered model `<task>/<model>`), OUT/overlays_<task>.png (real test photos: truth and every
model). OUT/compare.json is rewritten after each task ("complete": false until the end); OUT/compare.md
holds the tables and the floors. `--reuse` keeps finished checkpoints and resumes unfinished ones (an
interrupted run continues). With `install`, each trained model is copied to its registered checkpoint
(weights/native/<task>/<model>.safetensors) with its test scores, so `fcnkit models`, `remove-bg --model
duts/unet` and `serve` offer it (the server's default: the best DUTS model, `apps.serve.catalog`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit import models
from fcnkit.apps.compare import (
    SHOW,
    Method,
    Preset,
    _write_json,
    baseline_method,
    floors,
    score_methods,
    trained_methods,
    write_overlays,
)
from fcnkit.apps.real_fcn import FCN_MODES, TASK_DATA, RealChain
from fcnkit.apps.realdata import READERS, TASK_SET, hold_out, prepare, split_names, write_split
from fcnkit.config.paths import in_project
from fcnkit.config.realdata import (
    BEST_TASK,
    DUTS_IOU_FLOOR,
    REAL_SIZE,
    REAL_TASKS,
    TASK_BY_NAME,
    default_realdata,
)
from fcnkit.config.seeds import EXTRACTNET_TABLE, LRN_TABLE, LRN_TEST_IMAGES, LRN_TRAIN_IMAGES
from fcnkit.data.boxes import box_label_map, box_of
from fcnkit.errors import UserError
from fcnkit.inference.postprocess import largest_component
from fcnkit.io.atomic import atomic_path, write_text_atomic
from fcnkit.training.checkpoint import paths as checkpoint_paths

VAL_IMAGES = 48  # held out of each task's train split to validate every epoch (never the test photos)


@dataclass(frozen=True)
class RealPreset:
    name: str
    description: str
    n_train: dict[str, int | None]     # task -> train photos (None: all)
    n_test: dict[str, int | None]      # task -> test photos scored (None: all)
    train: dict = field(default_factory=dict)  # recipe overrides: {"*": {...}, "duts/unet": {...}}
    install: bool = False              # copy the trained models to their registered checkpoints
    fcn_iter_scale: float | None = None  # the FCN chain's iterations: the stage table's times this (None: no chain)
    prep_limit: int | None = None      # `prep real --limit`: the first N photos of each source split (None: all)


_ALL = {t.name: None for t in REAL_TASKS}
REAL_PRESETS = {
    "real": RealPreset(
        "real", f"every seed's system on real photographs, CPU models at {REAL_SIZE} px (the full real benchmark)",
        {**_ALL, "portraits": 600, "shoes": 500, "shoes_scenes": 500},
        {**_ALL, "duts": 300, "shoes": 150, "shoes_scenes": 150, "fashion": 100},
        # ours, to fit an hour on 2 shared CPU cores: the shared task's U-Net gets the longest schedule
        {"*": {"epochs": 4}, "duts/unet": {"epochs": 20}, "coco/extractnet-simple": {"epochs": 8},
         "coco/extractnet-interconnected": {"epochs": 8},
         "duts/patchcnn": {"epochs": 2, "patches_per_epoch": 20_000},
         "fashion/patchcnn": {"epochs": 3, "patches_per_epoch": 20_000}},
        install=True, fcn_iter_scale=0.01),
    "real-quick": RealPreset(
        "real-quick", "the real benchmark on small subsets, 2 epochs (a smoke test of every task: minutes)",
        {t.name: 96 for t in REAL_TASKS}, {t.name: 16 for t in REAL_TASKS},
        {"*": {"epochs": 2}, "fashion/patchcnn": {"epochs": 1, "patches_per_epoch": 4096},
         "duts/patchcnn": {"epochs": 1, "patches_per_epoch": 4096}},
        fcn_iter_scale=0.001, prep_limit=160),
}


def task_models(task: str, preset: str) -> list[str]:
    """The registered models trained on real-photo task `task` in this preset, in registration order."""
    return [s.name for s in models.registered().values()
            if (s.extra or {}).get("real") == task and preset in s.presets]


def prepare_task(task: str, root: Path, out: Path, pre: RealPreset, seed: int, log=print):
    """The task's train/val folders under OUT/data/<task> (written once) and its test samples (in memory), from
    what `prep real` wrote under OUT/prep (run first for the sets the task reads)."""
    t0 = time.perf_counter()
    work = prepare(root, out / "prep", [task], limit=pre.prep_limit, seed=seed, log=log)
    data = READERS[task](work, pre.n_train.get(task), pre.n_test.get(task), seed, n_val=VAL_IMAGES)
    train, val, test = data["train"], data["val"], data["test"]
    if not val:  # no val split prepared (COCO): held out of the train photos
        train, val = hold_out(train, min(VAL_IMAGES, max(2, len(train) // 10)), seed + 1)
    if len(train) < 4 or not val or not test:
        raise UserError(f"{root}: the {task} data gave {len(train)} train, {len(val)} val and {len(test)} test "
                        "photos; check the folder (see ../shared/realdata/README.md)")
    folders = {}
    for split, samples in (("train", train), ("val", val)):
        folder = out / "data" / task / split
        marker = folder / "split.json"
        if not (marker.is_file() and json.loads(marker.read_text()).get("names") == split_names(samples)):
            shutil.rmtree(folder, ignore_errors=True)
            write_split(samples, folder)
        folders[split] = folder
    info = {"train_images": len(train), "val_images": len(val), "test_images": len(test),
            "test_sizes": sorted({f"{s.bgr.shape[1]}x{s.bgr.shape[0]}" for s in test})[:4],
            "source": str(root), "prepared": str(work / TASK_SET[task]), "title": TASK_BY_NAME[task].title}
    log(f"compare: {task}: {info['train_images']} train, {len(val)} val, {len(test)} test photos "
        f"({time.perf_counter() - t0:.0f}s)")
    return folders, test, info


def box_methods(m: Method) -> list[Method]:
    """The patch CNN's other rows on a box task: the box itself as the mask, and the refined mask's largest
    connected component (the seed's option list; `fcnkit refine` has all of them)."""
    box = Method("box alone (the tag as the mask)", "box", "numpy", "the test box", 0, 0.0,
                 lambda s: box_label_map(s.label.shape, box_of(s.label)), learned=False)
    base = m.predict
    largest = Method(m.name.replace("box)", "box, largest component)"), m.family, m.framework, m.supervision,
                     m.params, m.train_seconds, lambda s: largest_component(base(s)))
    return [box, largest]


def run_real(preset: str = "real-quick", out: str | Path = "runs/compare/real-quick", *, data: str | Path | None = None,
             tasks: list[str] | None = None, models_only: list[str] | None = None, device: str = "cpu", seed: int = 0,
             reuse: bool = False, install: bool | None = None, train_overrides: dict | None = None,
             precision: str = "fp32", fcn: str = "auto", log=print) -> dict:
    if preset not in REAL_PRESETS:
        raise UserError(f"unknown real preset {preset!r}; choose one of: {', '.join(REAL_PRESETS)}")
    pre = REAL_PRESETS[preset]
    if fcn not in FCN_MODES:
        raise UserError(f"--fcn {fcn!r}: choose one of {', '.join(FCN_MODES)}")
    root = Path(data) if data else default_realdata()
    if root is None or not root.is_dir():
        raise UserError(f"{root or '../shared/realdata'}: no real data folder; pass --data DIR (the layout of "
                        "../shared/realdata/README.md; a user builds it with `prep fetch` and `prep` from the "
                        "public originals)")
    names = list(tasks) if tasks else [t.name for t in REAL_TASKS]
    bad = [t for t in names if t not in TASK_BY_NAME]
    if bad:
        raise UserError(f"--datasets {bad[0]}: not a real-photo task; choose from {', '.join(TASK_BY_NAME)}")
    for n in models_only or []:
        spec = models.get(n)
        if (spec.extra or {}).get("real") is None:
            raise UserError(f"--models {n}: not a real-photo model; these are `<task>/<model>`, e.g. duts/unet")
    train_cfg = {**pre.train}
    for k, v in (train_overrides or {}).items():
        train_cfg[k] = {**train_cfg.get(k, {}), **v}
    cpre = Preset(pre.name, pre.description, "", tuple(names), {}, device, train_cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chain = None
    if fcn != "skip" and pre.fcn_iter_scale and any(t in TASK_DATA for t in names):
        chain = RealChain(out / "fcn", pre.fcn_iter_scale, REAL_SIZE, VAL_IMAGES, seed=seed, mode=fcn, reuse=reuse,
                          precision=precision, log=log)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    rows, data_info, grids, trained, shared = [], {}, {}, {}, []
    for task in names:
        folders, test, data_info[task] = prepare_task(task, root, out, pre, seed, log=log)
        methods = [baseline_method()]
        for n in task_models(task, preset):
            if models_only and n not in models_only:
                continue
            ckpt = out / "checkpoints" / f"{n}.safetensors"
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            log(f"compare: {task}: {n}")
            got = trained_methods(n, folders["train"], ckpt, preset=cpre, device=device, seed=seed, reuse=reuse,
                                  val=folders["val"], split="test", precision=precision, log=log)
            trained[n] = ckpt
            methods += got
            if models.get(n).supervision == "boxes":
                methods += box_methods(got[-1])
        if chain and task in TASK_DATA:  # the study's FCN, in real Caffe and converted, beside the PyTorch rows
            methods += chain.methods(task, folders, lambda: prepare_task("shoes", root, out, pre, seed, log=log)[0])
        if task == BEST_TASK:
            shared = [m for m in methods if m.learned and m.supervision == "masks"]
        elif TASK_BY_NAME[task].table == "extractnet":  # the DUTS models on COCO's few prominent-object photos
            methods += [Method(f"{m.name} (trained on DUTS)", m.family, m.framework, m.supervision, m.params,
                               m.train_seconds, m.predict) for m in shared]
        shown = score_methods(methods, test, task, rows, log=log)
        grids[task] = write_overlays(out / f"overlays_{task}.png", test[:SHOW], shown, f"{task} (real test photos)")
        _write_json(out / "compare.json", {"preset": preset, "complete": False, "data": data_info, "models": rows})
    result = {"complete": True, "preset": preset, "description": pre.description, "device": device, "seed": seed,
              "data": data_info, "models": rows, "floors": real_floors(rows, names),
              **({"fcn": chain.info()} if chain else {}),
              "seconds": round(time.perf_counter() - t_start, 1),
              "load": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()],
                       "cpus": os.cpu_count()},
              "overlays": {k: str(v) for k, v in grids.items()}}
    if install if install is not None else pre.install:
        result["installed"] = install_models(trained, rows, log=log)
    _write_json(out / "compare.json", result)
    write_text_atomic(out / "compare.md", markdown_real(result))
    log(f"compare: wrote {out / 'compare.json'}, {out / 'compare.md'} and the overlay grids in "
        f"{result['seconds']:.0f}s")
    return result


def real_floors(rows: list[dict], tasks: list[str]) -> list[dict]:
    """Issue 20's floors: every learned model beats the classical baseline's Jaccard on every real test set;
    the best DUTS model reaches IoU DUTS_IOU_FLOOR; the patch CNN's refined mask beats the box it started from."""
    out = [{"kind": "beats the baseline", **f} for f in floors(rows, tasks)]
    plain = [r for r in rows if not r["postprocess"]]
    # the salient-object floor is for models that see the photo alone: not the patch CNN given the test box
    duts = [r for r in plain if r["dataset"] == BEST_TASK and r["learned"] and "test box" not in r["supervision"]]
    if duts:
        best = max(duts, key=lambda r: r["iou"] or 0)
        out.append({"kind": f"best DUTS-test IoU >= {DUTS_IOU_FLOOR}", "dataset": BEST_TASK, "model": best["name"],
                    "iou": best["iou"], "floor": DUTS_IOU_FLOOR, "pass": bool((best["iou"] or 0) >= DUTS_IOU_FLOOR)})
    for task in tasks:
        box = next((r for r in plain if r["dataset"] == task and r["family"] == "box"), None)
        for r in plain:
            if box and r["dataset"] == task and r["name"].endswith("test box)"):
                out.append({"kind": "refined mask beats its box", "dataset": task, "model": r["name"],
                            "jaccard": r["jaccard_mean"], "baseline": box["jaccard_mean"],
                            "pass": bool((r["jaccard_mean"] or 0) > (box["jaccard_mean"] or 0))})
    return out


def install_models(trained: dict[str, Path], rows: list[dict], log=print) -> list[str]:
    """Copy each trained `<task>/<model>` checkpoint to its registered path, its sidecar carrying the test
    scores (`test`) the server ranks by; each file replaced whole."""
    done = []
    for name, ckpt in trained.items():
        spec = models.get(name)
        task = spec.extra["real"]
        scores = next((r for r in rows if r["dataset"] == task and not r["postprocess"]
                       and r["name"].split(" (")[0] == name), None)
        src, dst = checkpoint_paths(ckpt), checkpoint_paths(in_project(spec.checkpoint))
        dst["weights"].parent.mkdir(parents=True, exist_ok=True)
        side = json.loads(src["sidecar"].read_text())
        side["test"] = {k: scores.get(k) for k in ("iou", "jaccard_mean", "hausdorff_mean", "pixel_acc",
                                                    "mean_iou")} if scores else {}
        side["test"]["task"] = task
        with atomic_path(dst["weights"]) as tmp:
            shutil.copyfile(src["weights"], tmp)
        write_text_atomic(dst["sidecar"], json.dumps(side, indent=1) + "\n")
        done.append(str(dst["weights"]))
    if done:
        log(f"compare: installed {len(done)} real-photo models under {Path(done[0]).parent.parent} "
            "(`fcnkit models`, `serve`, `remove-bg --model NAME`)")
    return done


# ------------------------------------------------------------------------------------------------ tables

def _n(x, d=3) -> str:
    return "n/a" if x is None else f"{x:.{d}f}"


def _pm(m, s, d=2) -> str:
    return "n/a" if m is None else f"{m:.{d}f} ± {s:.{d}f}"


def task_table(task: str, rows: list[dict]) -> list[str]:
    """The seed's own format for this task (`RealTask.table`)."""
    plain = [r for r in rows if not r["postprocess"]]
    kind = TASK_BY_NAME[task].table
    if kind == "fcn":
        md = ["FCN paper format (pixel accuracy, mean IU over both classes):", "",
              "| Net | pixel acc. | mean IU | Jaccard % | Hausdorff |", "|---|---|---|---|---|"]
        return md + [f"| {r['name']} | {_n(r['pixel_acc'], 4)} | {_n(r['mean_iou'], 4)} | "
                     f"{_pm(r['jaccard_mean'], r['jaccard_std'])} | {_pm(r['hausdorff_mean'], r['hausdorff_std'])} |"
                     for r in plain]
    if kind == "lrn":
        md = ["LRN paper format (Table 1, per-image Jaccard index % and Hausdorff distance px, mean ± std):", "",
              "| Method | Jaccard index (%) | Hausdorff distance |", "|---|---|---|"]
        md += [f"| {r['name']} | {_pm(r['jaccard_mean'], r['jaccard_std'])} | "
               f"{_pm(r['hausdorff_mean'], r['hausdorff_std'])} |" for r in plain]
        md += ["", f"The seed's own Table 1 (LFW, {LRN_TRAIN_IMAGES} train / {LRN_TEST_IMAGES} test images, "
               "224x224, full-width nets; a different data set, for orientation only):", "",
               "| Method (seed) | Jaccard index (%) | Hausdorff distance |", "|---|---|---|"]
        return md + [f"| {k} | {v[0]:.2f} ± {v[1]:.2f} | {v[2]:.2f} ± {v[3]:.2f} |" for k, v in LRN_TABLE.items()]
    if kind == "patchcnn":
        md = ["Patch CNN format (Jaccard against the hand masks; from the box alone):", "",
              "| Method | Jaccard index (%) | IoU | Hausdorff |", "|---|---|---|---|"]
        return md + [f"| {r['name']} | {_pm(r['jaccard_mean'], r['jaccard_std'])} | {_n(r['iou'])} | "
                     f"{_pm(r['hausdorff_mean'], r['hausdorff_std'])} |" for r in plain]
    md = ["ExtractNet format (IoU of the object class over the test set's pixels):", "",
          "| Model | Test IoU | after post-processing |", "|---|---|---|"]
    pp = {r["name"]: r for r in rows if r["postprocess"]}
    md += [f"| {r['name']} | {_n(r['iou'])} | {_n(pp.get(r['name'] + ' +pp', {}).get('iou'))} |" for r in plain]
    md += ["", "The report's own IoU (COCO 2014 train/val, full-size nets; a different data set):", "",
           "| Model (report) | IoU |", "|---|---|"]
    return md + [f"| {k} | {v:.3f} |" for k, v in EXTRACTNET_TABLE.items()]


def fcn_chain_table(fcn: dict | None) -> list[str]:
    """The FCN chain's stages (real Caffe, validation on the tasks' val photos) and its conversions."""
    if not fcn:
        return []
    md = ["## The study's FCN chain (real Caffe, tiny 1/16-width nets)", "",
          f"Trained under `{fcn['root']}` on {fcn['size']} px LMDBs of the shoe tasks' train/val photos; "
          f"each stage {fcn['iter_scale']:g} x the paper's iterations, from the previous stage's snapshot. "
          "Validation on the tasks' val photos:", "",
          "| stage | data | iterations | seconds | val pixel acc. | val mean IU |", "|---|---|---:|---:|---:|---:|"]
    md += [f"| {s['stage']} | {s['data']} | {s['iterations']} | {_n(s['seconds'], 0)} | {_n(s['pixel_acc'], 4)} | "
           f"{_n(s['mean_iou'], 4)} |" for s in fcn["stages"]]
    md += [""] + [f"caffe2torch --verify of `{c['caffemodel']}`: {'PASS' if c['verified'] else 'FAIL'} "
                  f"(`{c['folder']}`)." for c in fcn["converted"].values()]
    return md + [""]


def markdown_real(result: dict) -> str:
    load = result.get("load", {})
    md = [f"# compare: preset `{result['preset']}`", "",
          f"{result['description']}; device {result['device']}, seed {result['seed']}; total "
          f"{result['seconds']:.0f} s ({result['seconds'] / 60:.1f} min); load average at start "
          f"{load.get('start', ['?'])[0]}, at end {load.get('end', ['?'])[0]} on {load.get('cpus', '?')} CPUs.", ""]
    for task, info in result["data"].items():
        rows = [r for r in result["models"] if r["dataset"] == task]
        plain = [r for r in rows if not r["postprocess"]]
        pp = {r["name"]: r for r in rows if r["postprocess"]}
        md += [f"## {task}: {info['title']}", "",
               f"{info['train_images']} train + {info['val_images']} val photos, {info['test_images']} test photos "
               f"({', '.join(info['test_sizes'])}...), from `{info['source']}`.", "",
               "| model | family | supervision | params | train s | ms / image | IoU | Jaccard % | Hausdorff | "
               "pixel acc. | mean IU | IoU +pp |", "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]
        md += [f"| {r['name']} | {r['family']} | {r['supervision']} | "
               f"{r['params'] if r['params'] is not None else 'n/a'} | {_n(r['train_seconds'], 0)} | "
               f"{_n(r['ms_per_image'], 1)} | {_n(r['iou'])} | "
               f"{_pm(r['jaccard_mean'], r['jaccard_std'])} | {_pm(r['hausdorff_mean'], r['hausdorff_std'], 1)} | "
               f"{_n(r['pixel_acc'], 4)} | {_n(r['mean_iou'], 4)} | {_n(pp.get(r['name'] + ' +pp', {}).get('iou'))} |"
               for r in plain]
        md += ["", *task_table(task, rows), "", f"![{task}](overlays_{task}.png)", ""]
    md += fcn_chain_table(result.get("fcn"))
    md += ["## Floors (issue 20; reported, not timed tests)", "", "| floor | test set | model | score | against | |",
           "|---|---|---|---|---|---|"]
    for f in result["floors"]:
        score = f.get("iou") if "iou" in f else f.get("jaccard")
        against = f.get("floor") if "floor" in f else f.get("baseline")
        md.append(f"| {f['kind']} | {f['dataset']} | {f['model']} | {_n(score, 3)} | {_n(against, 3)} | "
                  f"{'PASS' if f['pass'] else 'FAIL'} |")
    if result.get("installed"):
        md += ["", f"Installed for `fcnkit models`, `serve` and `remove-bg --model NAME`: {len(result['installed'])} "
               "models."]
    return "\n".join(md) + "\n"

