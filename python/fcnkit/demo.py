"""`make demo`: the study's whole training chain, at CPU scale, on the embedded sample data.

1. `prep sample`: procedurally drawn sneakers on white backgrounds, and the same pasted onto real photos
   that scikit-image ships, as paired Caffe LMDBs (data/tiny/{white,composite}), with a preview PNG;
2. the tiny (1/16-width) FCN-32s -> 16s -> 8s on white, then FCN-8s on composites and fine-tuned,
   each stage with real Caffe through `solve`, each starting from the previous stage's snapshot;
3. a summary of validation pixel accuracy and mean IoU per stage (runs/demo/summary.json);
4. caffe2torch --verify of the trained FCN-8s nets, and an `evaluate` report (Caffe and PyTorch side by
   side, ExtractNet's classical baseline and post-processing, overlay grids) under runs/demo/report.

The tiny nets are not the paper's nets (see prototxt/tiny); this run checks that data, labels, crops and
the stage hand-off line up: white-background val mean IoU must reach 0.80.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from fcnkit.errors import cli_entry
from fcnkit.generate import TINY_VARIANT, solver_param
from fcnkit.solve import latest_snapshot, run_solver
from fcnkit.stages import STAGES

WHITE_IOU_FLOOR = 0.80


def ensure_sample(root: Path, size: int, seed: int) -> None:
    info = root / "dataset.json"
    if info.is_file():
        d = json.loads(info.read_text())
        if d.get("size") == size and d.get("seed") == seed:
            print(f"demo: reusing sample dataset {root} ({size}px)")
            return
    from fcnkit.prep.sample import build_sample_dataset  # noqa: PLC0415  (heavy: only when building)

    r = build_sample_dataset(root, size=size, seed=seed, force=True, quiet=not sys.stderr.isatty())
    print(f"demo: built sample dataset {root} in {r['seconds']:.1f}s; preview {r['preview']}")


@cli_entry("demo")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=112, help="image size of the sample LMDBs (paper: 224)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    a = p.parse_args(argv)
    t0 = time.time()
    data_root = Path("data") / TINY_VARIANT.name  # where prototxt/tiny nets read their LMDBs
    ensure_sample(data_root, a.size, a.seed)
    snapshots = Path(solver_param(STAGES[0], TINY_VARIANT).snapshot_prefix).parent
    shutil.rmtree(snapshots, ignore_errors=True)  # the chain must start from this run's own weights
    summary = []
    logs = a.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for st in STAGES:
        with open(logs / f"{st.name}.log", "w") as log_file:
            def log(line, log_file=log_file):
                print(line)
                print(line, file=log_file, flush=True)

            r = run_solver(TINY_VARIANT.path("solvers", f"{st.name}.prototxt"), log=log)
        summary.append({"stage": st.name, "data": st.data, "iterations": r["iter"], "init": r["init"],
                        "seconds": round(r["seconds"], 1), **{k: r["val"].get(k) for k in ("pixel_acc", "mean_iou")}})
        print(f"demo: {st.name} ({st.data}) done in {r['seconds']:.0f}s: val pixel_acc "
              f"{r['val']['pixel_acc']:.4f} mean_iou {r['val']['mean_iou']:.4f}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    white = next(s for s in summary if s["stage"] == "fcn8s")["mean_iou"]
    print(f"\n{'stage':<16} {'data':<10} {'iters':>6} {'pixel acc':>10} {'mean IoU':>9}")
    for s in summary:
        print(f"{s['stage']:<16} {s['data']:<10} {s['iterations']:>6} {s['pixel_acc']:>10.4f} {s['mean_iou']:>9.4f}")
    # The trained nets go to PyTorch: convert each white/composite FCN-8s and verify it against Caffe.
    from fcnkit.convert.cli import main as convert  # noqa: PLC0415  (imports torch)

    (a.out / "torch").mkdir(parents=True, exist_ok=True)
    for stage in ("fcn8s", "fcn8s_finetune"):
        st = next(s for s in STAGES if s.name == stage)
        snap = Path(solver_param(st, TINY_VARIANT).snapshot_prefix)
        model = latest_snapshot(snap)
        deploy = TINY_VARIANT.path("prototxt", st.net_dir, "deploy.prototxt")
        rc = convert([deploy, str(model), "-o", str(a.out / "torch" / stage), "--force", "--verify", "-q"])
        print(f"demo: {model} -> {a.out / 'torch' / stage}: caffe2torch --verify {'PASS' if rc == 0 else 'FAIL'}")
        if rc != 0:
            return 1
    # The report people look at: both backends side by side, the classical baseline, overlays.
    from fcnkit.evaluate import main as evaluate  # noqa: PLC0415

    report = a.out / "report"
    from fcnkit.plot_training import main as plot_training  # noqa: PLC0415

    plot_training([f"{st.name}={logs / (st.name + '.log')}" for st in STAGES] + ["-o", str(report / "training")])
    for data, stage in (("white", "fcn8s"), ("composite", "fcn8s_finetune")):
        rc = evaluate([str(data_root / data), "--model", str(a.out / "torch" / stage), "--backend", "both",
                       "--baseline", "--postprocess", "extractnet", "--report", str(report / data)])
        if rc != 0:
            return rc
        print(f"demo: report {report / data / 'report.md'}")
    verdict = "PASS" if white >= WHITE_IOU_FLOOR else "FAIL"
    print(f"\ndemo: white-background FCN-8s val mean IoU {white:.4f} (floor {WHITE_IOU_FLOOR}): {verdict}; "
          f"total {time.time() - t0:.0f}s; summary {a.out / 'summary.json'}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
