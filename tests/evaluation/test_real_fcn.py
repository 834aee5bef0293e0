"""The study's FCN chain in the real preset (`fcnkit.apps.real_fcn`), in real Caffe on a small subset of the real
shoes: the shoe tasks' folders become LMDB pairs, the tiny nets and solvers come from the generators under the
run's own root (the demo's data/tiny and weights/snapshots/tiny untouched), 32s -> 16s -> 8s on white hand over to
the composite FCN-8s and its fine-tuning, both final nets convert and verify, the Caffe and converted rows agree,
and --reuse / --fcn load keep what the run holds. Skipped where ../shared/realdata is absent, except under
CI=true where it must run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import ROOT
from fcnkit.apps.compare import score_methods
from fcnkit.apps.compare_real import RealPreset, prepare_task, run_real
from fcnkit.apps.real_fcn import RealChain
from fcnkit.config.realdata import REAL_SIZE, default_realdata
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import load_prototxt
from fcnkit.prep.lmdb_build import verify_lmdbs

REALDATA = default_realdata()
if REALDATA is None and os.environ.get("CI") != "true":
    pytest.skip("no ../shared/realdata on this machine (CI=true makes this an error)", allow_module_level=True)

pytestmark = pytest.mark.slow  # about a minute: real Caffe trains five stages and two nets convert

SCALE = 0.0002  # 10 / 4 / 4 / 2 / 4 iterations: the hand-offs, not the scores
PRESET = RealPreset("fcn-test", "a few real shoes", {"shoes": 40, "shoes_scenes": 40}, {"shoes": 6, "shoes_scenes": 6})


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """60 real shoe photos and 9 BSDS scenes (3 per split), linked from the shared copy in its layout."""
    root = tmp_path_factory.mktemp("realdata")
    shoes = root / "sneakers_white" / "photos"
    shoes.mkdir(parents=True)
    for p in sorted((REALDATA / "sneakers_white" / "photos").iterdir())[:60]:
        (shoes / p.name).symlink_to(p)
    for split in ("train", "val", "test"):
        (root / "scenes_bsds500" / split).mkdir(parents=True)
        for p in sorted((REALDATA / "scenes_bsds500" / split).iterdir())[:3]:
            (root / "scenes_bsds500" / split / p.name).symlink_to(p)
    return root


def _demo_state() -> dict:
    """What the demo's chain owns on disk (must not change)."""
    return {str(p): p.stat().st_mtime_ns for d in ("data/tiny", "weights/snapshots/tiny") if (ROOT / d).exists()
            for p in (ROOT / d).rglob("*")}


@pytest.fixture(scope="module")
def chain(subset, tmp_path_factory, caffe):
    out = tmp_path_factory.mktemp("out")
    before = _demo_state()
    tasks = {t: prepare_task(t, subset, out, PRESET, 0, log=lambda *a: None) for t in ("shoes", "shoes_scenes")}
    lines = []
    c = RealChain(out / "fcn", SCALE, REAL_SIZE, 48, log=lines.append)
    methods = {t: c.methods(t, tasks[t][0], lambda: tasks["shoes"][0]) for t in tasks}
    assert _demo_state() == before
    return c, tasks, methods, lines, out


def test_lmdbs_nets_and_snapshots_are_the_runs_own(chain):
    c, tasks, _, _, out = chain
    for data, task in (("white", "shoes"), ("composite", "shoes_scenes")):
        counts = verify_lmdbs(c.lmdb_root(data), quiet=True)
        info = tasks[task][2]
        assert counts["train"]["count"] == info["train_images"] and counts["val"]["count"] == info["val_images"]
        assert json.loads((c.lmdb_root(data) / "manifest.json").read_text())["size"] == REAL_SIZE
    for stage, net_dir in (("fcn8s", "fcn8s"), ("fcn8s_finetune", "fcn8s_composite")):
        # the nets come from the generators: the deploy net is the committed tiny one, byte for byte
        assert c.deploy(stage).read_text() == (ROOT / "prototxt" / "tiny" / net_dir / "deploy.prototxt").read_text()
        sp = load_prototxt(c.solvers[stage], "solver", "SolverParameter")
        assert sp.snapshot_prefix.startswith(str(out / "fcn")) and sp.net.startswith(str(out / "fcn"))
        train = load_prototxt(sp.net, "net")
        sources = [lay.data_param.source for lay in train.layer if lay.type == "Data"]
        assert sources and all(s.startswith(str(c.lmdb_root("white" if stage == "fcn8s" else "composite")))
                               for s in sources)


def test_stages_hand_off_in_real_caffe(chain):
    c, *_ = chain
    by = {s["stage"]: s for s in c.summary}
    assert list(by) == ["fcn32s", "fcn16s", "fcn8s", "fcn8s_composite", "fcn8s_finetune"]
    assert [by[s]["iterations"] for s in by] == [10, 4, 4, 2, 4]
    assert by["fcn32s"]["init"] == "scratch" and all(s["engine"] == "caffe" for s in by.values())
    for stage, prev in (("fcn16s", "fcn32s"), ("fcn8s", "fcn16s"), ("fcn8s_composite", "fcn8s"),
                        ("fcn8s_finetune", "fcn8s_composite")):
        assert by[stage]["init"] == f"{c.prefix(prev)}_iter_{by[prev]['iterations']}.caffemodel"
        assert 0 <= by[stage]["mean_iou"] <= 1
    assert all(info["verified"] for info in c.converted.values()) and len(c.converted) == 2


def test_caffe_and_converted_rows_agree(chain):
    _, tasks, methods, _, _ = chain
    for task, final in (("shoes", "shoes/fcn8s"), ("shoes_scenes", "shoes_scenes/fcn8s_finetune")):
        names = [m.name for m in methods[task]]
        assert names[-2:] == [f"{final} (Caffe)", f"{final} (converted)"]
        rows = []
        score_methods(methods[task][-2:], tasks[task][1], task, rows, log=lambda *a: None)
        caffe_row, torch_row = rows[0], rows[2]
        assert caffe_row["framework"] == "caffe" and torch_row["framework"] == "torch"
        assert caffe_row["params"] == torch_row["params"] > 0 and caffe_row["train_seconds"] > 0
        np.testing.assert_allclose(caffe_row["pixel_acc"], torch_row["pixel_acc"], atol=2e-3)
    # the composite rows' seconds include the white stages they start from
    assert methods["shoes_scenes"][0].train_seconds > methods["shoes"][-1].train_seconds


def test_reuse_keeps_and_load_refuses(chain, subset):
    c, tasks, _, _, out = chain
    lines = []
    again = RealChain(out / "fcn", SCALE, REAL_SIZE, 48, reuse=True, log=lines.append)
    again.train("white", tasks["shoes"][0])
    assert sum("keeping" in ln for ln in lines) == 3 and not any("iterations, real Caffe" in ln for ln in lines)
    assert again.summary == c.summary
    with pytest.raises(UserError, match="--fcn load"):
        RealChain(out / "other", SCALE, REAL_SIZE, 48, mode="load").train("white", tasks["shoes"][0])
    with pytest.raises(UserError, match="--fcn 'fast'"):
        run_real("real-quick", out / "x", data=subset, fcn="fast")
