"""Multi-process training helpers (torchrun DDP): gloo on CPU, nccl on GPU.

    torchrun --nproc_per_node 2 -m gsid.models.train --data runs/data/hd --out runs/gsid

Every rank runs the same deterministic batch schedule and takes its slice of each global batch;
the representations of all ranks are gathered with the autograd-aware
`torch.distributed.nn.functional.all_gather`, so the contrastive loss sees the global batch and
its gradient flows back to the rank that produced each representation. Each rank then holds
W x (its share of d loss / d theta); `average_gradients` (sum / W) leaves every rank with the
exact single-process gradient of the global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: str | None = None) -> bool:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return is_distributed()
    backend = "nccl" if (device or "").startswith("cuda") and torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x (B_local, ...) of all ranks along dim 0, gradient-correctly."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), 0)


def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


def average_gradients(params) -> None:
    """Sum / W over ranks (see module doc: leaves the global-batch gradient on every rank)."""
    if not is_distributed():
        return
    W = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(W)


def shard(n: int) -> slice:
    """This rank's slice of a global batch of n rows (n divisible by the world size)."""
    W, r = world_size(), rank()
    per = n // W
    return slice(r * per, (r + 1) * per)


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()
