"""`solve --engine torch`: the solver's train and test nets in PyTorch, trained with Caffe's update rule.

`prepare_torch_solver` runs the checks of the Caffe engine that apply (solver, nets in their phase, LMDBs,
snapshot folder, weights, solverstate; see caffe.preflight), builds the nets, starts them from the same
weights (caffe.loop.initial_weights / initialise: the paper's chain, VGG-16 surgery, bilinear upsamplers)
and returns a `TorchEngine`, which `caffe.loop.train` drives like a Caffe solver.

Under `torchrun` (`training.distributed`) every rank builds the same engine: its TRAIN net reads its own
shard of the LMDBs, DistributedDataParallel averages the gradients (after the last of the iter_size
passes), every rank applies the same update, and rank 0 alone tests, validates, logs and snapshots; its
snapshot holds everything a resume needs, with any number of ranks.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from fcnkit.caffe import preflight
from fcnkit.caffe.loop import (
    VGG_MODEL,
    TrainingEngine,
    check_weights_fit,
    initial_weights,
    initialise,
    net_roles,
    refuse_non_finite_start,
    solver_args,
)
from fcnkit.caffe.surgery import model_params
from fcnkit.caffe.torch_engine.data_layers import DataLayerSource, NetFeeder
from fcnkit.caffe.torch_engine.snapshot import write_caffemodel, write_solverstate
from fcnkit.caffe.torch_engine.solver import CaffeUpdate, check_solver_type
from fcnkit.caffe.torch_engine.torch_net import TorchNet, check_types
from fcnkit.errors import UserError, silent
from fcnkit.evaluation import metrics
from fcnkit.io.caffe_schema import filter_net, load_prototxt, read_caffemodel
from fcnkit.models.registry import latest_snapshot
from fcnkit.training import distributed
from fcnkit.training.distributed import Dist


def torch_device(device: str | None) -> torch.device:
    """`--device cpu|cuda|cuda:N`, checked."""
    name = device or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: this PyTorch ({torch.__version__}) sees no CUDA device; use "
                            "--device cpu, or install a CUDA build of torch on a machine with a GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    return dev


def solver_nets(sp) -> list[tuple[str, str, int]]:
    """(net file, phase, test_iter) of the train net and each test net, as Caffe's Solver builds them."""
    nets = [(sp.net or sp.train_net, "TRAIN", 0)]
    tests = list(sp.test_net) or ([sp.net] if sp.net and len(sp.test_iter) else [])
    return nets + [(t, "TEST", sp.test_iter[i] if i < len(sp.test_iter) else 0) for i, t in enumerate(tests)]


class PhaseNet:
    """One net of the solver: its layers (TorchNet), its data feeder, its roles."""

    def __init__(self, path: str, phase: str, test_iter: int, device, *, rng, generator, unfilled=frozenset(),
                 shard: Dist | None = None):
        param = check_net(path, phase)
        self.path, self.phase, self.test_iter, self.param = path, phase, test_iter, param
        sources = [DataLayerSource(lay, path) for lay in param.layer if lay.type == "Data"]
        shapes = {k: v for s in sources for k, v in s.shapes().items()}
        self.net = TorchNet(param, phase, path, shapes, rng=rng, generator=generator, unfilled=unfilled)
        self.feeder = NetFeeder(sources, device, shard=shard)
        self.roles = net_roles(param)

    def forward(self) -> dict[str, torch.Tensor]:
        return self.net(self.feeder.next())


def check_net(path: str, phase: str):
    """The checks of the Caffe engine for one net, with the torch engine's layer set; the filtered net."""
    check_types(filter_net(load_prototxt(path, "net"), phase), path)
    param = preflight.net_param(path, phase)
    preflight.data_sources(path, param)
    return param


class TorchEngine(TrainingEngine):
    """The solver in PyTorch. `step` is Caffe's Solver::Step(1); see `train` in caffe.solve."""

    name = "torch"

    def __init__(self, sp, device: torch.device, log=print, dist: Dist | None = None):
        self.sp, self.device, self.log = sp, device, log
        self.dist = dist or Dist()
        self.is_main = self.dist.is_main
        seed = sp.random_seed if sp.random_seed >= 0 else None
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=device)
        # Dropout's draws: rank r of a torchrun job seeds random_seed + r, as Caffe's P2PSync seeds its workers
        # (random_seed + device); the fillers' numpy stream stays the same on every rank (rank 0's weights win).
        self.generator.manual_seed((seed if seed is not None else int(self.rng.integers(2**62))) + self.dist.rank)
        nets = solver_nets(sp)
        train_path = nets[0][0]
        self.train = PhaseNet(train_path, "TRAIN", 0, device, rng=self.rng, generator=self.generator,
                              shard=self.dist)
        if not self.train.net.loss_weights:
            raise UserError(f"{train_path}: the TRAIN net has no loss layer (nothing to minimise)")
        shared = frozenset(self.train.net.store.layers)
        self.tests = [PhaseNet(p, "TEST", n, device, rng=self.rng, generator=None, unfilled=shared)
                      for p, _, n in nets[1:]]
        self.iter = 0
        self.update: CaffeUpdate | None = None
        self.trainer: torch.nn.Module | None = None  # the TRAIN net, under DDP when distributed

    # ------------------------------------------------------------------------------ initialisation
    def store_params(self):
        return self.train.net.store.params()

    def copy_weights(self, path: str) -> None:
        """Caffe's CopyTrainedLayersFrom into the store: same-named layers, shapes checked beforehand."""
        model = read_caffemodel(path)
        store = self.train.net.store.layers
        for name, layer in model.layers.items():
            if name in store:
                for dst, src in zip(store[name].blobs, layer.blobs, strict=True):
                    dst.data[:] = src.data

    def materialize(self) -> None:
        cl = self.device.type == "cpu"  # measured faster on CPU; CUDA keeps torch's default layout (unmeasured)
        self.train.net.materialize(self.device, channels_last=cl)
        for t in self.tests:
            t.net.materialize(self.device, share_from=self.train.net, channels_last=cl)
        self.train.net.train()
        self.update = CaffeUpdate(self.sp, self.train.net.learnables)
        self.trainer = self.dist.wrap(self.train.net, self.device)

    def restore(self, state) -> None:
        """A .solverstate's iteration, step and history (its learned_net was loaded into the store)."""
        self.iter, self.update.current_step = state.iter, state.current_step
        self.update.load_history([h.data for h in state.history], state.path)

    # ---------------------------------------------------------------------------------------- steps
    def step(self) -> float:
        sp = self.sp
        if sp.test_interval and self.iter % sp.test_interval == 0 and (self.iter > 0 or sp.test_initialization) \
                and self.is_main:
            self.test_all()
        try:
            loss = self.forward_backward()
        except distributed.LOST as exc:
            if not self.dist.active:
                raise
            last = latest_snapshot(Path(sp.snapshot_prefix)) if sp.snapshot_prefix else None
            hint = f"resume with --resume {last.with_suffix('.solverstate')}" if last else "no snapshot yet"
            raise self.dist.lost(exc, hint) from None
        self.apply_update()
        return loss

    def forward_backward(self) -> float:
        """Net::ClearParamDiffs, then iter_size forward/backward passes accumulating the gradients; the
        iteration's loss (their mean), as Solver::Step computes it. Distributed: the gradients are averaged
        over the ranks in the last pass's backward (Caffe's multi-GPU solver averages them too), and the loss
        is the ranks' mean (the loss of the whole N x B batch when the loss is normalised per batch)."""
        for b in self.update.blobs:
            b.tensor.grad = None
        loss = 0.0
        n = self.sp.iter_size
        for k in range(n):
            last = k == n - 1
            with contextlib.nullcontext() if last or not self.dist.active else self.trainer.no_sync():
                blobs = self.trainer(self.train.feeder.next())
                total = self.train.net.total_loss(blobs)
                total.backward()
            loss += float(total.detach())
        return self.dist.mean(float(np.float32(loss) / np.float32(n)))

    def apply_update(self) -> None:
        """ApplyUpdate, count the iteration, snapshot when `snapshot` divides the count."""
        self.update.apply(self.iter)
        self.iter += 1
        if self.sp.snapshot and self.iter % self.sp.snapshot == 0:
            self.snapshot()

    @torch.no_grad()
    def test_all(self) -> None:
        """Caffe's Solver::TestAll: each test net's scalar outputs (loss, accuracy) averaged over its
        test_iter batches, logged as `val iter N: NAME VALUE ...` (test nets after the first: netK_NAME)."""
        for k, t in enumerate(self.tests):
            sums = dict.fromkeys((o for o in t.net.outputs if math.prod(t.net.shapes[o]) == 1), 0.0)
            for _ in range(t.test_iter):
                blobs = t.forward()
                for name in sums:
                    sums[name] += float(blobs[name].sum())
            if t.test_iter and sums:
                prefix = f"net{k}_" if k else ""
                self.log(f"val iter {self.iter}: " + " ".join(f"{prefix}{name} {v / t.test_iter:.6g}"
                                                             for name, v in sums.items()))

    @torch.no_grad()
    def validate(self, n_batches: int) -> dict:
        if not self.tests or not n_batches or not self.is_main:
            return {}
        t = self.tests[0]
        r = t.roles
        if not (r.score and r.label and r.score in t.net.shapes):
            return {}
        n = t.net.shapes[r.score][1]
        hist = np.zeros((n, n), np.int64)
        for _ in range(n_batches):
            blobs = t.forward()
            hist += metrics.fast_hist(blobs[r.label].cpu().numpy(), blobs[r.score].argmax(1).cpu().numpy(), n)
        return metrics.scores(hist)

    def non_finite_params(self) -> dict[str, int]:
        return self.train.net.non_finite()

    # ------------------------------------------------------------------------------------- snapshots
    def snapshot(self) -> tuple[Path, Path] | None:
        """<prefix>_iter_N.caffemodel and .solverstate, as Caffe's Solver::Snapshot writes them."""
        prefix = self.sp.snapshot_prefix
        if not prefix or not self.is_main:
            return None
        model = f"{prefix}_iter_{self.iter}.caffemodel"
        state = f"{prefix}_iter_{self.iter}.solverstate"
        write_caffemodel(model, self.train.param, "TRAIN", self.layer_blobs())
        write_solverstate(state, iteration=self.iter, learned_net=model, current_step=self.update.current_step,
                          history=(b.to_caffe(h) for b, h in self.update.history_arrays()))
        return Path(model), Path(state)

    def layer_blobs(self):
        """(layer, [blob in Caffe's shape]) for every layer with parameters, in net order; a layer sharing
        a param writes its owner's values, as Caffe does."""
        by_layer: dict[str, list] = {}
        for (layer, _), blob in self.train.net.blob_of.items():
            by_layer.setdefault(layer, []).append(blob)
        for lay in self.train.param.layer:
            if lay.name in by_layer:
                yield lay.name, [b.to_caffe() for b in by_layer[lay.name]]

    def close(self) -> None:
        for p in [self.train, *self.tests]:
            p.feeder.close()
        self.dist.close()


def prepare_torch_solver(solver_path, *, weights=None, resume=None, device=None, max_iter=None, log=print):
    """The torch engine's counterpart of caffe.caffe_engine.prepare_solver: (engine, param, init)."""
    sp = solver_args(solver_path, weights=weights, resume=resume, max_iter=max_iter)
    check_solver_type(sp, solver_path)
    if sp.snapshot_format != 1:  # BINARYPROTO
        raise UserError(f"{solver_path}: snapshot_format HDF5: the torch engine writes Caffe's binary snapshots "
                        "only; remove snapshot_format")
    dist, device = distributed.from_env(device)
    if not dist.is_main:
        log = silent
    dev = torch_device(device)
    preflight.snapshot_folder(sp.snapshot_prefix)
    init, weights, vgg = initial_weights(sp, weights, resume)
    state = preflight.solverstate(resume, sp.type) if resume else None
    engine = TorchEngine(sp, dev, log, dist)
    params = engine.store_params()
    vgg_source = model_params(read_caffemodel(VGG_MODEL)) if vgg else None
    initialise(params, sp, weights=weights, vgg_source=vgg_source, copy_weights=engine.copy_weights, log=log)
    del vgg_source
    if state is not None:
        check_weights_fit(params, state.learned_net)
        engine.copy_weights(state.learned_net)
    engine.materialize()
    if state is not None:
        engine.restore(state)
        log(f"init: resumed {resume} at iteration {state.iter}")
    refuse_non_finite_start(engine.non_finite_params(), resume or weights or "the initialisation")
    ranks = f", {dist.world} ranks x batch {engine.train.feeder.batch_size()} (torchrun)" if dist.active else ""
    log(f"engine: torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads){ranks}, {sp.type} solver, "
        f"{sum(math.prod(b.shape) for b in engine.update.blobs):,} parameters in {len(engine.update.blobs)} blobs")
    return engine, sp, init
