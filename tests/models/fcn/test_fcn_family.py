"""The FCN family in the model registry: one entry per stage and variant, pointing at the committed files,
with the paper's chain as `init` — the facts `solve`, `fidelity`, inference and the demo read."""

from __future__ import annotations

import pytest
from conftest import ROOT
from fcnkit import models
from fcnkit.config.paper import VGG_MEAN_BGR
from fcnkit.config.stages import STAGES, VARIANTS
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import load_prototxt


def test_every_stage_and_variant_is_registered_with_its_committed_files():
    reg = models.registered()
    for v in VARIANTS:
        for st in STAGES:
            name = f"{v.name}/{st.name}" if v.name else st.name
            spec = reg[name]
            assert spec.family == "fcn" and spec.framework == "caffe" and spec.output == "softmax2"
            assert spec.preprocessing.mean == VGG_MEAN_BGR and spec.preprocessing.channel_order == "BGR"
            solver = load_prototxt(ROOT / spec.solver, "solver", "SolverParameter")
            assert solver.snapshot_prefix == spec.snapshot_prefix
            # the deploy net sits beside the train net the solver trains
            assert (ROOT / spec.deploy).parent == (ROOT / solver.net).parent
            deploy = load_prototxt(ROOT / spec.deploy)
            assert any(spec.output_blob in lay.top for lay in deploy.layer)
            assert models.by_snapshot_prefix(solver.snapshot_prefix) is spec


def test_chain_of_initial_weights():
    assert models.get("fcn32s").init == "vgg16"
    assert models.get("tiny/fcn32s").init == "scratch"  # no ImageNet weights at 1/16 width
    for a in STAGES[1:]:
        assert models.get(a.name).init == a.init_from
        assert models.get(f"tiny/{a.name}").init == f"tiny/{a.init_from}"
    assert models.get("fcn8s_finetune").deploy == models.get("fcn8s_composite").deploy  # fine-tuning reuses nets


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'fcn4s'"):
        models.get("fcn4s")


def test_solve_takes_the_chain_from_the_registry(tmp_path, monkeypatch):
    from fcnkit.caffe.loop import resolve_init

    monkeypatch.chdir(tmp_path)
    sp = load_prototxt(ROOT / "solvers/tiny/fcn16s.prototxt", "solver", "SolverParameter")
    with pytest.raises(UserError, match=r"train the previous stage first: `solve solvers/tiny/fcn32s.prototxt`"):
        resolve_init(sp)
    snaps = tmp_path / "weights/snapshots/tiny"
    snaps.mkdir(parents=True)
    whole = b"\x0a\x05tiny!" + b"\xa2\x06\x04\x0a\x02ab"  # NetParameter name + one layer {name}
    for it in (4, 12, 8):
        (snaps / f"fcn32s_iter_{it}.caffemodel").write_bytes(whole)
    (snaps / "fcn32s_iter_16.caffemodel").write_bytes(whole[:-3])  # cut short by a kill: never picked
    assert resolve_init(sp) == ("snapshot", snaps.relative_to(tmp_path) / "fcn32s_iter_12.caffemodel")
    first = load_prototxt(ROOT / "solvers/tiny/fcn32s.prototxt", "solver", "SolverParameter")
    assert resolve_init(first) == ("none", None)  # tiny FCN-32s trains from scratch
    paper = load_prototxt(ROOT / "solvers/fcn32s.prototxt", "solver", "SolverParameter")
    with pytest.raises(UserError, match="fetch-vgg16"):
        resolve_init(paper)  # no VGG-16 weights in this directory


def test_models_command_lists_them(capsys):
    from fcnkit.cli.models import main

    assert main(["--family", "fcn"]) == 0
    out = capsys.readouterr().out
    assert "tiny/fcn8s_finetune  (fcn, caffe)" in out and "10 models" in out
    assert "not trained yet: `solve solvers/fcn32s.prototxt`" in out
