"""torch.distributed for both PyTorch trainers (`solve --engine torch`, `fcnkit train`) under `torchrun`.

`from_env(device)` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT: the env://
rendezvous, so several machines work through `torchrun --nnodes`) and joins the process group: gloo on
the CPU, NCCL on CUDA (each rank on cuda:LOCAL_RANK), with a timeout (`config.stages.DIST_TIMEOUT_S`) so a
rank that dies stops the others instead of hanging them. Without torchrun it is one process (`Dist()`),
and every helper is the identity: one code path for one process and many.

Caffe's multi-GPU semantics, which both trainers follow: every rank runs the solver's batch on its own
shard of the data (`keeps(i)`: record i goes to rank i mod N, so each group of N x B consecutive records is
one step's data), gradients are averaged (`wrap`: DistributedDataParallel), so N ranks train as one
process with N x the batch; rank 0 (`is_main`) alone logs, validates and writes snapshots.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as td
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fcnkit.config.stages import DIST_TIMEOUT_S
from fcnkit.errors import UserError

# What a collective raises when a peer is gone (connection closed, timeout) or the rendezvous fails; only
# read as "lost contact" in a multi-rank job.
LOST = (td.DistError, RuntimeError)  # gloo: a RuntimeError "Connection reset by peer"


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank of world (one process: 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def keeps(self, i: int) -> bool:
        """Whether record `i` of the data stream is this rank's (Caffe's DataLayer::Skip: i mod N)."""
        return i % self.world == self.rank

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """`module` under DistributedDataParallel (gradients averaged over the ranks in backward; rank 0's
        parameters broadcast first), or `module` itself in one process. Buffers (BatchNorm statistics) stay
        each rank's own, as in Caffe; rank 0's are the ones snapshotted."""
        if not self.active:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks (the logged loss: the loss of the whole N x B batch)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        td.all_reduce(t)
        return float(t[0]) / self.world

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (e.g. its validation figures, which decide plateaus)."""
        if not self.active:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def lost(self, exc: BaseException, resume_hint: str) -> UserError:
        """The one line for a collective that failed: a rank died or stopped answering."""
        text = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip())  # gloo's "[.../pair.cc:537] " source prefix
        first = re.split(r"\.\s|\n", text)[0].rstrip(".") if text else type(exc).__name__
        return UserError(f"rank {self.rank} of {self.world}: lost contact with the other ranks ({first[:160]}); "
                         f"the job stops; {resume_hint}")

    def close(self) -> None:
        if self.active and td.is_initialized():
            td.destroy_process_group()


def from_env(device: str | None) -> tuple[Dist, str | None]:
    """Join torchrun's process group if WORLD_SIZE > 1: (Dist, the device this rank trains on).

    `device` is the command's --device: cpu (gloo) or cuda (NCCL; each rank on cuda:LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist(), device
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    name = device or "cpu"
    if name.startswith("cuda"):
        if ":" in name:
            raise UserError(f"--device {name}: under torchrun each rank takes cuda:LOCAL_RANK; pass --device cuda")
        if not torch.cuda.is_available() or local >= torch.cuda.device_count():
            raise UserError(f"--device cuda: rank {rank} (local rank {local}) has no CUDA device "
                            f"({torch.cuda.device_count()} visible); start fewer ranks per node (--nproc_per_node)")
        torch.cuda.set_device(local)
        name, backend = f"cuda:{local}", "nccl"
    elif name == "cpu":
        backend = "gloo"
    else:
        raise UserError(f"--device {name}: use cpu or cuda")
    if not td.is_available():
        raise UserError("this PyTorch build has no torch.distributed; run one process (without torchrun)")
    timeout = timedelta(seconds=float(os.environ.get("FCNKIT_DIST_TIMEOUT", DIST_TIMEOUT_S)))
    try:
        td.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=timeout)
    except (*LOST, ValueError) as exc:  # ValueError: env:// without MASTER_ADDR/MASTER_PORT
        raise UserError(f"rank {rank} of {world}: could not join the process group at "
                        f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} ({exc}); start every "
                        "rank with the same torchrun --rdzv-endpoint / --master_addr") from None
    return Dist(rank, world, local), name
