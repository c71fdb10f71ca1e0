"""The one provenance and output helper of every benchmark script: each result records the
command, commit, date, machine and seed, and is written as JSON + Markdown side by side
(atomically, so an interrupted run never leaves half a results file)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gsid._io import atomic_write_text
from gsid.eval.sysinfo import run_metadata


def provenance(seed: int | None = None, command: str | None = None) -> dict[str, Any]:
    """command (default: this process's command line), commit, date, machine and seed."""
    meta = run_metadata(command or "python " + shlex.join(sys.argv))
    git = meta["git"]
    commit = (git.get("commit") or "unknown")[:12] + ("+dirty" if git.get("dirty") else "")
    m = meta["machine"]
    machine = (
        f"{m.get('cpu')}, {m.get('usable_cores')} cores, {m.get('ram_gb')} GB, {m.get('platform')}"
    )
    return {"command": meta["command"], "commit": commit, "date": meta["date"],
            "machine": machine, "seed": seed, "gsid_version": meta["gsid_version"]}  # fmt: skip


def provenance_markdown(p: dict[str, Any]) -> list[str]:
    """Markdown bullet lines of a provenance() record (or of a result it was merged into)."""
    return [
        f"- command: `{p.get('command')}`",
        f"- commit: {p.get('commit')}; date (UTC): {p.get('date')}; gsid {p.get('gsid_version')}",
        f"- machine: {p.get('machine')}",
        f"- seed: {p.get('seed')}",
    ]


def write_results(
    json_path: str | Path,
    result: dict[str, Any],
    markdown: str,
    *,
    default: Callable[[Any], Any] = str,
) -> tuple[Path, Path]:
    """Write `result` as JSON and `markdown` beside it (same stem, .md). `default`: how
    json.dumps writes values it cannot (str; float for scripts whose results hold numpy
    floats)."""
    json_path = Path(json_path)
    md_path = json_path.with_suffix(".md")
    atomic_write_text(json_path, json.dumps(result, indent=2, default=default) + "\n")
    atomic_write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    return json_path, md_path


def write_bench_results(
    out_dir: str | Path,
    stem: str,
    title: str,
    command: str,
    result: Any,
    extra: dict[str, Any],
    heading: str = "Extra",
    seed: int | None = 0,
) -> Path:
    """A gsid.eval.bench result with provenance and a JSON `extra` section, as
    out_dir/stem.json + .md (the bench tables, then `heading` and `extra`)."""
    from gsid.eval.report import render_markdown

    prov = provenance(seed=seed, command=command)
    md = [f"# {title}", "", *provenance_markdown(prov), "", render_markdown(result), "",
          f"## {heading}", "", "```json", json.dumps(extra, indent=1, default=float), "```"]  # fmt: skip
    out = Path(out_dir) / f"{stem}.json"
    write_results(out, {**prov, "bench": result.to_dict(), "extra": extra}, "\n".join(md),
                  default=float)  # fmt: skip
    print(f"wrote {out}")
    return out
