"""Data-parallel training across processes started by `torchrun` (NCCL on GPUs, gloo on CPU).

Each process draws its own batches; gradients are averaged with one all-reduce per network
per step. We average explicitly instead of wrapping the networks in DistributedDataParallel
because the discriminator runs three forward passes per step (real, fake, and the generator's
pass), a pattern DDP's autograd hooks do not support without re-entrancy tricks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[DistInfo, torch.device]:
    """Join the process group if launched by torchrun; returns (info, this process's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(), _device(device, 0)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    torch_dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local), dev


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if info.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            torch_dist.broadcast(t.data, src=0)


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of `module` as one flat bucket."""
    if info.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch_dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_gather_object(obj, info: DistInfo) -> list:
    """Every process's `obj` (picklable), indexed by rank; [obj] when not distributed."""
    if info.world == 1:
        return [obj]
    out: list = [None] * info.world
    torch_dist.all_gather_object(out, obj)
    return out


def any_process(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process if `flag` is true on any: keeps per-process decisions (wall-clock
    limits) in step, so no process leaves the loop while the others wait in an all-reduce."""
    if info.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        torch_dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.world > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
