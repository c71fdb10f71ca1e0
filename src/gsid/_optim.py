"""AdamW parameter groups: weight decay on weight matrices only, never on biases, norm weights
(one-dimensional tensors) or codebooks, whose scale is their meaning; and the one-cycle
learning-rate schedule the seq2seq models train with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def decay_groups(
    params: Iterable[Any], weight_decay: float, no_decay: Iterable[Any] = (), **group: Any
) -> list[dict[str, Any]]:
    """Two AdamW groups of `params` (extra `group` options, e.g. lr, on both): matrices with
    `weight_decay`; 1-d tensors and the tensors in `no_decay` (e.g. codebooks) without."""
    skip = {id(p) for p in no_decay}
    params = list(params)
    decay = [p for p in params if p.ndim >= 2 and id(p) not in skip]
    rest = [p for p in params if p.ndim < 2 or id(p) in skip]
    return [
        {"params": decay, "weight_decay": weight_decay, **group},
        {"params": rest, "weight_decay": 0.0, **group},
    ]


def one_cycle(opt: Any, max_lr: Any, total_steps: int, pct_start: float = 0.1) -> Any:
    """torch's OneCycleLR over max(total_steps, 1) steps. Its warm-up ends at step
    pct_start * total_steps - 1, and when that is step 0 exactly (10 steps at 0.1: a small
    catalogue, one epoch) torch divides by zero on the first step; the warm-up is then two
    steps long instead."""
    import torch

    n = max(int(total_steps), 1)
    if n > 2 and abs(pct_start * n - 1.0) < 1e-9:
        pct_start = 2.0 / n
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, total_steps=n, pct_start=pct_start
    )
