"""Progress bars that follow the caller's wish and stay quiet when not on a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(show_progress: bool | None = None) -> bool:
    """`None` means: on when stderr is a terminal and GSID_NO_PROGRESS is unset."""
    if show_progress is not None:
        return show_progress
    if os.environ.get("GSID_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], show_progress: bool | None = None, **kw: Any) -> Iterable[T]:
    return tqdm(iterable, disable=not progress_enabled(show_progress), leave=False, **kw)
