"""Progress that follows the caller's wish: a bar on a terminal; when stderr is not a terminal
(a log file, CI, nohup), one plain line per stage and per 10% of a long loop (at most one line
every GSID_PROGRESS_INTERVAL seconds, default 5, so quick loops stay silent), so a log shows that
long work moves; nothing with `show_progress=False`, `--no-progress` or GSID_NO_PROGRESS=1."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_mode(show_progress: bool | None = None) -> str:
    """'bar', 'lines' or 'off'. `None` means: a bar on a terminal, lines elsewhere, unless
    GSID_NO_PROGRESS is set."""
    if show_progress is not None:
        return "bar" if show_progress else "off"
    if os.environ.get("GSID_NO_PROGRESS"):
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


def progress_enabled(show_progress: bool | None = None) -> bool:
    """Whether to draw a bar (libraries that draw their own take this)."""
    return progress_mode(show_progress) == "bar"


def stage(message: str, show_progress: bool | None = None) -> None:
    """One line saying which long step starts (not on a terminal, where bars say it)."""
    if progress_mode(show_progress) == "lines":
        print(f"gsid: {message}", file=sys.stderr, flush=True)


class LineProgress:
    """tqdm's small interface (update, set_postfix, close, iteration), written as lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None,
                 desc: str | None = None, **_: Any) -> None:  # fmt: skip
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.n = total, desc or "working", 0
        self.t0 = self._last = time.perf_counter()
        self._shown = 0
        self._post = ""
        self.interval = float(os.environ.get("GSID_PROGRESS_INTERVAL", "5"))

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        if self.total:
            tenth = min(10, int(10 * self.n / self.total))
            if tenth > self._shown:
                self._shown = tenth
                self._emit(f"{10 * tenth}% ({self.n:,}/{self.total:,})", now)
        else:
            self._emit(f"{self.n:,} done", now)

    def _emit(self, what: str, now: float) -> None:
        self._last = now
        post = f" {self._post}" if self._post else ""
        print(f"gsid: {self.desc}: {what}{post}, {now - self.t0:.0f} s", file=sys.stderr,
              flush=True)  # fmt: skip

    def set_postfix(self, *args: Any, **kw: Any) -> None:
        self._post = ", ".join([*map(str, args), *(f"{k}={v}" for k, v in kw.items())])

    def set_postfix_str(self, s: str) -> None:
        self._post = s

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        """A closing line for a loop that already printed one (so the log says it ended)."""
        if self._last > self.t0 and (self.total is None or self._shown < 10):
            done = f"{self.n:,} done" if self.total is None else f"100% ({self.n:,}/{self.total:,})"
            self._emit(done, time.perf_counter())
            self._shown = 10

    def __iter__(self) -> Iterator:
        for x in self.iterable if self.iterable is not None else ():
            yield x
            self.update(1)
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int | None = None, desc: str | None = None,
                 show_progress: bool | None = None, **kw: Any):  # fmt: skip
    """A bar to `.update(n)` by hand (tqdm on a terminal, lines elsewhere, or silent)."""
    mode = progress_mode(show_progress)
    if mode == "lines":
        return LineProgress(total=total, desc=desc)
    return tqdm(total=total, desc=desc, disable=mode == "off", leave=False, **kw)


def progress(iterable: Iterable[T], show_progress: bool | None = None, **kw: Any) -> Iterable[T]:
    mode = progress_mode(show_progress)
    if mode == "lines":
        return LineProgress(iterable, **kw)
    return tqdm(iterable, disable=mode == "off", leave=False, **kw)
