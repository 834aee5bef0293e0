"""One PyTorch training loop for every native family (`fcnkit train MODEL`).

Seeded (torch, numpy; batch order and augmentation follow the seed), a progress bar per epoch, validation
metrics after every epoch (the same `Predictor` and metrics `evaluate` uses: pixel accuracy, mean IoU,
foreground IoU, Jaccard %, Hausdorff), a checkpoint after every epoch (`training.checkpoint`), resume,
and Ctrl-C / SIGTERM: the weights and state of the moment are saved, then `TrainingInterrupted` (exit 130 / 143).

Family hooks: a model with `supervised(x)` returns one logit map per supervision level (deep supervision,
"deep_bce": the sum of the per-level BCEs, labels resized to each level by nearest neighbour); a model
with `encoder` and `load_pretrained()` takes Caffe Model Zoo weights (recipe `pretrained`) and may be
frozen ("always") or frozen until the decoder's plateau, then unfrozen to a new plateau ("plateau");
the patch CNN trains on patches (`task: patches`, `patch_logits`). Labels 255 are ignored.

Under `torchrun` (`training.distributed`) every rank trains the batch on its own share of each step's
images (`tasks.ImageTask`), DistributedDataParallel averages the gradients (N ranks x batch B train as one
process with batch N x B: exactly, when every image has as many labelled pixels), and rank 0 alone logs,
validates (its figures are sent to the others: plateaus and unfreezing stay in step) and checkpoints;
`--resume` reads that checkpoint with any number of ranks.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fcnkit import models
from fcnkit.config.paths import in_project
from fcnkit.data.splits import load_split, load_val
from fcnkit.errors import Interrupted, UserError, silent
from fcnkit.evaluation.metrics import aggregate, image_scores
from fcnkit.inference.backends import module_predictor
from fcnkit.inference.predict import to_mask
from fcnkit.models.native import build_model, check_model, check_settings, checkpoint_path
from fcnkit.models.recipe import Recipe
from fcnkit.training import checkpoint, distributed
from fcnkit.training.patches import PatchTask
from fcnkit.training.tasks import ImageTask

WEIGHTS_DIR_NOTE = "weights/<release> (fcnkit fetch-weights)"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the checkpoint of the moment was saved. A KeyboardInterrupt, so whatever runs the
    training (train, compare) stops the same way: exit status 128 + `signum` (130, 143) and one line."""

    def __init__(self, path: Path, signum: int = signal.SIGINT):
        super().__init__(f"saved {path} (resume with --resume)")
        self.path, self.signum = path, signum


def _bce(logit, target):
    valid = (target != 255).float()
    loss = F.binary_cross_entropy_with_logits(logit, (target == 1).float(), weight=valid, reduction="sum")
    return loss / valid.sum().clamp(min=1.0)


def _soft_jaccard(logit, target):
    """1 - soft IoU of the object class per image (probabilities, not thresholded), mean over the batch;
    ignored pixels (255) count in neither the intersection nor the union."""
    valid = (target != 255).float()
    p, t = torch.sigmoid(logit) * valid, (target == 1).float()
    inter = (p * t).sum((1, 2, 3))
    union = (p + t - p * t).sum((1, 2, 3))
    return (1.0 - (inter + 1.0) / (union + 1.0)).mean()


def compute_loss(model, x, y, loss: str):
    if loss == "patch_bce":
        return F.binary_cross_entropy_with_logits(model.patch_logits(x), y)
    if loss == "deep_bce":
        total = 0.0
        for out in model.supervised(x):
            t = y if out.shape[-2:] == y.shape[-2:] else F.interpolate(y, size=out.shape[-2:], mode="nearest")
            total = total + _bce(out, t)
        return total
    logit = model(x)
    if loss == "bce_iou":
        return _bce(logit, y) + _soft_jaccard(logit, y)
    return _bce(logit, y)


class StepLoss(torch.nn.Module):
    """The model's training loss as a module's forward, so that DistributedDataParallel (which hooks
    forward) wraps every family's loss: supervised levels and patch logits included."""

    def __init__(self, model, loss: str):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x, y):
        return compute_loss(self.model, x, y, self.loss)


def validate(model, spec, split, device: str) -> dict:
    """Dataset figures of the model on a val split, through the inference Predictor."""
    pred = module_predictor(model, spec.preprocessing, spec.output, device=device)
    per = [image_scores(lab, to_mask(g)) for g, lab in zip(pred.logits(list(split.images)), split.labels,
                                                          strict=True)]
    s = aggregate(per)
    return {"pixel_acc": s["pixel_acc"], "mean_iou": s["mean_iou"], "iou": s["iou"][1] if len(s["iou"]) > 1 else
            float("nan"), "jaccard": s["jaccard_mean"], "jaccard_std": s["jaccard_std"],
            "hausdorff": s["hausdorff_mean"], "hausdorff_std": s["hausdorff_std"]}


def _set_frozen(model, frozen: bool) -> None:
    enc = getattr(model, "encoder", None)
    if enc is not None:
        enc.requires_grad_(not frozen)
        model.frozen_encoder = frozen


def _train_mode(model) -> None:
    model.train()
    if getattr(model, "frozen_encoder", False):
        model.encoder.eval()  # frozen: BatchNorm statistics stay the pretrained ones


def default_out(name: str) -> Path:
    return in_project(checkpoint_path(name))


def train(model_name: str, data, *, val=None, out=None, epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, size: int | None = None, seed: int = 0, device: str = "cpu",
          resume: bool = False, limit: int | None = None, config: dict | None = None, weights_dir=None,
          masks=None, val_masks=None, overrides: dict | None = None, log=print, progress: bool | None = None) -> dict:
    """Train a registered PyTorch model on DATA (LMDB pair dir or photo folder; `val` a second folder for
    photo folders) and write its checkpoint to `out`; returns the sidecar dict. `overrides` changes recipe
    fields (`fcnkit.models.recipe.Recipe`); epochs/batch_size/lr given explicitly win."""
    spec = models.get(model_name)
    if spec.framework != "torch":
        raise UserError(f"{spec.name} is a Caffe model; train it with `{spec.how_to_train()}`")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: this PyTorch has no usable CUDA device; use --device cpu")
    dist, device = distributed.from_env(device)
    if not dist.is_main:  # rank 0 speaks for the job
        log, progress = silent, False
    given = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    recipe = Recipe.of(spec, **{**(overrides or {}), **given})
    cfg = check_settings(spec, config or {})
    out = Path(out) if out else default_out(spec.name)
    data = Path(data)
    train_split = load_split(data, "train", spec.preprocessing, size=size, masks=masks, limit=limit)
    if val is None and not _has_val(data):
        raise UserError(f"{data}: no val split (val_image_lmdb); pass --val DIR (photos + masks) to validate")
    val_split = load_val(val if val is not None else data, masks=val_masks, limit=limit)

    torch.manual_seed(seed)
    model = build_model(spec, cfg)
    check_model(model, recipe, spec.name)
    start_epoch, history, train_seconds, best, since_best, phase = 0, [], 0.0, -math.inf, 0, 1
    rng = np.random.default_rng(seed)
    resume_state = None
    if resume:
        sidecar_old, weights, resume_state = checkpoint.load_for_resume(out, spec.name)
        if sidecar_old.get("config") != cfg:
            raise UserError(f"{checkpoint.paths(out)['sidecar']}: trained with config {sidecar_old.get('config')},"
                            f" not {cfg}; resume with the same --set options")
        model.load_state_dict(weights)
        start_epoch, history = resume_state["epoch"], resume_state["history"]
        train_seconds, best, since_best, phase = (resume_state["train_seconds"], resume_state["best"],
                                                  resume_state["since_best"], resume_state["phase"])
        rng.bit_generator.state = resume_state["numpy_rng"]
        torch.set_rng_state(resume_state["torch_rng"])
        log(f"train: resuming {spec.name} from {out} after epoch {start_epoch}")
    elif recipe.pretrained:
        info = model.load_pretrained(weights_dir)
        log(f"train: encoder from {info['model']} ({info['layers']} Caffe layers, by name)")
    model.to(device)
    fmt = torch.channels_last if device == "cpu" else torch.contiguous_format  # 2x faster CPU convs, few channels
    model.to(memory_format=fmt)
    freeze = recipe.freeze_encoder if recipe.pretrained else None
    _set_frozen(model, freeze == "always" or (freeze == "plateau" and phase == 1))
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])

    if recipe.task == "patches":
        if dist.active:
            raise UserError(f"{spec.name} trains on patches relabelled by the net between epochs, in one process; "
                            "run it without torchrun")
        task = PatchTask(train_split, spec.preprocessing, recipe.batch_size, recipe.patches_per_epoch,
                         relabel_every=recipe.relabel_every)
    else:
        task = ImageTask(train_split, spec.preprocessing, recipe.batch_size, recipe.augment, shard=dist)
    sidecar = {
        "model": spec.name, "family": spec.family, "framework": "torch", "config": cfg,
        "data": {"train": train_split.describe(), "val": val_split.describe()},
        "recipe": recipe.to_json(), "seed": seed, "device": device, "epochs": recipe.epochs,
        "supervision": spec.supervision, "description": spec.description, "ranks": dist.world,
    }
    log(f"train: {spec.name} ({sum(p.numel() for p in model.parameters()):,} parameters) on {len(train_split)} "
        f"images of {data}, val {len(val_split)}; {recipe.epochs} epochs x {task.steps()} steps, batch "
        f"{recipe.batch_size}{f' x {dist.world} ranks' if dist.active else ''}, Adam lr {recipe.lr:g}, {device}; "
        f"checkpoint {checkpoint.paths(out)['weights']}")
    step_loss = dist.wrap(StepLoss(model, recipe.loss), torch.device(device))

    def snapshot(epoch: int, interrupted: bool = False) -> Path:
        if not dist.is_main:
            return checkpoint.paths(out)["weights"]
        state = {"optimizer": opt.state_dict(), "epoch": epoch, "history": history, "train_seconds": train_seconds,
                 "best": best, "since_best": since_best, "phase": phase, "numpy_rng": rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state()}
        meta = {**sidecar, "epoch": epoch, "train_seconds": round(train_seconds, 2), "interrupted": interrupted,
                "metrics": history[-1].get("metrics", {}) if history else {},
                "history": [{k: v for k, v in h.items() if k != "metrics"} for h in history]}
        return checkpoint.save(out, model, meta, state, history)

    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):
        raise Interrupted()

    if _main_thread():
        signal.signal(signal.SIGTERM, _term)
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, recipe.epochs + 1):
            t0 = time.perf_counter()
            _train_mode(model)
            losses = []
            bar = tqdm(task.batches(rng), total=task.steps(), desc=f"{spec.name} epoch {epoch}/{recipe.epochs}",
                       unit="batch", leave=False, disable=(not progress) if progress is not None else None)
            for i, (x, y) in enumerate(bar):
                if recipe.lr_schedule:  # by the global step, so a resumed run continues the same curve
                    for group in opt.param_groups:
                        group["lr"] = recipe.lr_at((epoch - 1) * task.steps() + i, recipe.epochs * task.steps())
                xt = torch.from_numpy(x).to(device)
                xt = xt.contiguous(memory_format=fmt) if xt.dim() == 4 else xt
                yt = torch.from_numpy(y).to(device)
                loss = step_loss(xt, yt)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(dist.mean(float(loss.detach())))
                if not math.isfinite(losses[-1]):
                    raise UserError(f"{spec.name}: the loss became {losses[-1]} at epoch {epoch}; lower --lr")
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            bar.close()
            task.end_epoch(model, epoch, device)
            train_seconds += time.perf_counter() - t0
            metrics = dist.broadcast(validate(model, spec, val_split, device) if dist.is_main else None)
            step = (history[-1]["iter"] if history else 0) + len(losses)
            row = {"iter": step, "epoch": epoch, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
                   "seconds": round(train_seconds, 2), "metrics": metrics,
                   **{f"val_{k}": v for k, v in metrics.items() if not k.endswith("_std")}}
            history.append(row)
            log(f"train: {spec.name} epoch {epoch}/{recipe.epochs} loss {row['loss']:.4f} val pixel_acc "
                f"{metrics['pixel_acc']:.4f} mean_iou {metrics['mean_iou']:.4f} jaccard {metrics['jaccard']:.2f} "
                f"hausdorff {metrics['hausdorff']:.1f} ({train_seconds:.0f}s)")
            score = metrics["jaccard"] if math.isfinite(metrics["jaccard"]) else -math.inf
            best, since_best = (score, 0) if score > best + 1e-6 else (best, since_best + 1)
            plateau = recipe.patience and since_best >= recipe.patience
            if freeze == "plateau" and phase == 1 and (plateau or epoch >= recipe.epochs // 2):
                phase, since_best = 2, 0
                _set_frozen(model, False)
                step_loss = dist.wrap(StepLoss(model, recipe.loss), torch.device(device))  # the encoder joins
                log(f"train: {spec.name}: decoder plateau at epoch {epoch}; encoder unfrozen")
                snapshot(epoch)
                continue
            snapshot(epoch)
            if plateau:
                log(f"train: {spec.name}: plateau (no val Jaccard gain in {recipe.patience} epochs); stopping")
                break
    except KeyboardInterrupt as exc:
        path = snapshot(history[-1]["epoch"] if history else 0, interrupted=True)
        raise TrainingInterrupted(path, getattr(exc, "signum", signal.SIGINT)) from None
    except distributed.LOST as exc:  # a collective failed: another rank died or stopped answering
        if not dist.active:
            raise
        done = history[-1]["epoch"] if history else 0
        raise dist.lost(exc, f"resume with --resume (checkpoint {checkpoint.paths(out)['weights']}, epoch {done})"
                        if done else "no checkpoint yet") from None
    finally:
        if _main_thread():
            signal.signal(signal.SIGTERM, previous)
    dist.close()
    if not dist.is_main:  # the checkpoint is rank 0's (on another machine, perhaps): the figures are the same
        return {**sidecar, "epoch": epoch, "train_seconds": train_seconds, "history": history,
                "metrics": history[-1]["metrics"] if history else {}, "checkpoint": None}
    result = json.loads(checkpoint.paths(out)["sidecar"].read_text())
    result["checkpoint"] = str(checkpoint.paths(out)["weights"])
    return result


def _has_val(data: Path) -> bool:
    return (data / "val_image_lmdb" / "data.mdb").is_file()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
