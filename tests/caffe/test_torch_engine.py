"""`solve --engine torch` against real Caffe (CPU), from identical weights on identical mini-batches.

Relative differences are measured per parameter blob, against the largest magnitude of Caffe's blob.
Dropout is off in these nets (Caffe's Bernoulli draws cannot be reproduced). Figures are printed (-s).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess

import numpy as np
import pytest
from conftest import ROOT, VENV_BIN, one_error_line, run_cli, sigint_default
from engine_parity import (
    compare_snapshots,
    copy_workspace,
    engines,
    free_running,
    lockstep,
    rel,
    snapshot_both,
    workspace,
)
from fcnkit.evaluation.curves import parse_log
from fcnkit.io.caffe_schema import read_caffemodel, read_solverstate

pytestmark = pytest.mark.caffe

TOL = 1e-5
# Gradients are sums over every pixel of the batch; summed in another order (oneDNN vs im2col + OpenBLAS)
# a blob whose gradient largely cancels (a bias, late in training) differs by more than its weights do.
GRAD_TOL = 1e-4
SGD_PAPER = "type: \"SGD\"\nmomentum: 0.99\nweight_decay: 0.0005\n"
ADAM_TINY = "type: \"Adam\"\nbase_lr: 0.001\nlr_policy: \"fixed\"\nmomentum: 0.9\nmomentum2: 0.999\n" \
            "weight_decay: 0.0005\n"


def max_flip_iterations(iters: int) -> int:
    """Lock step compares gradients at iterations where every ReLU gate agrees; a gate may flip where a
    pre-activation is within rounding of zero (engine_parity.lockstep), rarely: at most 1 iteration in 5."""
    return iters // 5


def net_text(name: str) -> str:
    return (ROOT / "prototxt" / name / "train.prototxt").read_text()


def small_net(caffe) -> str:
    """Layers the FCNs do not have: BatchNorm (batch statistics, moving averages), Scale with bias, a
    param shared by two layers (`param { name }`), lr_mult/decay_mult, InnerProduct-free FCN tail."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Data(source="x", backend=P.Data.LMDB, batch_size=1, transform_param=dict(mean_value=[60, 60, 60],
                                                                                       scale=0.02))
    n.label = L.Data(source="y", backend=P.Data.LMDB, batch_size=1)
    n.conv1 = L.Convolution(n.data, num_output=6, kernel_size=3, pad=1, weight_filler=dict(type="msra"),
                            bias_term=False)  # a bias before BatchNorm has no gradient at all
    n.bn1 = L.BatchNorm(n.conv1, in_place=True)
    n.scale1 = L.Scale(n.bn1, bias_term=True, in_place=True)
    n.relu1 = L.ReLU(n.scale1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    shared = dict(name="shared_w", lr_mult=1, decay_mult=1)
    n.conv2a = L.Convolution(n.pool1, num_output=6, kernel_size=3, pad=1, weight_filler=dict(type="xavier"),
                             param=[shared, dict(lr_mult=2, decay_mult=0)])
    n.relu2 = L.ReLU(n.conv2a, in_place=True)
    n.conv2b = L.Convolution(n.relu2, num_output=6, kernel_size=3, pad=1, weight_filler=dict(type="xavier"),
                             param=[shared, dict(lr_mult=2, decay_mult=0)])
    n.score = L.Convolution(n.conv2b, num_output=2, kernel_size=1, weight_filler=dict(type="gaussian", std=0.1))
    n.up = L.Deconvolution(n.score, convolution_param=dict(num_output=2, kernel_size=4, stride=2, group=2,
                                                           bias_term=False, weight_filler=dict(type="bilinear")),
                           param=[dict(lr_mult=0)])
    n.upc = L.Crop(n.up, n.data, axis=2, offset=1)
    n.loss = L.SoftmaxWithLoss(n.upc, n.label, loss_param=dict(normalize=False, ignore_label=255))
    n.acc = L.Accuracy(n.upc, n.label, accuracy_param=dict(ignore_label=255))
    return str(n.to_proto())


def direct_engines(caffe, root):
    """Caffe's solver built directly (no pre-flight child process: the update-rule matrix is large)."""
    from fcnkit.caffe.torch_engine import prepare_torch_solver

    solver = caffe.get_solver("solver.prototxt")
    solver.net.copy_from("init.caffemodel")
    eng, _, _ = prepare_torch_solver("solver.prototxt", weights="init.caffemodel", log=lambda *a: None)
    return solver, eng


UPDATE_RULES = {
    "sgd-fixed": 'type: "SGD"\nbase_lr: 1e-4\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.005',
    "sgd-step": 'base_lr: 1e-4\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\nmomentum: 0.9',
    "sgd-exp": 'base_lr: 1e-4\nlr_policy: "exp"\ngamma: 0.8',
    "sgd-inv": 'base_lr: 1e-4\nlr_policy: "inv"\ngamma: 0.3\npower: 0.75',
    "sgd-multistep": 'base_lr: 1e-4\nlr_policy: "multistep"\ngamma: 0.3\nstepvalue: 1\nstepvalue: 2\nstepvalue: 4',
    "sgd-poly": 'base_lr: 1e-4\nlr_policy: "poly"\npower: 2',
    "sgd-sigmoid": 'base_lr: 1e-4\nlr_policy: "sigmoid"\ngamma: -1\nstepsize: 3',
    "sgd-l1-clip": 'base_lr: 1e-4\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.01\n'
                   'regularization_type: "L1"\nclip_gradients: 2000',
    "sgd-iter-size": 'base_lr: 1e-4\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.005\niter_size: 2',
    "nesterov": 'type: "Nesterov"\nbase_lr: 1e-4\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.005',
    "adagrad": 'type: "AdaGrad"\nbase_lr: 0.01\nlr_policy: "fixed"\nweight_decay: 0.005',
    "rmsprop": 'type: "RMSProp"\nbase_lr: 0.001\nlr_policy: "fixed"\nrms_decay: 0.9\nweight_decay: 0.005',
    "adadelta": 'type: "AdaDelta"\nbase_lr: 1\nlr_policy: "fixed"\nmomentum: 0.95\ndelta: 1e-6\nweight_decay: 0.005',
    "adam": 'type: "Adam"\nbase_lr: 0.001\nlr_policy: "step"\ngamma: 0.5\nstepsize: 3\nmomentum: 0.9\n'
            'momentum2: 0.999\nweight_decay: 0.005',
}


@pytest.mark.parametrize("rule", list(UPDATE_RULES))
def test_each_update_rule_and_lr_policy_step_for_step(tmp_path, caffe, monkeypatch, rule):
    """8 iterations of each Caffe solver type / lr_policy / regularisation / clipping / iter_size, in lock
    step: per iteration the gradients, the loss and every parameter after the update, then the history
    blobs of both snapshots, all within 1e-5 of Caffe's."""
    root = workspace(tmp_path / rule, caffe, small_net(caffe), UPDATE_RULES[rule] + "\nmax_iter: 8", size=24,
                     batch=2, batches=4)
    monkeypatch.chdir(root)
    solver, eng = direct_engines(caffe, root)
    worst = lockstep(solver, eng, 8)
    weights, hist = snapshot_both(solver, eng, 8)
    print(f"\n{rule}: grad {worst.grad:.2e} data {worst.data:.2e} loss {worst.loss:.2e} history {hist:.2e} "
          f"ReLU flips {worst.flips}")
    assert worst.grad <= GRAD_TOL, worst.where
    assert len(worst.flips) <= max_flip_iterations(8), worst.flips
    assert worst.data <= TOL and weights <= TOL, worst.where
    assert hist <= TOL
    if "iter-size" not in rule:  # Caffe's loss blob holds the last of the iter_size passes
        assert worst.loss <= TOL, worst.where


def twenty_iterations(tmp_path, caffe, monkeypatch, net, solver, run, scheme="fillers"):
    """20 iterations of `net` under `solver` in both engines (run: lockstep or free_running) at 32x32,
    batch 2; (Worst, snapshot weights difference, history difference)."""
    root = workspace(tmp_path, caffe, net_text(net), solver + "max_iter: 20", size=32, batch=2, scheme=scheme)
    monkeypatch.chdir(root)
    solver_c, eng = engines(root)
    worst = run(solver_c, eng, 20)
    return (worst, *snapshot_both(solver_c, eng, 20))


def test_tiny_fcn8s_adam_20_iterations_lock_step(tmp_path, caffe, monkeypatch):
    """The demo's tiny FCN-8s with its Adam solver: 20 iterations, gradients, loss, weights and history."""
    worst, _, hist = twenty_iterations(tmp_path, caffe, monkeypatch, "tiny/fcn8s", ADAM_TINY, lockstep)
    print(f"\ntiny fcn8s Adam lock step: grad {worst.grad:.2e} data {worst.data:.2e} loss {worst.loss:.2e} "
          f"history {hist:.2e} ({worst.where}); iterations with ReLU flips {worst.flips}, their gradients "
          f"{worst.grad_at_flips:.2e}")
    assert max(worst.data, worst.loss, hist) <= TOL, worst.where
    assert worst.grad <= GRAD_TOL, worst.where
    assert len(worst.flips) <= max_flip_iterations(20), worst.flips


def envelope(caffe, root, iters):
    """How far Caffe drifts from itself when its starting weights move by one float ulp: the resolution
    float32 training has at all. Returns the Worst of Caffe vs Caffe(+1 ulp)."""
    from engine_parity import Worst
    from fcnkit.caffe.caffe_engine import prepare_solver

    runs = []
    for name in ("a", "b"):  # fresh copies: two Caffe solvers of one process must not read one LMDB path
        ws = copy_workspace(root, root.parent / f"{root.name}-{name}")
        with contextlib.chdir(ws):  # the solver names its net relative to the working directory
            runs.append(prepare_solver("solver.prototxt", weights="init.caffemodel", log=lambda *x: None)[0])
    a, b = runs
    for bl in b.net.params.values():
        for blob in bl:
            blob.data[...] = np.where(blob.data != 0, np.nextafter(blob.data, np.float32(np.inf)), blob.data)
    worst = Worst()
    for it in range(1, iters + 1):
        a.step(1)
        b.step(1)
        la, lb = float(a.net.blobs["loss"].data), float(b.net.blobs["loss"].data)
        worst.note("loss", abs(lb - la) / abs(la), f"iteration {it}")
        for name, bl in a.net.params.items():
            for i, blob in enumerate(bl):
                worst.note("data", rel(b.net.params[name][i].data, blob.data), f"{name}[{i}] iteration {it}")
    return worst


@pytest.mark.parametrize("solver", ["adam", "sgd-paper"])
def test_tiny_fcn8s_20_free_running_iterations(tmp_path, caffe, monkeypatch, solver):
    """Both engines on their own for 20 iterations of the tiny FCN-8s: Adam (its solver) and the paper's SGD
    (momentum 0.99, 1e-8). Within 1e-5 of Caffe, or, where the trajectory itself is that sensitive, no
    further from Caffe than Caffe is from itself started one ulp away."""
    text = ADAM_TINY if solver == "adam" else SGD_PAPER + 'base_lr: 1e-8\nlr_policy: "fixed"\n'
    root = workspace(tmp_path / "w", caffe, net_text("tiny/fcn8s"), text + "max_iter: 20", size=32, batch=2)
    monkeypatch.chdir(root)
    solver_c, eng = engines(root)
    worst = free_running(solver_c, eng, 20)
    eng.close()
    del solver_c
    env = envelope(caffe, root, 20)
    print(f"\ntiny fcn8s {solver} free running: torch vs Caffe data {worst.data:.2e} loss {worst.loss:.2e}; "
          f"Caffe vs Caffe+1ulp data {env.data:.2e} loss {env.loss:.2e}")
    assert worst.loss <= max(TOL, 2 * env.loss), worst.where
    assert worst.data <= max(TOL, 2 * env.data), worst.where


@pytest.mark.slow
@pytest.mark.parametrize(("net", "solver"), [
    # the paper's FCN-32s schedule (1e-8, then 1e-10) with the step drop at iteration 10 instead of 20 000
    ("fcn32s", 'base_lr: 1e-8\nlr_policy: "step"\ngamma: 0.01\nstepsize: 10\n'),
    ("fcn8s", 'base_lr: 1e-10\nlr_policy: "fixed"\n'),  # the paper's FCN-8s stages
])
def test_full_size_fcn_paper_sgd_20_iterations(tmp_path, caffe, monkeypatch, net, solver):
    """The full-size VGG-16 FCN at 32x32 input, batch 2, from a VGG-like start (trunk N(0, 0.01), score
    layers zero): 20 free-running iterations of the paper's SGD, every parameter after every iteration
    and the loss within 1e-5 of Caffe's; the history blobs of the final snapshots reported."""
    worst, weights, hist = twenty_iterations(tmp_path, caffe, monkeypatch, net, SGD_PAPER + solver, free_running,
                                             scheme="vgglike")
    print(f"\n{net} paper SGD, 20 iterations: data {worst.data:.2e} loss {worst.loss:.2e} snapshot weights "
          f"{weights:.2e} history {hist:.2e}; losses {[round(c, 3) for c, _ in worst.losses]}")
    assert worst.data <= TOL and worst.loss <= TOL, worst.where
    assert weights <= TOL


def hand_off_workspace(tmp_path, caffe):
    solver = SGD_PAPER + 'base_lr: 1e-8\nlr_policy: "fixed"\nmax_iter: 6\n'
    root = workspace(tmp_path, caffe, net_text("tiny/fcn8s"), solver, size=32, batch=2)
    for name in ("a", "b"):  # one snapshot prefix per continuation
        text = (root / "solver.prototxt").read_text().replace("snaps/run", f"snaps/{name}")
        (root / f"{name}.prototxt").write_text(text)
    return root


@pytest.mark.parametrize("first", ["torch", "caffe"])
def test_snapshot_hand_off_between_engines(tmp_path, caffe, first):
    """A snapshot of one engine continues in the other (`solve --resume`, real processes): the continuation
    agrees with the first engine continuing itself, weights and solver history; the torch engine's own
    resume reproduces its uninterrupted run exactly."""
    root = hand_off_workspace(tmp_path, caffe)
    other = "caffe" if first == "torch" else "torch"
    r = run_cli("solve", "solver.prototxt", "--engine", first, "--weights", "init.caffemodel", "--max-iter", 3,
                cwd=root)
    assert r.returncode == 0, r.stderr
    state = "snaps/run_iter_3.solverstate"
    assert read_solverstate(root / state).iter == 3
    for engine, solver in ((first, "a.prototxt"), (other, "b.prototxt")):
        r = run_cli("solve", solver, "--engine", engine, "--resume", state, cwd=root)
        assert r.returncode == 0, r.stderr
        assert "done: 6 iterations" in r.stdout
    weights, hist = compare_snapshots(root / "snaps/a_iter_6.solverstate", root / "snaps/b_iter_6.solverstate", root)
    print(f"\n{first} snapshot -> {other}: weights {weights:.2e} history {hist:.2e}")
    assert weights <= TOL and hist <= TOL
    if first == "torch":  # resuming is exact: 3 + 3 iterations equal 6 in one go
        r = run_cli("solve", "solver.prototxt", "--engine", "torch", "--weights", "init.caffemodel", cwd=root)
        assert r.returncode == 0, r.stderr
        one_go, resumed = read_caffemodel(root / "snaps/run_iter_6.caffemodel"), read_caffemodel(
            root / "snaps/a_iter_6.caffemodel")
        for name in one_go.order:
            for x, y in zip(one_go.layers[name].blobs, resumed.layers[name].blobs, strict=True):
                np.testing.assert_array_equal(x.data, y.data, err_msg=name)


def test_torch_snapshot_is_a_caffe_snapshot(tmp_path, caffe, monkeypatch):
    """What the torch engine writes is what Caffe writes: the net's layers in order (Caffe adds its Split
    layers), the same blob shapes in the caffemodel, the same fields in the solverstate; pycaffe loads it."""
    root = hand_off_workspace(tmp_path, caffe)
    monkeypatch.chdir(root)
    solver, eng = engines(root)
    solver.step(2)
    eng.step()
    eng.step()
    solver.snapshot()
    eng.sp.snapshot_prefix = "snaps/torch"
    eng.snapshot()
    eng.close()
    theirs, mine = read_caffemodel("snaps/run_iter_2.caffemodel"), read_caffemodel("snaps/torch_iter_2.caffemodel")
    assert mine.order == [n for n in theirs.order if not n.endswith("_split")]
    for name in mine.order:
        assert [b.shape for b in mine.layers[name].blobs] == [b.shape for b in theirs.layers[name].blobs], name
        assert mine.layers[name].type == theirs.layers[name].type
    st = read_solverstate("snaps/torch_iter_2.solverstate")
    assert (st.iter, st.learned_net, st.current_step) == (2, "snaps/torch_iter_2.caffemodel", 0)
    net = caffe.Net(str(ROOT / "prototxt/tiny/fcn8s/deploy.prototxt"), "snaps/torch_iter_2.caffemodel", caffe.TEST)
    for name in ("conv1_1", "fc6", "score_fr", "upscore8"):
        assert rel(net.params[name][0].data, solver.net.params[name][0].data) <= TOL, name


def test_cli_torch_engine_logs_like_caffe_and_plot_training_reads_them(tmp_path, caffe):
    root = hand_off_workspace(tmp_path, caffe)
    r = run_cli("solve", "solver.prototxt", "--engine", "torch", "--weights", "init.caffemodel", "--max-iter", 4,
                cwd=root)
    assert r.returncode == 0, r.stderr
    assert "init: weights from init.caffemodel" in r.stdout and "engine: torch" in r.stdout
    rows = parse_log(r.stdout)
    assert [row["iter"] for row in rows] == [4] and np.isfinite(rows[0]["loss"])  # display 0 -> every 20, last
    assert (root / "snaps" / "run_iter_4.caffemodel").is_file()


@pytest.mark.parametrize(("edit", "args", "expect"), [
    (None, ("--device", "cuda"), "no usable CUDA device"),
    (None, ("--device", "tpu"), "use cpu, cuda or cuda:N"),
    (lambda t: t.replace('type: "Crop"', 'type: "HingeLoss"'), (), "which the torch engine does not train"),
    (lambda t: t.replace("mean_value: 104.00699", "mean_value: 104.00699\n    mirror: true"), (), "mirror"),
])
def test_torch_engine_bad_input_is_one_line(tmp_path, caffe, edit, args, expect):
    root = hand_off_workspace(tmp_path, caffe)
    if edit:
        (root / "train.prototxt").write_text(edit((root / "train.prototxt").read_text()))
    r = run_cli("solve", "solver.prototxt", "--engine", "torch", *args, cwd=root)
    assert expect in one_error_line(r, "solve")
    assert not (root / "snaps").exists() or not list((root / "snaps").glob("*.caffemodel"))


def test_device_flag_belongs_to_the_torch_engine(tmp_path, caffe):
    root = hand_off_workspace(tmp_path, caffe)
    r = run_cli("solve", "solver.prototxt", "--device", "cpu", cwd=root)
    assert "--device cpu is for --engine torch" in one_error_line(r, "solve")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_torch_engine_interrupt_snapshots_then_caffe_resumes(tmp_path, caffe, sig):
    """Ctrl-C / SIGTERM: the iteration finishes, a snapshot is written, exit 130 / 143; Caffe resumes it."""
    root = hand_off_workspace(tmp_path, caffe)
    text = (root / "solver.prototxt").read_text().replace("max_iter: 6", "max_iter: 1000000")
    (root / "solver.prototxt").write_text(text.replace("display: 0", "display: 1"))
    proc = subprocess.Popen([str(VENV_BIN / "solve"), "solver.prototxt", "--engine", "torch", "--weights",
                             "init.caffemodel"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    for line in proc.stdout:
        if line.startswith("iter 2 "):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err
    assert "snapshotting before exit" in out and "interrupted" in err and "Traceback" not in err
    snaps = sorted((root / "snaps").glob("run_iter_*.solverstate"))
    assert len(snaps) == 1
    n = read_solverstate(snaps[0]).iter
    assert n >= 2
    r = run_cli("solve", "solver.prototxt", "--engine", "caffe", "--resume", snaps[0].relative_to(root),
                "--max-iter", n + 1, cwd=root)
    assert r.returncode == 0 and f"done: {n + 1} iterations" in r.stdout, r.stderr


def test_torch_engine_stops_on_nan_with_one_line(tmp_path, caffe):
    root = hand_off_workspace(tmp_path, caffe)
    (root / "solver.prototxt").write_text((root / "solver.prototxt").read_text().replace("1e-8", "1e+30"))
    msg = one_error_line(run_cli("solve", "solver.prototxt", "--engine", "torch", "--weights", "init.caffemodel",
                                 cwd=root), "solve")
    assert "lower base_lr" in msg and ("weights became NaN/inf" in msg or "loss became" in msg)
