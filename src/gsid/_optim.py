"""AdamW parameter groups: weight decay on weight matrices only, never on biases, norm weights
(one-dimensional tensors) or codebooks, whose scale is their meaning."""

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
