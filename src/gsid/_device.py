"""Device and thread helpers: where tensors run (chosen at run time) and how many threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def pick_device(device: str | None = None) -> str:
    """`device` when given, else "cuda" when a GPU is present, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (n = 0: unchanged), then restore it."""
    import torch

    if n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
