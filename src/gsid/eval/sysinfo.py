"""Provenance of a benchmark run: command line, git commit, date, machine; and memory probes.

Memory is read from /proc (Linux) rather than psutil, to keep the dependency list short.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib.util
import logging
import os
import platform
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# ---------------------------------------------------------------------------------- provenance
def git_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None} of the git checkout holding `path`
    (default: the gsid source tree). None values when git or the repository is absent."""
    if path is None:
        import gsid

        path = Path(gsid.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        logger.debug("no git information for %s: %s", path, e)
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, cores, RAM, Python / numpy / torch versions, torch threads, GPUs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    ram = _ram_bytes()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gb": round(ram / 2**30, 1) if ram else None,
    }
    import numpy

    info["numpy"] = numpy.__version__
    if importlib.util.find_spec("torch") is not None:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        else:
            info["gpus"] = []
    return info


def run_metadata(command: str | None = None) -> dict[str, Any]:
    """Command line (default: sys.argv), gsid version, git commit, UTC date and machine."""
    import gsid

    if command is None:
        command = shlex.join(sys.argv)
    return {
        "command": command,
        "gsid_version": gsid.__version__,
        "git": git_info(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }


# ---------------------------------------------------------------------------------- memory
def current_rss() -> int | None:
    """Resident set size of this process in bytes (None where /proc is unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """Context manager: peak RSS increase over a block, in bytes (`.increase`, None if unknown).

    Uses the kernel's high-water mark (VmHWM, reset at entry) when it can be reset, which sees
    every peak; a sampler thread on /proc/self/statm backs it up where the reset is refused
    (it can miss short peaks, and GIL-holding code delays it). The increase is measured from
    `baseline` (bytes) when given, else from the RSS at entry (after a garbage collection when
    `collect`). Blocks must not nest: the high-water mark is process-wide.
    """

    def __init__(
        self, baseline: int | None = None, interval_s: float = 0.005, collect: bool = True
    ) -> None:
        self.baseline = baseline
        self.interval_s = interval_s
        self.collect = collect
        self.peak: int | None = None
        self.increase: int | None = None

    def __enter__(self) -> PeakRSS:
        if self.collect:
            gc.collect()  # so garbage of earlier work does not count as this block's memory
        start = current_rss()
        if self.baseline is None:
            self.baseline = start
        self._peak_sampled = start or 0
        self._hwm_ok = _reset_hwm()
        self._stop = threading.Event()
        self._thread = None
        if start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss()
            if rss is not None and rss > self._peak_sampled:
                self._peak_sampled = rss

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.baseline is None:
            return
        end = current_rss() or 0
        hwm = _read_hwm() if self._hwm_ok else None
        self.peak = max(self._peak_sampled, end, hwm or 0)
        self.increase = max(0, self.peak - self.baseline)
