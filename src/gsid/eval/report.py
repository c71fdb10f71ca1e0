"""Write a BenchResult as JSON (for machines) and Markdown (for people), or a terminal table.

    json_path, md_path = write_report(result, "runs/bench")   # runs/bench/bench.{json,md}
    print(format_table(result))                                # overall table, plain text

Quality metrics are stored as fractions in the JSON and shown as percentages (2 decimals) in
tables.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

from gsid._io import atomic_write_text
from gsid.errors import ArtifactError
from gsid.eval.bench import BenchResult
from gsid.eval.metrics import BUCKET_ORDER

REPORT_VERSION = 1
MISSING = "–"  # noqa: RUF001 (en dash: the tables' missing-value mark)


# ---------------------------------------------------------------------------------- formatting
def _pct(x: Any) -> str:
    return MISSING if x is None else f"{100 * x:.2f}"


def _num(x: Any, digits: int) -> str:
    return MISSING if x is None else f"{x:,.{digits}f}"


def _overall_columns(result: BenchResult) -> list[tuple[str, Any]]:
    """(header, function(MethodResult) -> cell) for the overall table."""
    ks = result.ks
    mrr = f"MRR@{ks[-1]}"
    cols: list[tuple[str, Any]] = [("method", lambda m: m.name)]
    for k in ks:
        cols.append((f"R@{k}", lambda m, k=k: _pct(m.metrics.get("overall", {}).get(f"R@{k}"))))
    cols.append((mrr, lambda m: _pct(m.metrics.get("overall", {}).get(mrr))))
    batch = result.settings.get("batch_size", 64)
    for header, key, digits in (
        ("p50 ms", "p50_ms", 2),
        ("p99 ms", "p99_ms", 2),
        (f"QPS@{batch}", "qps", 1),
        ("bytes/item", "bytes_per_item", 1),
        ("peak MB", "peak_mb", 1),
        ("index s", "index_s", 2),
    ):
        cols.append((header, lambda m, key=key, d=digits: _num(m.systems.get(key), d)))
    return cols


def _rows(result: BenchResult, cols: list[tuple[str, Any]]) -> list[list[str]]:
    rows = []
    for m in result.methods.values():
        if m.error:
            rows.append([m.name, f"failed: {m.error}"] + [""] * (len(cols) - 2))
        else:
            rows.append([fn(m) for _, fn in cols])
    return rows


def _extra_section(result: BenchResult) -> list[str]:
    """Code agreement and item -> item metrics of the methods that have them."""
    have = [m for m in result.methods.values() if m.extra]
    if not have:
        return []
    ks, mrr = result.ks, f"MRR@{result.ks[-1]}"
    headers = ["method", "l1 code acc.", "l2 code acc."]
    headers += [f"i2i R@{k}" for k in ks] + [f"i2i {mrr}"]
    rows = []
    for m in have:
        acc, i2i = m.extra.get("code_accuracy", {}), m.extra.get("i2i", {})
        rows.append(
            [m.name, _pct(acc.get("l1")), _pct(acc.get("l2"))]
            + [_pct(i2i.get(f"R@{k}")) for k in ks]
            + [_pct(i2i.get(mrr))]
        )
    return [
        "## Codes and item neighbours",
        "",
        "l1 / l2: share of (query, relevant item) pairs whose first one / two codes agree; i2i: "
        "item -> item retrieval with the method's item vectors (`i2i=True`).",
        "",
        _markdown_table(headers, rows),
        "",
    ]


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_table(result: BenchResult) -> str:
    """The overall table as aligned plain text, for a terminal."""
    cols = _overall_columns(result)
    headers = [h for h, _ in cols]
    rows = _rows(result, cols)
    widths = [
        max([len(h)] + [len(r[i]) for r in rows if not r[1].startswith("failed:")])
        for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        if len(cells) > 1 and cells[1].startswith("failed:"):
            return cells[0].ljust(widths[0]) + "  " + cells[1]
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _bucket_counts(result: BenchResult, bucket: str) -> int | None:
    for m in result.methods.values():
        if bucket in m.metrics:
            return m.metrics[bucket].get("n")
    return None


def _bucket_names(result: BenchResult) -> list[str]:
    names = list(BUCKET_ORDER)
    for m in result.methods.values():
        names += [b for b in m.metrics if b != "overall" and b not in names]
    return [b for b in names if _bucket_counts(result, b) is not None]


def _machine_line(machine: dict[str, Any]) -> str:
    parts = [
        machine.get("cpu") or "unknown CPU",
        f"{machine.get('cores')} cores ({machine.get('usable_cores')} usable)",
        f"{machine.get('ram_gb')} GiB RAM",
    ]
    if "torch" in machine:
        parts.append(f"torch {machine['torch']} ({machine.get('torch_threads')} threads)")
    gpus = machine.get("gpus")
    parts.append("GPU: " + (", ".join(gpus) if gpus else "none"))
    parts.append(f"Python {machine.get('python')}, {machine.get('platform')}")
    return "; ".join(parts)


def _sample_note(result: BenchResult) -> str:
    total = result.settings.get("queries_with_expected")
    if total is None or total == result.n_queries:
        return ""
    return f" (a seeded sample of {total})"


def render_markdown(result: BenchResult) -> str:
    """The full Markdown report: provenance, overall table, one table per bucket, errors."""
    meta, ds, st = result.meta, result.dataset, result.settings
    git = meta.get("git") or {}
    commit = git.get("commit")
    commit_s = MISSING if not commit else commit[:12] + (" (dirty)" if git.get("dirty") else "")
    q = ds.get("queries", {})
    qs = ", ".join(f"{n} {s}" for s, n in q.items()) if isinstance(q, dict) else str(q)
    lines = [
        f"# gsid bench — {ds.get('name', 'dataset')} / {result.split}",
        "",
        f"- command: `{meta.get('command', MISSING)}`",
        f"- gsid {meta.get('gsid_version', MISSING)}, git commit: {commit_s}",
        f"- date (UTC): {meta.get('date', MISSING)}",
        f"- machine: {_machine_line(meta.get('machine') or {})}",
        f"- dataset: {ds.get('name')} — {ds.get('items')} items; queries: {qs}; "
        f"{ds.get('log_rows')} log rows; {ds.get('judgments')} judgments",
        f"- evaluated: {result.n_queries} queries of split `{result.split}` with expected items"
        f"{_sample_note(result)} ({result.n_no_expected} without any left out)",
        f"- settings: k={result.k}, batch {st.get('batch_size')}, latency sample "
        f"{st.get('latency_sample')}, warm-up {st.get('warmup')}, seed {st.get('seed')}, "
        f"timing {'on' if st.get('timing', True) else 'off'}",
        "",
        "## Overall",
        "",
    ]
    cols = _overall_columns(result)
    lines += [_markdown_table([h for h, _ in cols], _rows(result, cols)), ""]
    lines += _extra_section(result)
    mrr = f"MRR@{result.ks[-1]}"
    bucket_ks = result.ks[-2:]  # the two deepest cut-offs: R@1 is too coarse per bucket
    for bucket in _bucket_names(result):
        n = _bucket_counts(result, bucket)
        lines += [f"## {bucket.capitalize()} queries (n = {n})", ""]
        headers = ["method"] + [f"R@{k}" for k in bucket_ks] + [mrr]
        rows = []
        for m in result.methods.values():
            if m.error:
                rows.append([m.name, "failed"] + [""] * len(bucket_ks))
                continue
            b = m.metrics.get(bucket, {})
            rows.append([m.name] + [_pct(b.get(f"R@{k}")) for k in bucket_ks] + [_pct(b.get(mrr))])
        lines += [_markdown_table(headers, rows), ""]
    if result.errors:
        lines += ["## Errors", ""]
        lines += [f"- **{name}**: `{err}`" for name, err in result.errors.items()]
        lines.append("")
    lines += [
        "## Definitions",
        "",
        "R@k: share of a query's expected items found in its top k, averaged over queries; "
        f"{mrr}: mean reciprocal rank of the first expected item within the top "
        f"{result.ks[-1]} (0 if none); both in percent. p50/p99 ms: latency of single-query "
        f"`search([q], k={result.k})` calls; QPS@{st.get('batch_size')}: queries per second "
        f"when searching in batches; bytes/item: index bytes (without shared model weights) per "
        f"catalogue item; peak MB: largest RSS increase while building, indexing and searching; "
        f"index s: indexing wall time (– when the retriever came already indexed).",  # noqa: RUF001 (en dash as in the table)
        "",
    ]
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def report_dict(result: BenchResult) -> dict[str, Any]:
    """The JSON document: {"report_version": 1, **result.to_dict()}, JSON-safe."""
    return _clean({"report_version": REPORT_VERSION, **result.to_dict()})


def write_report(
    result: BenchResult,
    directory: str | os.PathLike,
    command: str | None = None,
    stem: str = "bench",
) -> tuple[Path, Path]:
    """Write `<directory>/<stem>.json` and `<directory>/<stem>.md` atomically; return both paths.

    command: the command line to record instead of the one captured by run_bench.
    """
    if command is not None:
        result = copy.copy(result)
        result.meta = {**result.meta, "command": command}
    directory = Path(directory)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    text = json.dumps(
        report_dict(result), indent=2, ensure_ascii=False, allow_nan=False, default=str
    )
    atomic_write_text(json_path, text + "\n")
    atomic_write_text(md_path, render_markdown(result))
    return json_path, md_path


def load_report(path: str | os.PathLike) -> BenchResult:
    """Read a report JSON back into a BenchResult (rankings are not stored, so `results` is None)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("report_version") != REPORT_VERSION:
            raise ArtifactError(
                f"{path} has report version {d.get('report_version')!r}, this gsid reads "
                f"{REPORT_VERSION}; run the bench again"
            )
        return BenchResult.from_dict(d)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ArtifactError(
            f"{path} is not a readable gsid bench report ({e}); run the bench "
            f"again or pass the .json that write_report wrote"
        ) from e
