"""Training on several processes (``torchrun``): DistributedDataParallel with the run's meaning kept.

``torchrun --nproc-per-node N -m mcdenoise train …`` runs the same command in N processes. The
contract that makes this a drop-in for the single-process run:

* **One global batch.** ``--batch`` stays the global batch. Every rank draws the whole batch's
  random choices from the same seeded sampler (drawing is a few numbers per crop) and builds
  only its own share of the crops; gradients are averaged across ranks, which for a loss that is
  a mean over the batch is the gradient of the single-process step. Two ranks therefore train
  the weights one process would (to float rounding), and resume stays exact.
* **One decision per step.** Stopping (budget, ``--stop-after``, SIGTERM), checkpointing and
  re-scanning the dataset are decided by rank 0 and broadcast, so ranks never disagree about
  which step is the last or which scenes exist (a disagreement would deadlock or diverge).
* **Rank 0 writes.** Checkpoints, logs, validation and the exported weights come from rank 0;
  every rank resumes from the same checkpoint.

Backends: NCCL with one GPU per process (``cuda:LOCAL_RANK``), gloo on CPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mcdenoise.errors import McDenoiseError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def share(self, batch: int) -> slice:
        """This rank's crops of a global batch."""
        per = batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)


def from_env() -> Ranks:
    """The ranks ``torchrun`` describes in the environment; one process without it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))) if world > 1 else Ranks()
    except ValueError as exc:
        raise McDenoiseError(f"torchrun's RANK/WORLD_SIZE/LOCAL_RANK are not numbers ({exc})") from None


def setup(ranks: Ranks, device: torch.device, batch: int) -> torch.device:
    """Join the process group; the device this rank trains on (its own GPU under NCCL)."""
    if not ranks.distributed:
        return device
    if batch % ranks.world:
        raise McDenoiseError(f"a batch of {batch} crops does not split over {ranks.world} processes; use a multiple of {ranks.world}",
                             fix="train_batch")
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The module the step runs: DDP around ``model`` when distributed (``model`` itself stays
    what checkpoints save)."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def agree(ranks: Ranks, flags: list[bool]) -> list[bool]:
    """Rank 0's ``flags``, on every rank."""
    if not ranks.distributed:
        return flags
    t = torch.tensor([float(f) for f in flags])
    dist.broadcast(t, 0)
    return [bool(v) for v in t.tolist()]


def mean(ranks: Ranks, value: float) -> float:
    """The mean of a number over ranks (the logged loss, and the finite check all ranks share)."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / ranks.world


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def teardown(ranks: Ranks) -> None:
    """Leave the process group while Python is whole. DDP's reducer sits in reference cycles
    and holds the group's work; left to interpreter shutdown, a gloo thread that still frees a
    tensor there aborts the rank ("terminate called without an active exception"). So: collect
    those cycles, let every rank arrive, then destroy the group."""
    if ranks.distributed and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
