"""Running a training stage under ``torchrun``: one process per GPU (or per CPU share), on one
node or several (torchrun's usual ``--nnodes``/``--rdzv-*`` arguments).

``init_distributed`` reads the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: NCCL for CUDA,
gloo otherwise. Without torchrun (``WORLD_SIZE`` unset or 1) it returns the single-process
``Rank`` and nothing else changes, so a plain ``python stages/...`` run is the one it always was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    """This process's place in the job: ``index`` of ``world`` processes."""

    index: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes logs, checkpoints and outputs."""
        return self.index == 0

    def rows(self, n: int) -> slice:
        """This process's contiguous share of ``n`` rows (the first ``n % world`` get one more)."""
        if n < self.world:
            raise ValueError(f"{n} rows cannot be shared by {self.world} processes: give each "
                             "process at least one (a larger batch, or fewer processes)")
        size, extra = divmod(n, self.world)
        start = self.index * size + min(self.index, extra)
        return slice(start, start + size + (self.index < extra))


def init_distributed(device: str) -> tuple[Rank, str]:
    """Join torchrun's process group when there is one. Returns (rank, device): under torchrun
    with CUDA each process takes the GPU of its ``LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Rank(), device
    cuda = device.startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size()), device


def all_sum(tensor: torch.Tensor, rank: Rank) -> torch.Tensor:
    """The sum of ``tensor`` over the processes (the tensor itself in a single process)."""
    if rank.world > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def gather(obj, rank: Rank) -> list:
    """Every process's ``obj``, in rank order (``[obj]`` in a single process)."""
    if rank.world == 1:
        return [obj]
    out = [None] * rank.world
    dist.all_gather_object(out, obj)
    return out


def barrier(rank: Rank) -> None:
    if rank.world > 1:
        dist.barrier()


def broadcast(obj, rank: Rank):
    """The main process's ``obj`` in every process."""
    if rank.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
