"""`make demo` (`fcnkit demo`): the study's whole training chain, at CPU scale, on the embedded sample data.

1. `prep sample`: procedurally drawn sneakers on white backgrounds, and the same pasted onto real photos
   that scikit-image ships, as paired Caffe LMDBs (data/tiny/{white,composite}), with a preview PNG;
2. the tiny (1/16-width) FCN-32s -> 16s -> 8s on white, then FCN-8s on composites and fine-tuned,
   each stage through `solve` (real Caffe by default; `--engine torch`: the torch engine, Caffe's update
   rule in PyTorch), each starting from the previous stage's snapshot; the engine is recorded per stage;
3. a summary of validation pixel accuracy and mean IoU per stage (runs/demo/summary.json);
4. caffe2torch --verify of the trained FCN-8s nets, and an `evaluate` report (Caffe and PyTorch side by
   side, ExtractNet's classical baseline and post-processing, overlay grids) under runs/demo/report.

The tiny nets are not the paper's nets (see prototxt/tiny); this run checks that data, labels, crops and
the stage hand-off line up: white-background val mean IoU must reach 0.80.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from fcnkit import models
from fcnkit.caffe.solve import run_solver
from fcnkit.config.paths import DATA_DIR, DEMO_RUN_DIR
from fcnkit.config.stages import FINAL_COMPOSITE, FINAL_WHITE, STAGES, TINY_VARIANT
from fcnkit.convert.convert import convert
from fcnkit.convert.verify import verify
from fcnkit.evaluation.curves import plot_training
from fcnkit.evaluation.run import evaluate_dataset
from fcnkit.prep.sample import build_sample_dataset

WHITE_IOU_FLOOR = 0.80
DEFAULT_SIZE = 112  # the sample LMDBs' image side for the CPU demo (paper: 224)
# Seconds each part took in one `make demo` on 2 otherwise idle cores (README, "make demo"): the estimate
# printed up front, rescaled after every stage by this machine's measured pace.
ESTIMATE_S = {"data": 10, "fcn32s": 92, "fcn16s": 31, "fcn8s": 28, "fcn8s_composite": 15, "fcn8s_finetune": 35,
              "report": 45}


def ensure_sample(root: Path, size: int, seed: int, log=print) -> None:
    info = root / "dataset.json"
    if info.is_file():
        d = json.loads(info.read_text())
        if d.get("size") == size and d.get("seed") == seed:
            log(f"demo: reusing sample dataset {root} ({size}px)")
            return

    r = build_sample_dataset(root, size=size, seed=seed, force=True, quiet=not sys.stderr.isatty())
    log(f"demo: built sample dataset {root} in {r['seconds']:.1f}s; preview {r['preview']}")


def tiny(stage: str) -> models.ModelSpec:
    return models.get(f"{TINY_VARIANT.name}/{stage}")


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def train_chain(logs: Path, log=print, engine: str = "caffe") -> list[dict]:
    """Every stage of the tiny chain in `engine` (caffe: real Caffe), each from the previous stage's snapshot."""
    shutil.rmtree(Path(tiny(STAGES[0].name).snapshot_prefix).parent, ignore_errors=True)  # this run's weights only
    logs.mkdir(parents=True, exist_ok=True)
    summary = []
    spent = estimated = 0.0
    for k, st in enumerate(STAGES, 1):
        pace = spent / estimated if estimated else 1.0  # this machine against the measured reference
        left = pace * sum(ESTIMATE_S[s.name] for s in STAGES[k - 1:])
        log(f"demo: [{k}/{len(STAGES)}] {st.name} on {st.data}: {tiny(st.name).solver} "
            f"(~{ESTIMATE_S[st.name] * pace:.0f}s; ~{minutes(left + ESTIMATE_S['report'] * pace)} left in all)")
        with open(logs / f"{st.name}.log", "w") as log_file:
            def stage_log(line, log_file=log_file):
                log(line)
                print(line, file=log_file, flush=True)

            r = run_solver(tiny(st.name).solver, engine=engine, log=stage_log)
        summary.append({"stage": st.name, "data": st.data, "engine": engine, "iterations": r["iter"], "init": r["init"],
                        "seconds": round(r["seconds"], 1), **{k: r["val"].get(k) for k in ("pixel_acc", "mean_iou")}})
        log(f"demo: {st.name} ({st.data}, {engine} engine) done in {r['seconds']:.0f}s: val pixel_acc "
            f"{r['val']['pixel_acc']:.4f} mean_iou {r['val']['mean_iou']:.4f}")
        spent += r["seconds"]
        estimated += ESTIMATE_S[st.name]
    return summary


def convert_and_verify(stage: str, out: Path, log=print) -> bool:
    """caffe2torch of a trained tiny stage into `out`, verified blob by blob against Caffe."""
    spec = tiny(stage)
    model = spec.find_weights()
    out.parent.mkdir(parents=True, exist_ok=True)
    convert(spec.deploy, model, out, force=True)
    ok = verify(spec.deploy, model, out, quiet=True)
    log(f"demo: {model} -> {out}: caffe2torch --verify {'PASS' if ok else 'FAIL'}")
    return ok


def run_demo(size: int = DEFAULT_SIZE, seed: int = 0, out: Path = Path(DEMO_RUN_DIR), log=print,
             engine: str = "caffe") -> int:
    t0 = time.time()
    total = sum(ESTIMATE_S.values())
    log(f"demo: about {minutes(total)} on 2 idle cores (data {ESTIMATE_S['data']}s, the {len(STAGES)}-stage "
        f"chain {minutes(sum(ESTIMATE_S[st.name] for st in STAGES))} in real Caffe, conversion and report "
        f"{ESTIMATE_S['report']}s); each stage shows its own estimate, rescaled by the pace so far, and progress")
    data_root = Path(DATA_DIR) / TINY_VARIANT.name  # where prototxt/tiny nets read their LMDBs
    ensure_sample(data_root, size, seed, log)
    logs = out / "logs"
    summary = train_chain(logs, log, engine)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    white = next(s for s in summary if s["stage"] == FINAL_WHITE)["mean_iou"]
    log(f"\n{'stage':<16} {'data':<10} {'engine':<7} {'iters':>6} {'seconds':>8} {'pixel acc':>10} {'mean IoU':>9}")
    for s in summary:
        log(f"{s['stage']:<16} {s['data']:<10} {s['engine']:<7} {s['iterations']:>6} {s['seconds']:>8.1f} "
            f"{s['pixel_acc']:>10.4f} {s['mean_iou']:>9.4f}")
    # The trained nets go to PyTorch: convert each white/composite FCN-8s and verify it against Caffe.
    finals = {"white": FINAL_WHITE, "composite": FINAL_COMPOSITE}
    for stage in finals.values():
        if not convert_and_verify(stage, out / "torch" / stage, log):
            return 1
    # The report people look at: both backends side by side, the classical baseline, overlays.
    report = out / "report"
    plot_training([f"{st.name}={logs / (st.name + '.log')}" for st in STAGES], report / "training")
    for data, stage in finals.items():
        evaluate_dataset(data_root / data, out / "torch" / stage, backends=("caffe", "torch"), baseline=True,
                         postprocess="extractnet", report_dir=report / data, log=log)
        log(f"demo: report {report / data / 'report.md'}")
    verdict = "PASS" if white >= WHITE_IOU_FLOOR else "FAIL"
    log(f"\ndemo: white-background FCN-8s val mean IoU {white:.4f} (floor {WHITE_IOU_FLOOR}): {verdict}; "
        f"total {time.time() - t0:.0f}s; summary {out / 'summary.json'}")
    return 0 if verdict == "PASS" else 1
