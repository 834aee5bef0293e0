"""Caffe's solvers (sgd_solver.cpp and its subclasses) on torch tensors, step for step.

After the gradients of one iteration are accumulated (iter_size forward/backward passes), Caffe's
ApplyUpdate runs, and so does `CaffeUpdate.apply`:

1. rate = GetLearningRate() for the lr_policy (computed as Caffe does: double arithmetic, then float);
2. ClipGradients: if clip_gradients >= 0 and the L2 norm of all gradients exceeds it, scale them down;
3. per learnable blob: Normalize (gradient / iter_size), Regularize (L2: + local_decay * W, L1:
   + local_decay * sign(W), local_decay = weight_decay * decay_mult), ComputeUpdateValue with
   local_rate = rate * lr_mult, for the solver type:
     SGD       V = momentum * V + local_rate * g;  update = V
     Nesterov  V' = momentum * V + local_rate * g;  update = (1 + momentum) * V' - momentum * V
     AdaGrad   H += g^2;  update = local_rate * g / (sqrt(H) + delta)
     RMSProp   H = rms_decay * H + (1 - rms_decay) * g^2;  update = local_rate * g / (sqrt(H) + delta)
     AdaDelta  H = m * H + (1 - m) g^2;  u = g * sqrt((U + delta) / (H + delta));  U = m * U + (1 - m) u^2;
               update = local_rate * u
     Adam      M = b1 M + (1 - b1) g;  V = b2 V + (1 - b2) g^2;
               update = local_rate * sqrt(1 - b2^t) / (1 - b1^t) * M / (sqrt(V) + delta),  t = iter + 1
4. W -= update (Net::Update). The update value stays in the blob's `.grad`, where Caffe leaves it in diff.

A blob with lr_mult 0 gets no gradient (Caffe does not back-propagate into it) but is still regularised
and its history kept, so its history blobs in a .solverstate match Caffe's; its update is zero.
History blobs follow Caffe's order: one per learnable blob (Adam, AdaDelta: a second set after the first).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fcnkit.errors import UserError

HISTORY_SETS = {"SGD": 1, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2, "Adam": 2}


def f32(x: float) -> float:
    return float(np.float32(x))


def check_solver_type(sp, path) -> None:
    """The CHECKs of Caffe's solver constructors, as one line."""
    if sp.type in ("AdaGrad", "RMSProp") and sp.momentum != 0:
        raise UserError(f"{path}: momentum cannot be used with {sp.type} (Caffe's check); remove it")
    if sp.type == "RMSProp" and not 0 <= sp.rms_decay < 1:
        raise UserError(f"{path}: rms_decay {sp.rms_decay:g} must be in [0, 1)")


class CaffeUpdate:
    """The update rule for `learnables` (net.Learnable, in Caffe's order) under SolverParameter `sp`."""

    def __init__(self, sp, learnables):
        self.sp, self.blobs = sp, learnables
        self.type = sp.type
        self.current_step = 0
        self.history = [[torch.zeros_like(b.tensor) for b in learnables] for _ in range(HISTORY_SETS[sp.type])]

    # ------------------------------------------------------------------------------------ learning rate
    def rate(self, it: int) -> float:
        """SGDSolver::GetLearningRate at iteration `it` (updates current_step as Caffe does)."""
        sp = self.sp
        base, gamma, policy = sp.base_lr, sp.gamma, sp.lr_policy
        if policy == "fixed":
            r = base
        elif policy == "step":
            self.current_step = it // sp.stepsize
            r = base * math.pow(gamma, self.current_step)
        elif policy == "exp":
            r = base * math.pow(gamma, it)
        elif policy == "inv":
            r = base * math.pow(f32(1 + f32(gamma * it)), -sp.power)
        elif policy == "multistep":
            # Caffe moves at most one step per iteration (so a resumed run catches up gradually)
            if self.current_step < len(sp.stepvalue) and it >= sp.stepvalue[self.current_step]:
                self.current_step += 1
            r = base * math.pow(gamma, self.current_step)
        elif policy == "poly":
            r = base * math.pow(f32(1 - f32(f32(it) / f32(sp.max_iter))), sp.power)
        elif policy == "sigmoid":
            r = base * f32(1 / f32(1 + math.exp(f32(-gamma * f32(it - sp.stepsize)))))
        else:
            raise UserError(f"lr_policy {policy!r} is not one Caffe knows")
        return f32(r)

    # ------------------------------------------------------------------------------------------ update
    @torch.no_grad()
    def apply(self, it: int) -> float:
        """ApplyUpdate at iteration `it` (before it is incremented). Returns the rate used."""
        sp = self.sp
        rate = self.rate(it)
        grads = []
        for b in self.blobs:
            t = b.tensor
            if t.grad is None:
                t.grad = torch.zeros_like(t)
            grads.append(t.grad)
        if sp.clip_gradients >= 0:
            norm = math.sqrt(sum(float(torch.sum(g.double() * g.double())) for g in grads))
            if norm > sp.clip_gradients:
                factor = f32(f32(sp.clip_gradients) / f32(norm))
                for g in grads:
                    g.mul_(factor)
        for i, (b, g) in enumerate(zip(self.blobs, grads, strict=True)):
            w = b.tensor
            if sp.iter_size > 1:
                g.mul_(f32(1.0 / sp.iter_size))
            local_decay = f32(f32(sp.weight_decay) * b.decay_mult)
            if local_decay:
                if sp.regularization_type == "L2":
                    g.add_(w, alpha=local_decay)
                else:
                    g.add_(torch.sign(w), alpha=local_decay)
            self._update_value(i, g, f32(rate * b.lr_mult), it)
            w.sub_(g)
        return rate

    def _update_value(self, i: int, g: torch.Tensor, local_rate: float, it: int) -> None:
        """ComputeUpdateValue: turn the gradient `g` into the update, in place; advance the history."""
        sp, h = self.sp, self.history[0][i]
        t = self.type
        if t == "SGD":
            h.mul_(sp.momentum).add_(g, alpha=local_rate)
            g.copy_(h)
        elif t == "Nesterov":
            before = h.clone()
            h.mul_(sp.momentum).add_(g, alpha=local_rate)
            g.copy_(h).mul_(f32(1 + sp.momentum)).sub_(before, alpha=sp.momentum)
        elif t in ("AdaGrad", "RMSProp"):
            if t == "AdaGrad":
                h.add_(g * g)
            else:
                h.mul_(sp.rms_decay).add_(g * g, alpha=f32(1 - sp.rms_decay))
            g.div_(torch.sqrt(h).add_(sp.delta)).mul_(local_rate)
        elif t == "AdaDelta":
            u = self.history[1][i]
            h.mul_(sp.momentum).add_(g * g, alpha=f32(1 - sp.momentum))
            g.mul_(torch.sqrt((u + sp.delta) / (h + sp.delta)))
            u.mul_(sp.momentum).add_(g * g, alpha=f32(1 - sp.momentum))
            g.mul_(local_rate)
        elif t == "Adam":
            v = self.history[1][i]
            b1, b2, step = sp.momentum, sp.momentum2, it + 1
            correction = f32(math.sqrt(1 - math.pow(b2, step)) / (1 - math.pow(b1, step)))
            h.mul_(b1).add_(g, alpha=f32(1 - b1))
            v.mul_(b2).add_(g * g, alpha=f32(1 - b2))
            g.copy_(h).div_(torch.sqrt(v).add_(sp.delta)).mul_(f32(local_rate * correction))
        else:
            raise UserError(f"solver type {t!r} is not one Caffe knows")

    # ------------------------------------------------------------------------------------------ state
    def history_arrays(self):
        """Each history blob as (learnable, torch tensor), in the .solverstate's order."""
        for hs in self.history:
            yield from zip(self.blobs, hs, strict=True)

    def load_history(self, blobs, where: str) -> None:
        """History blobs of a .solverstate (flat float32 arrays, Caffe's order) into this solver."""
        want = len(self.history) * len(self.blobs)
        if len(blobs) != want:
            raise UserError(f"{where}: holds {len(blobs)} history blobs, a {self.type} solver for this net keeps "
                            f"{want}; is it the state of another net or solver type?")
        for k, ((b, h), arr) in enumerate(zip(self.history_arrays(), blobs, strict=True)):
            if arr.size != math.prod(b.shape):
                raise UserError(f"{where}: history blob {k} has {arr.size} values, parameter {b.layer}[{b.index}] "
                                f"has {math.prod(b.shape)}; the state belongs to another net")
            h.copy_(b.from_caffe(arr))
