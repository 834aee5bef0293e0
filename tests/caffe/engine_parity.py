"""Helpers for the torch-engine proofs: a workspace (LMDB pair, train net, solver, initial weights) and two
ways of running real Caffe and the torch engine side by side from identical weights on identical batches.

* `lockstep`: at every iteration both engines compute the gradients from their own weights; Caffe's are
  compared with the torch engine's, then Caffe's solver is handed the torch engine's gradients (pycaffe's
  on_gradients_ready callback) so that both update rules see the same input. This proves each step (the
  net's forward/backward, then the solver's update) however sensitive the trajectory is.
* `free_running`: both engines train independently, as users run them.

`rel(a, b)`: the largest difference relative to the largest magnitude of Caffe's blob `b`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from conftest import make_blob_images, rel, write_lmdb_pair
from fcnkit.caffe.caffe_engine import prepare_solver
from fcnkit.caffe.torch_engine import prepare_torch_solver
from fcnkit.caffe.torch_engine.fillers import fill, layer_fillers
from fcnkit.io.caffe_schema import filter_net, pb
from google.protobuf import text_format


def edit_net(text: str, image_lmdb: Path, label_lmdb: Path, batch: int) -> str:
    """A train net reading our LMDB pair (tops data/label) with batch `batch`, dropout off."""
    net = pb().NetParameter()
    text_format.Parse(text, net)
    for lay in net.layer:
        if lay.type == "Data":
            lay.data_param.source = str(image_lmdb if lay.top[0] == "data" else label_lmdb)
            lay.data_param.batch_size = batch
        if lay.type == "Dropout":
            lay.dropout_param.dropout_ratio = 0.0  # Caffe's Bernoulli draws cannot be reproduced
    return text_format.MessageToString(net)


def init_weights(caffe, net_path: Path, out: Path, scheme: str, seed: int = 0) -> None:
    """Deterministic initial weights for both engines. "fillers": each layer's own filler, drawn by numpy;
    "vgglike": what a VGG-16 start looks like to the solver (trunk N(0, 0.01) weights, U(-1, 1) biases,
    score layers zero, as the FCN reference starts them)."""
    rng = np.random.default_rng(seed)
    net = caffe.Net(str(net_path), caffe.TRAIN)
    layers = {lay.name: lay for lay in filter_net(_parse(net_path), "TRAIN").layer}
    for name, blobs in net.params.items():
        lay = layers[name]
        if scheme == "vgglike" and lay.type != "Deconvolution":
            trunk = not name.startswith("score")
            blobs[0].data[...] = rng.normal(0, 0.01, blobs[0].data.shape) if trunk else 0
            if len(blobs) > 1:
                blobs[1].data[...] = rng.uniform(-1, 1, blobs[1].data.shape) if trunk else 0
            continue
        for b, f in zip(blobs, layer_fillers(lay, len(blobs)), strict=True):
            b.data[...] = fill(f, tuple(b.data.shape), rng, name)
    net.save(str(out))


def _parse(path: Path):
    net = pb().NetParameter()
    text_format.Parse(Path(path).read_text(), net)
    return net


def workspace(root: Path, caffe, net_text: str, solver: str, *, size: int, batch: int, batches: int = 3,
              scheme: str = "fillers", seed: int = 0) -> Path:
    """root/{image,label}_lmdb, train.prototxt, solver.prototxt (snapshot prefix snaps/run), init.caffemodel."""
    root.mkdir(parents=True, exist_ok=True)
    images, labels = make_blob_images(batch * batches, size, seed=seed + 1)
    labels[:, :, :1] = 255  # some ignored pixels
    img, lab = write_lmdb_pair(root, images, labels)
    (root / "train.prototxt").write_text(edit_net(net_text, img, lab, batch))
    (root / "solver.prototxt").write_text(f'net: "train.prototxt"\n{solver}\ndisplay: 0\n'
                                          f'snapshot_prefix: "snaps/run"\nrandom_seed: {seed}\n')
    init_weights(caffe, root / "train.prototxt", root / "init.caffemodel", scheme, seed)
    return root


def copy_workspace(src: Path, dst: Path) -> Path:
    """The same workspace under another path: Caffe shares one reader between two solvers of a process that
    read the same LMDB path, so a second Caffe solver needs its own copy."""
    shutil.copytree(src, dst)
    text = (dst / "train.prototxt").read_text().replace(str(src), str(dst))
    (dst / "train.prototxt").write_text(text)
    return dst


@dataclass
class Worst:
    loss: float = 0.0
    data: float = 0.0
    grad: float = 0.0
    grad_at_flips: float = 0.0
    where: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)
    flips: list = field(default_factory=list)  # (iteration, ReLU gates that differ between the engines)

    def note(self, what: str, value: float, where: str) -> None:
        if value > getattr(self, what):
            setattr(self, what, value)
            self.where[what] = where


def engines(root: Path, solver: str = "solver.prototxt", weights: str = "init.caffemodel"):
    """(pycaffe solver, torch engine) prepared by the production code paths, from the same weights."""
    quiet = lambda *a: None  # noqa: E731
    c, _, _ = prepare_solver(root / solver, weights=str(root / weights), log=quiet)
    t, _, _ = prepare_torch_solver(root / solver, weights=str(root / weights), log=quiet)
    return c, t


def compare_params(solver, eng, worst: Worst, it: int) -> None:
    blobs = eng.train.net.blob_of
    for name, bl in solver.net.params.items():
        for i, b in enumerate(bl):
            worst.note("data", rel(blobs[(name, i)].to_caffe(), b.data), f"{name}[{i}] after iteration {it}")


def relu_gates(eng) -> dict[str, np.ndarray]:
    """{ReLU top: where the torch engine's last forward pass let the signal through}, kept up to date by
    forward hooks (taken at the ReLU itself, before any later in-place layer writes the blob)."""
    gates: dict[str, np.ndarray] = {}
    for st in eng.train.net.steps:
        if st.type == "ReLU":
            st.module.register_forward_hook(
                lambda m, i, o, top=st.tops[0]: gates.__setitem__(top, (o > 0).contiguous().cpu().numpy()))
    return gates


def lockstep(solver, eng, iters: int) -> Worst:
    """Gradients are compared at every iteration; where a pre-activation within rounding of zero falls on
    different sides of a ReLU in the two engines (their weights differ by ~1e-7), that pixel's gradient
    is routed differently and a blob's gradient may differ by far more than rounding: such iterations
    are counted in `flips` and their gradient difference kept apart (`grad_at_flips`)."""
    worst = Worst()
    blobs = eng.train.net.blob_of
    grads: dict = {}
    gates = relu_gates(eng)

    def on_gradients_ready():
        it = solver.iter + 1
        flipped = sum(int((gate != (solver.net.blobs[top].data > 0)).sum()) for top, gate in gates.items())
        if flipped:
            worst.flips.append((it, flipped))
        for name, bl in solver.net.params.items():
            for i, b in enumerate(bl):
                mine = grads[(name, i)]
                worst.note("grad_at_flips" if flipped else "grad", rel(mine, b.diff), f"{name}[{i}] at iteration {it}")
                b.diff[...] = mine

    solver.add_callback(lambda: None, on_gradients_ready)
    for it in range(1, iters + 1):
        loss_t = eng.forward_backward()
        grads.clear()
        for key, b in blobs.items():
            g = b.tensor.grad
            grads[key] = b.to_caffe(g) if g is not None else np.zeros(b.shape, np.float32)
        solver.step(1)
        eng.apply_update()
        loss_c = float(solver.net.blobs["loss"].data)
        worst.losses.append((loss_c, loss_t))
        worst.note("loss", abs(loss_t - loss_c) / abs(loss_c), f"iteration {it}")
        compare_params(solver, eng, worst, it)
    return worst


def free_running(solver, eng, iters: int) -> Worst:
    worst = Worst()
    for it in range(1, iters + 1):
        solver.step(1)
        loss_t = eng.step()
        loss_c = float(solver.net.blobs["loss"].data)
        worst.losses.append((loss_c, loss_t))
        worst.note("loss", abs(loss_t - loss_c) / abs(loss_c), f"iteration {it}")
        compare_params(solver, eng, worst, it)
    return worst


def snapshot_both(solver, eng, iteration: int) -> tuple[float, float]:
    """Both engines snapshot (Caffe as snaps/run, the torch engine as snaps/torch); compare_snapshots."""
    solver.snapshot()
    eng.sp.snapshot_prefix = "snaps/torch"
    eng.snapshot()
    eng.close()
    return compare_snapshots(Path(f"snaps/run_iter_{iteration}.solverstate"),
                             Path(f"snaps/torch_iter_{iteration}.solverstate"))


def compare_snapshots(caffe_state: Path, torch_state: Path, base: Path = Path()) -> tuple[float, float]:
    """(worst weights, worst history) difference between two snapshots of the same net, relative. `base`:
    the working directory of the runs (snapshots name their caffemodel relative to it)."""
    from fcnkit.io.caffe_schema import read_caffemodel, read_solverstate

    a, b = read_solverstate(torch_state), read_solverstate(caffe_state)
    assert a.iter == b.iter and a.current_step == b.current_step and len(a.history) == len(b.history)
    hist = max((rel(x.data, y.data) for x, y in zip(a.history, b.history, strict=True)), default=0.0)
    ma, mb = read_caffemodel(base / a.learned_net), read_caffemodel(base / b.learned_net)
    names = [n for n in mb.order if mb.layers[n].blobs]
    assert [n for n in ma.order if ma.layers[n].blobs] == names
    weights = 0.0
    for name in names:
        for x, y in zip(ma.layers[name].blobs, mb.layers[name].blobs, strict=True):
            assert x.shape == y.shape, name
            weights = max(weights, rel(x.data, y.data))
    return weights, hist
