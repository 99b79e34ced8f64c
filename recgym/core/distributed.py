"""Data-parallel fitting with ``torch.distributed``, launched by ``torchrun`` (or Ray Train).

Recgym's fitters (RecSimu's Algorithm 1, Mult-VAE / Mult-DAE) follow one recipe that keeps
a run on ``W`` processes equal to a run on one process with the same global batch and seed,
up to the order of floating-point sums:

* every rank holds the training data and draws the same global mini-batch order (same
  seed), like ``torch.utils.data.DistributedSampler``, but each global batch of ``B`` users or
  sessions is split into contiguous shards, one per rank (:meth:`DataParallel.shard`);
* each rank averages its loss over its own shard; :meth:`DataParallel.sync_gradients`
  weights the gradients by ``local / B`` and sums them over ranks (one all-reduce of a flat
  buffer), so every rank steps with the gradient of the global-batch mean;
* randomness that one process would draw per batch (dropout masks, latent noise) is drawn
  for the whole global batch on every rank and then sliced, so random streams stay aligned;
* only rank 0 writes checkpoints and reports (:attr:`DataParallel.is_main`).

The process group uses gloo on CPU and NCCL when CUDA is available; ranks, world size and
the rendezvous come from the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), or from a group already set up (Ray
Train). Without either (or with one process) nothing is initialised and the fitters run
exactly as before. The fitters keep their tensors on the CPU; with NCCL the gradients
travel through the rank's GPU for the all-reduce.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


def torchrun_world_size() -> int:
    """``WORLD_SIZE`` as set by ``torchrun`` (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True unless ``torchrun`` started this process with ``RANK`` > 0 (CLI reports once)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel group and the collectives the fitters need.

    Attributes:
        rank: global rank of this process.
        world_size: number of processes.
        device: where collectives run (``cuda:LOCAL_RANK`` with NCCL, else CPU).
    """

    rank: int
    world_size: int
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that writes checkpoints and reports."""
        return self.rank == 0

    def shard(self, total: int) -> slice:
        """This rank's contiguous part of a global batch of ``total`` rows (may be empty)."""
        return slice(total * self.rank // self.world_size,
                     total * (self.rank + 1) // self.world_size)

    def sync_gradients(self, parameters: Iterable[torch.nn.Parameter], rows: slice,
                       total: int) -> None:
        """Replace each rank's shard-mean gradients by the gradient of the global-batch mean.

        Args:
            parameters: the parameters the next optimiser step updates (same order on
                every rank); those without a gradient on every rank are left without one.
            rows: this rank's shard (from :meth:`shard`); its loss was a mean over it.
            total: size of the global batch.
        """
        params = [p for p in parameters if p.grad is not None]
        if not params:
            return
        local = rows.stop - rows.start
        flat = torch.cat([p.grad.reshape(-1) for p in params]).to(self.device)
        # An empty shard has a NaN mean loss; it contributes nothing to the global mean.
        flat = flat * (local / total) if local else torch.zeros_like(flat)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat = flat.to(params[0].grad.device)
        offset = 0
        for p in params:
            size = p.grad.numel()
            p.grad.copy_(flat[offset:offset + size].view_as(p.grad))
            offset += size

    def sum(self, totals: dict[str, float]) -> dict[str, float]:
        """Sum of each value over the ranks (one all-reduce), the same result on every rank."""
        values = torch.tensor(list(totals.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return dict(zip(totals, values.tolist(), strict=True))


def local_rows(parallel: DataParallel | None, total: int) -> slice:
    """Rows of a global batch of ``total`` that this process trains on (all without a group)."""
    return slice(0, total) if parallel is None else parallel.shard(total)


def shard_share(value: float, rows: slice, total: int) -> float:
    """A shard's mean statistic times the shard's share of the global batch (0 if empty).

    Summed over ranks (:meth:`DataParallel.sum`) these give the global-batch mean; in a
    single process the share is 1 and ``value`` comes back unchanged.
    """
    local = rows.stop - rows.start
    return value * (local / total) if local else 0.0


def init_data_parallel(backend: str | None = None) -> DataParallel | None:
    """Join the data-parallel process group; None when this is a single-process run.

    A group set up already (e.g. by a Ray Train ``TorchTrainer`` worker) is used as it is;
    otherwise one is initialised from ``torchrun``'s variables when ``WORLD_SIZE > 1``.

    Args:
        backend: ``gloo`` or ``nccl`` for a new group; default NCCL if CUDA is available,
            else gloo.

    Raises:
        RuntimeError: ``WORLD_SIZE > 1`` but the rendezvous variables are missing (the
            process was not started by ``torchrun``).
    """
    if not dist.is_initialized():
        world_size = torchrun_world_size()
        if world_size <= 1:
            return None
        missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT")
                   if name not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={world_size} but {missing} are not set: launch "
                               "with `torchrun --nproc-per-node N ...` (or unset WORLD_SIZE)")
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if dist.get_world_size() <= 1:
        return None
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return DataParallel(dist.get_rank(), dist.get_world_size(), device)
