"""Reading one user file (CSV, TSV, JSONL, Parquet) into a DataFrame of strings, with errors
that name the file, the line and the fix: encoding, format, quoting, a header-only or empty
file, rows with more fields than the header."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gsid.errors import DataValidationError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip


@dataclass
class Source:
    """One input file and how to read it.

    mapping: gsid column -> column in the file, for the columns whose names differ.
    fmt: csv | tsv | jsonl | parquet (default: from the file suffix).
    quoting: "standard" (CSV quoting with doubled quotes) or "none" (tabs/commas never quoted).
    category_columns: file columns joined into one category path, top level first.
    attribute_columns: file columns packed into the JSON `attributes` of each item.
    """

    path: str | os.PathLike
    mapping: dict[str, str] = field(default_factory=dict)
    fmt: str | None = None
    quoting: str = "standard"
    category_columns: list[str] = field(default_factory=list)
    attribute_columns: list[str] = field(default_factory=list)


def _row_ref(fmt: str, i: int) -> str:
    """Human reference of 0-based data row i: file lines are 1-based and CSV/TSV have a header."""
    if fmt in ("csv", "tsv"):
        return f"row {i + 1} (line {i + 2})"
    if fmt == "jsonl":
        return f"row {i + 1} (line {i + 1})"
    return f"row {i + 1}"


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataValidationError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}). gsid reads UTF-8 only: re-encode the file, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}`."
        ) from None


def read_raw(src: Source) -> tuple[pd.DataFrame, str]:
    """Read a file into a DataFrame of strings; return it with its format."""
    path, fmt = _check_source(src)
    if fmt == "parquet":
        return _read_parquet(path, fmt), fmt
    text = _decode(path)
    if fmt == "jsonl":
        return _read_jsonl(path, text), fmt
    return _read_delimited(path, text, fmt, src.quoting), fmt


def _check_source(src: Source) -> tuple[Path, str]:
    """The path of `src` once it names a non-empty file, and its format."""
    path = Path(src.path)
    if path.is_dir():
        raise DataValidationError(f"{path} is a directory; pass the data file itself.")
    if not path.is_file():
        raise DataValidationError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path} is empty (0 bytes); pass a file with a header and rows.")
    fmt = src.fmt or FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "tsv", "jsonl", "parquet"):
        raise DataValidationError(
            f"{path}: cannot tell the format from suffix {path.suffix!r}; pass fmt= one of "
            f"csv, tsv, jsonl, parquet (CLI: --format)."
        )
    if src.quoting not in ("standard", "none"):
        raise DataValidationError(f"quoting must be 'standard' or 'none', got {src.quoting!r}")
    return path, fmt


def _read_parquet(path: Path, fmt: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        df = pq.read_table(path).to_pandas()
    except Exception as e:  # pyarrow raises several types for bad files
        raise DataValidationError(f"{path}: not a readable Parquet file ({e}).") from e
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, bytes)).any():
            _decode_bytes_column(df, c, path, fmt)
    return df


def _decode_bytes_column(df: pd.DataFrame, c, path: Path, fmt: str) -> None:
    """Decode the UTF-8 bytes values of column `c` in place."""
    for i, v in enumerate(df[c]):
        if isinstance(v, bytes):
            try:
                df.at[i, c] = v.decode("utf-8")
            except UnicodeDecodeError:
                raise DataValidationError(
                    f"{path}: {_row_ref(fmt, i)}, column {c!r} is not valid UTF-8; "
                    f"store text columns as UTF-8 strings."
                ) from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataValidationError(
                f"{path}: line {i + 1} is not valid JSON ({e.msg})."
            ) from None
        if not isinstance(obj, dict):
            raise DataValidationError(
                f"{path}: line {i + 1} must be a JSON object, got {type(obj).__name__}."
            )
        rows.append(obj)
    return pd.DataFrame(rows)


def _read_delimited(path: Path, text: str, fmt: str, quoting_name: str) -> pd.DataFrame:
    sep = "," if fmt == "csv" else "\t"
    quoting = csv.QUOTE_NONE if quoting_name == "none" else csv.QUOTE_MINIMAL
    try:
        with warnings.catch_warnings():
            # more fields than the header: pandas would silently shift the columns
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                quoting=quoting,
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise DataValidationError(_extra_fields(path, text, sep, quoting)) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            f"{path} has no header line; the first line names the columns."
        ) from None
    except (pd.errors.ParserError, csv.Error) as e:
        raise DataValidationError(
            f"{path}: cannot parse as {fmt.upper()} ({e}). Check the delimiter and quoting "
            f"(quoting='none' for files whose fields are never quoted)."
        ) from None


def _extra_fields(path: Path, text: str, sep: str, quoting: int) -> str:
    rows = csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting)
    header = next(rows)
    for line, row in enumerate(rows, start=2):
        if len(row) > len(header):
            return (
                f"{path}: line {line} has {len(row)} fields but the header names {len(header)} "
                f"columns {header}; a field probably holds an unquoted {sep!r}: quote it"
                f"{' (or use --quoting standard)' if quoting == csv.QUOTE_NONE else ''}, or "
                f"add the missing column name to the header."
            )
    return f"{path}: some rows have more fields than the header {header}; fix those rows."
