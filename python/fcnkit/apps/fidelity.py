"""Fidelity report: every number and procedure the paper states -> where it lives -> expected -> actual.

The expected values are transcribed here from the paper's text (each with its quote), independently of
`fcnkit.config`, and the actual values are read from the committed files with protobuf (and from the
defaults the data-preparation functions really use). A wrong number in a generator or in the config
therefore shows up here as a FAIL instead of being copied into both sides.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path

from fcnkit import models
from fcnkit.config.paper import SILENT_CHOICES
from fcnkit.io.caffe_schema import load_prototxt
from fcnkit.prep.composite import CompositeOptions
from fcnkit.prep.fetch import DATASETS
from fcnkit.prep.ingest import ingest_folder
from fcnkit.prep.lmdb_build import build_lmdbs


@dataclass
class Row:
    claim: str
    where: str
    expected: object
    actual: object

    @property
    def ok(self) -> bool:
        e, a = self.expected, self.actual
        if isinstance(e, float) and isinstance(a, int | float):
            return math.isclose(e, a, rel_tol=1e-6)
        return e == a


class Files:
    """Parsed prototxts under a project root, cached."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, object] = {}

    def solver(self, name: str):
        return self._get(f"solvers/{name}.prototxt", "SolverParameter")

    def net(self, rel: str):
        return self._get(rel, "NetParameter")

    def _get(self, rel: str, kind: str):
        if rel not in self._cache:
            self._cache[rel] = load_prototxt(self.root / rel, "prototxt", kind)
        return self._cache[rel]

    def layer(self, rel: str, name: str):
        for lay in self.net(rel).layer:
            if lay.name == name:
                return lay
        return None


def rows(root: Path) -> list[Row]:
    f = Files(root)
    out: list[Row] = []

    def add(claim, where, expected, actual):
        out.append(Row(claim, where, expected, actual))

    # -- schedule: "The 32s network was trained with 50,000 iterations using a fixed learning rate of 1e-8
    #    decreasing down to 1e-10 after the first 20,000 iterations, a momentum of 0.99, and a batch size of 15."
    s32 = f.solver("fcn32s")
    add("32s iterations: 50,000", "solvers/fcn32s.prototxt:max_iter", 50000, s32.max_iter)
    add("32s learning rate 1e-8", "solvers/fcn32s.prototxt:base_lr", 1e-8, s32.base_lr)
    add("32s lr 1e-10 after 20,000", "solvers/fcn32s.prototxt:lr_policy/stepsize/gamma",
        (20000, 1e-10), (s32.stepsize if s32.lr_policy == "step" else None,
                         float(f"{s32.base_lr * s32.gamma:.3g}")))
    # "Both the 16s and 8s networks were trained using 20,000 iterations using a 1e-10 learning rate and 0.99 momentum"
    # "...after only 10,000 iterations with a learning rate of 1e-10 ... another 20,000 iterations at 1e-10"
    for name, iters in (("fcn16s", 20000), ("fcn8s", 20000), ("fcn8s_composite", 10000), ("fcn8s_finetune", 20000)):
        s = f.solver(name)
        add(f"{name} iterations: {iters:,}", f"solvers/{name}.prototxt:max_iter", iters, s.max_iter)
        add(f"{name} learning rate 1e-10", f"solvers/{name}.prototxt:base_lr", 1e-10, s.base_lr)
        add(f"{name} fixed rate", f"solvers/{name}.prototxt:lr_policy", "fixed", s.lr_policy)
    for name in ("fcn32s", "fcn16s", "fcn8s", "fcn8s_composite", "fcn8s_finetune"):
        s = f.solver(name)
        add(f"{name} momentum 0.99", f"solvers/{name}.prototxt:momentum", 0.99, s.momentum)
        lay = f.layer(s.net, "data")
        add(f"{name} batch size 15", f"{s.net}:data.batch_size", 15, lay.data_param.batch_size if lay else None)
        add(f"{name} solver type SGD", f"solvers/{name}.prototxt:type", "SGD", s.type)

    # -- nets: "32 stride", "16 stride", "8 stride" networks based on VGG-16
    for net, n in (("fcn32s", 32), ("fcn16s", 16), ("fcn8s", 8)):
        rel = f"prototxt/{net}/deploy.prototxt"
        ups = [lay.name for lay in f.net(rel).layer if lay.type == "Deconvolution"]
        strides = [f.layer(rel, u).convolution_param.stride[0] for u in ups] or [0]
        add(f"{net}: final upsampling stride {n}", f"{rel}:{ups[-1] if ups else '?'}.stride", n, strides[-1])
        add(f"{net}: upsampling undoes VGG-16's 5 poolings (x32)", f"{rel}:{'*'.join(ups)}.stride",
            2 ** sum(1 for lay in f.net(rel).layer if lay.type == "Pooling"), math.prod(strides))
    add("8s fuses pool4 and pool3 skips", "prototxt/fcn8s/deploy.prototxt:score_pool4,score_pool3", True,
        bool(f.layer("prototxt/fcn8s/deploy.prototxt", "score_pool4")
             and f.layer("prototxt/fcn8s/deploy.prototxt", "score_pool3")))
    add("16s fuses the pool4 skip", "prototxt/fcn16s/deploy.prototxt:score_pool4", True,
        bool(f.layer("prototxt/fcn16s/deploy.prototxt", "score_pool4")))
    add("2 classes: background 0, sneaker 1", "prototxt/fcn8s/deploy.prototxt:score_fr.num_output", 2,
        f.layer("prototxt/fcn8s/deploy.prototxt", "score_fr").convolution_param.num_output)

    # -- initialisation chain: each stage from the previous one's weights (snapshot prefixes)
    chain = (("fcn16s", "fcn32s"), ("fcn8s", "fcn16s"), ("fcn8s_composite", "fcn8s"),
             ("fcn8s_finetune", "fcn8s_composite"))

    for name, prev in chain:
        add(f"{name} starts from {prev}", f"fcnkit.models:{name}.init", prev, models.get(name).init)
    add("fcn32s starts from VGG-16", "fcnkit.models:fcn32s.init", "vgg16", models.get("fcn32s").init)

    # -- data: 224x224 images; white-background data for 32s/16s/8s, VOC composites afterwards
    for name, data in (("fcn32s", "white"), ("fcn16s", "white"), ("fcn8s", "white"),
                       ("fcn8s_composite", "composite"), ("fcn8s_finetune", "composite")):
        s = f.solver(name)
        lay = f.layer(s.net, "data")
        src = lay.data_param.source if lay else ""
        add(f"{name} trains on {data} data", f"{s.net}:data.source", data, src.split("/")[-2] if src else None)

    # -- data preparation: "4,500 sneakers ... each with a size of 224x224"; "paste only the shoes at random
    #    scales and positions on random images from the VOC Pascal 2012 dataset"

    add("images are 224x224", "fcnkit.prep.lmdb_build:build_lmdbs(size)", 224, default_of(build_lmdbs, "size"))
    add("images are 224x224 (own photos)", "fcnkit.prep.ingest:ingest_folder(size)", 224,
        default_of(ingest_folder, "size"))
    add("4,500 images (composites made per ingest)", "fcnkit.prep.ingest:ingest_folder(n_composite)", 4500,
        default_of(ingest_folder, "n_composite"))
    lo, hi = CompositeOptions.scale_min, CompositeOptions.scale_max
    add(f"composites: random scale ({lo}..{hi} of the frame)", "fcnkit.prep.composite:CompositeOptions.scale_*",
        True, 0 < lo < hi)

    add("backgrounds: PASCAL VOC 2012", "python/fcnkit/prep/fetch.py:DATASETS['voc2012'].url", True,
        "voc2012" in DATASETS.get("voc2012").url.lower() if "voc2012" in DATASETS else False)
    return out


def default_of(fn, param: str):
    """The default value of a library function's parameter (what every caller that omits it gets)."""
    return inspect.signature(fn).parameters[param].default


def silent_choices() -> list[tuple[str, object, str]]:
    return [(k, v, src) for k, (v, src) in SILENT_CHOICES.items()]


def fmt(v) -> str:
    """float32 fields read back as 9.99999993922529e-09: show them as the prototxt spells them."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt(x) for x in v) + ")"
    return str(v)


def report(root: Path) -> tuple[str, bool]:
    rs = rows(root)
    w = max(len(r.claim) for r in rs)
    ww = max(len(r.where) for r in rs)
    lines = [f"{'paper states':<{w}}  {'where':<{ww}}  {'expected':<14} {'actual':<14} result", "-" * (w + ww + 42)]
    for r in rs:
        lines.append(f"{r.claim:<{w}}  {r.where:<{ww}}  {fmt(r.expected):<14} {fmt(r.actual):<14} "
                     f"{'PASS' if r.ok else 'FAIL'}")
    bad = sum(not r.ok for r in rs)
    lines += ["", f"{len(rs) - bad}/{len(rs)} PASS", "", "Where the paper is silent:"]
    lines += [f"  {k}: {v}  -- {src}" for k, v, src in silent_choices()]
    return "\n".join(lines), bad == 0
