"""Minimal torch.distributed plumbing for ``torchrun`` (DistributedDataParallel training).

A process launched by torchrun (any world size, 1 included: that is how the GPU check exercises nccl
and DDP on one GPU) joins the process group; a plain process is a no-op context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .devices import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # we initialised the process group, so we destroy it
    in_group: bool = False  # part of a torch.distributed process group (DDP, collectives)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.in_group

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place all-reduce ("sum" | "min" | "max"); returns the tensor."""
        if self.active:
            dist.all_reduce(
                tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op]
            )
        return tensor


def setup(device_name: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the torchrun process group if there is one (nccl on CUDA, gloo on CPU) and pick the
    device: cuda:LOCAL_RANK under torchrun on GPUs."""
    device = resolve_device(device_name)
    launched = all(k in os.environ for k in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"))
    if not launched and not dist.is_initialized():
        return DistContext(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), owns, in_group=True), device


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
