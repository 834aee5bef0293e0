"""The study's FCN chain in the real preset (`compare --preset real`): real Caffe on the real shoes.

The tiny (1/16-width) FCN-32s -> 16s -> 8s of `make demo` train on the `shoes` task's photos (real shoes on
white, near-white masks), then FCN-8s on the `shoes_scenes` task's composites (the same train shoes on
BSDS500 train+val scenes) and is fine-tuned there: each stage in real Caffe through `solve`'s `run_solver`,
from the previous stage's snapshot, as the demo's chain does. Nothing is read from or written to the demo's
data/tiny or weights/snapshots/tiny: the run has a root of its own, OUT/fcn, laid out like the project:

    data/tiny/{white,composite}/     the tasks' train/val folders as Caffe LMDB pairs (`prep lmdb`'s builder)
    prototxt/tiny/, solvers/tiny/    the committed tiny nets and solvers from the same generators
                                     (`caffe.generate.write_variant`): their paths under OUT/fcn, the
                                     preset's iterations (`RealChain.iter_scale` times the stage table's)
    weights/snapshots/tiny/          the snapshots; logs/<stage>.log the solver's lines; summary.json per stage
    torch/{fcn8s,fcn8s_finetune}/    caffe2torch of the white and the final FCN-8s, verified blob by blob

Rows (scored by `compare` beside the PyTorch models): on white FCN-32s, 16s and 8s in Caffe, on the composites the
fine-tuned FCN-8s in Caffe, and each final FCN-8s again as its converted PyTorch copy. Test photos are run at the
LMDBs' side (`max_side`), the scale the nets were trained at; the masks are scored at the photo's own size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fcnkit import inference
from fcnkit.apps.compare import Method, _caffe_params, _mask_fn, _write_json
from fcnkit.caffe.generate import solver_param, write_variant
from fcnkit.caffe.solve import run_solver
from fcnkit.config.paths import DATA_DIR, SNAPSHOT_DIR
from fcnkit.config.stages import FINAL_COMPOSITE, FINAL_WHITE, STAGE_BY_NAME, STAGES, TINY_VARIANT, Stage
from fcnkit.convert.convert import convert
from fcnkit.convert.verify import verify
from fcnkit.errors import UserError
from fcnkit.models.registry import latest_snapshot
from fcnkit.prep import common
from fcnkit.prep.lmdb_build import LMDB_MANIFEST, build_lmdbs

TASK_DATA = {"shoes": "white", "shoes_scenes": "composite"}  # the real task whose folders feed each LMDB set
FINAL = {"white": FINAL_WHITE, "composite": FINAL_COMPOSITE}  # the stage converted and scored on both backends
# The nets scored on each test set: the white chain's three strides (the FCN paper's table), and on the composites
# the study's final net (the composite FCN-8s before its fine-tuning shows in the validation table of the stages).
SCORED = {"white": ("fcn32s", "fcn16s", "fcn8s"), "composite": (FINAL_COMPOSITE,)}
FCN_MODES = ("auto", "load", "train", "skip")  # compare --fcn


@dataclass
class RealChain:
    """The tiny FCN chain of one real-preset run, under `root` (OUT/fcn)."""

    root: Path
    iter_scale: float            # each stage runs round(paper iterations x this) iterations
    size: int                    # the LMDBs' image side (and the side test photos are run at)
    val_images: int              # images per validation pass (at most; each LMDB's val count decides)
    seed: int = 0
    mode: str = "auto"           # auto / train: train what --reuse cannot keep; load: only what OUT holds
    reuse: bool = False
    precision: str = "fp32"      # the converted copy's arithmetic when scoring
    log: Callable = print

    def __post_init__(self):
        if self.mode not in FCN_MODES or self.mode == "skip":
            raise UserError(f"--fcn {self.mode!r}: choose auto, load or train (skip: no FCN chain)")
        self.root = Path(self.root).absolute()
        self.variant = dataclasses.replace(
            TINY_VARIANT, iter_scale=self.iter_scale, val_images=self.val_images,
            description=f"{TINY_VARIANT.description}; the real preset's schedule")
        self.solvers: dict[str, Path] | None = None
        summary = self.root / "summary.json"
        self.summary: list[dict] = json.loads(summary.read_text()) if summary.is_file() else []
        self.converted: dict[str, dict] = {}
        self.ready: set[str] = set()  # the data sets whose stages this run has trained or kept

    # -------------------------------------------------------------------------------------------- paths
    def lmdb_root(self, data: str) -> Path:
        return self.root / DATA_DIR / self.variant.name / data

    def prefix(self, stage: str) -> Path:
        return self.root / self.variant.path(SNAPSHOT_DIR, stage)

    def deploy(self, stage: str) -> Path:
        return self.root / self.variant.path("prototxt", STAGE_BY_NAME[stage].net_dir, "deploy.prototxt")

    def iterations(self, st: Stage) -> int:
        return solver_param(st, self.variant).max_iter  # the generator's count, not a second formula

    # --------------------------------------------------------------------------------------------- data
    def build_data(self, data: str, folders: dict[str, Path]) -> dict:
        """The LMDB pair of `data` from a task's train/val image folders (images + masks/), built once per
        content: kept while its manifest lists the same photos at the same size and seed."""
        pairs = {s: common.pairs_from_folders(folders[s], folders[s] / "masks") for s in ("train", "val")}
        out = self.lmdb_root(data)
        man = out / LMDB_MANIFEST
        if man.is_file():
            m = json.loads(man.read_text())
            if (m.get("size"), m.get("seed")) == (self.size, self.seed) and all(
                    sorted(m.get("names", {}).get(s, [])) == sorted(p.name for p in pairs[s]) for s in pairs):
                return m
        m = build_lmdbs(pairs["train"], out, size=self.size, seed=self.seed, val_pairs=pairs["val"], workers=1,
                        quiet=True, sources=[str(folders["train"]), str(folders["val"])])
        self.log(f"compare: fcn: {data} LMDBs {out} ({m['splits']['train']['count']} train, "
                 f"{m['splits']['val']['count']} val, {self.size} px, {m['seconds']:.0f}s)")
        return m

    # ----------------------------------------------------------------------------------------- training
    def _record(self, stage: str) -> dict | None:
        return next((s for s in self.summary if s["stage"] == stage), None)

    def _kept(self, st: Stage, data_key: str) -> bool:
        """A stage this run may keep: trained before (--reuse, or --fcn load) on the same data and schedule,
        its final snapshot on disk."""
        rec = self._record(st.name)
        if rec is None or self.mode == "train" or not (self.reuse or self.mode == "load"):
            return False
        done = Path(f"{self.prefix(st.name)}_iter_{rec['iterations']}.caffemodel")
        return rec.get("data_key") == data_key and rec["iterations"] == self.iterations(st) and done.is_file()

    def train(self, data: str, folders: dict[str, Path]) -> None:
        """Every stage on `data` (white: 32s, 16s, 8s; composite: 8s and its fine-tuning), each kept or trained."""
        manifest = self.build_data(data, folders)
        data_key = hashlib.sha1(json.dumps([manifest["size"], manifest["seed"], manifest["names"]],
                                           sort_keys=True).encode()).hexdigest()[:16]
        if self.solvers is None:
            self.solvers = write_variant(self.variant, self.root)
        n_val = min(self.val_images, manifest["splits"]["val"]["count"])
        for st in (s for s in STAGES if s.data == data):
            if self._kept(st, data_key):
                self.log(f"compare: fcn: {st.name}: keeping {self.prefix(st.name)}_iter_"
                         f"{self._record(st.name)['iterations']}.caffemodel (--reuse)")
                continue
            if self.mode == "load":
                raise UserError(f"--fcn load: {self.root} holds no finished {st.name} trained on these photos; "
                                "train the chain (--fcn auto, or --reuse to keep what it holds)")
            self._train_stage(st, n_val, data_key)
        self.ready.add(data)

    def _train_stage(self, st: Stage, n_val: int, data_key: str) -> None:
        init = None
        if st.init_from in STAGE_BY_NAME:  # the tiny trunk starts from scratch (no ImageNet weights at 1/16 width)
            init = latest_snapshot(self.prefix(st.init_from))
            if init is None:
                raise UserError(f"no snapshot {self.prefix(st.init_from)}_iter_*.caffemodel for {st.name} to "
                                "start from")
        prefix = self.prefix(st.name)
        for old in prefix.parent.glob(f"{prefix.name}_iter_*"):
            old.unlink()
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log(f"compare: fcn: {st.name} on {st.data} ({self.iterations(st)} iterations, real Caffe)")
        with open(logs / f"{st.name}.log", "w") as log_file:
            def stage_log(line, log_file=log_file):
                self.log(line)
                print(line, file=log_file, flush=True)

            r = run_solver(self.solvers[st.name], engine="caffe", weights=str(init) if init else None,
                           val_iter=n_val, log=stage_log)
        later = {s.name for s in STAGES[STAGES.index(st):]}  # this stage and everything trained from it
        self.summary = [s for s in self.summary if s["stage"] not in later]
        self.summary.append({"stage": st.name, "data": st.data, "engine": "caffe", "iterations": r["iter"],
                             "init": str(init) if init else "scratch", "seconds": round(r["seconds"], 1),
                             "data_key": data_key, **{k: r["val"].get(k) for k in ("pixel_acc", "mean_iou")}})
        self.summary.sort(key=lambda s: [x.name for x in STAGES].index(s["stage"]))
        _write_json(self.root / "summary.json", self.summary)
        self.log(f"compare: fcn: {st.name} done in {r['seconds']:.0f}s: val pixel_acc {r['val']['pixel_acc']:.4f} "
                 f"mean_iou {r['val']['mean_iou']:.4f}")

    # -------------------------------------------------------------------------------------- conversion
    def convert_final(self, data: str) -> Path:
        """caffe2torch of `data`'s final FCN-8s into OUT/fcn/torch/<stage>, verified against Caffe."""
        stage = FINAL[data]
        model = latest_snapshot(self.prefix(stage))
        out = self.root / "torch" / stage
        out.parent.mkdir(parents=True, exist_ok=True)
        val = self.deploy(stage).with_name("val.prototxt")  # records the data layer's mean in conversion.json
        convert(self.deploy(stage), model, out, force=True, preprocess_from=val, check_export=False)
        ok = verify(self.deploy(stage), model, out, quiet=True)
        self.converted[stage] = {"caffemodel": str(model), "folder": str(out), "verified": bool(ok)}
        self.log(f"compare: fcn: {model} -> {out}: caffe2torch --verify {'PASS' if ok else 'FAIL'}")
        return out

    # ------------------------------------------------------------------------------------------ methods
    def methods(self, task: str, folders: dict[str, Path], white_folders: Callable[[], dict[str, Path]]) -> list:
        """The FCN rows of real task `task` (trained first, or kept): the `SCORED` stages of its data in Caffe,
        the final FCN-8s also as the converted copy. The composite stages start from this run's white FCN-8s: in a run
        of `shoes_scenes` without `shoes`, the white stages are trained (or kept) first, on `white_folders()`.
        A row's training seconds are those of its stage and every stage before it."""
        data = TASK_DATA[task]
        if data == "composite" and "white" not in self.ready:
            self.train("white", white_folders())
        self.train(data, folders)
        folder = self.convert_final(data)
        out, seconds = [], 0.0
        last = max(i for i, s in enumerate(STAGES) if s.data == data)
        for st in STAGES[:last + 1]:
            seconds += (self._record(st.name) or {}).get("seconds", 0.0)
            if st.name not in SCORED[data]:
                continue  # e.g. the white stages the composite ones start from: their seconds count, not their rows
            model = latest_snapshot(self.prefix(st.name))
            caffe = inference.load(None, backend="caffe", deploy=self.deploy(st.name), caffemodel=model,
                                   max_side=self.size)
            name = f"{task}/{st.name}"
            out.append(Method(f"{name} (Caffe)", "fcn", "caffe", "masks", _caffe_params(model), seconds,
                              _mask_fn(caffe)))
        torch_p = inference.load(folder, backend="torch", precision=self.precision, max_side=self.size)
        final = out[-1]
        out.append(Method(final.name.replace("(Caffe)", "(converted)"), "fcn", "torch", "masks", final.params,
                          final.train_seconds, _mask_fn(torch_p)))
        return out

    def info(self) -> dict:
        return {"root": str(self.root), "size": self.size, "iter_scale": self.iter_scale,
                "stages": [{k: v for k, v in s.items() if k != "data_key"} for s in self.summary],
                "converted": self.converted}

