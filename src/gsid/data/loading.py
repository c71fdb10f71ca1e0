"""Read user files (CSV, TSV, JSONL, Parquet) with a column mapping, validate them, and build a
Dataset. Every error names the file, the row and the fix; nothing is written until all of the
input has passed (the caller saves the finished Dataset atomically)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gsid.data.dataset import Dataset
from gsid.data.normalize import normalize_text
from gsid.data.readers import Source, _row_ref, read_raw
from gsid.data.schema import (
    CATEGORY_SEP,
    ITEMS,
    JUDGMENTS_INPUT,
    LOG_INPUT,
    QUERIES_INPUT,
    SPLITS,
    TableSchema,
)
from gsid.data.splits import BucketRule, check_fractions, hash_split
from gsid.errors import DataValidationError


def read_table(src: Source, schema: TableSchema) -> pd.DataFrame:
    """Read, rename by the mapping and validate one input table against its schema."""
    df, fmt = read_raw(src)
    path = Path(src.path)
    if len(df) == 0:
        raise DataValidationError(
            f"{path} has no data rows (only a header or blank lines); a {schema.name} file needs "
            f"at least one row."
        )
    out = _mapped_columns(df, src, schema, path)
    for c in out.columns:
        if c in schema.numeric:
            continue
        out[c] = (
            out[c]
            .map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            .str.strip()
        )
    _check_nonempty(out, schema, path, fmt)
    _check_max_chars(out, schema, path, fmt)
    _parse_numeric(out, schema, path, fmt)
    _add_packed_columns(out, df, src)
    if "attributes" in out.columns:
        _check_attributes(out["attributes"], path, fmt)
    out.attrs["fmt"] = fmt
    out.attrs["path"] = str(path)
    return out


def _mapped_columns(df: pd.DataFrame, src: Source, schema: TableSchema, path: Path) -> pd.DataFrame:
    """The schema's columns of `df` under their gsid names; every required one must be there."""
    unknown_targets = set(src.mapping) - set(schema.columns)
    if unknown_targets:
        raise DataValidationError(
            f"{path}: the column mapping names {sorted(unknown_targets)}, which a {schema.name} "
            f"does not have; valid gsid columns are {list(schema.columns)}."
        )
    cols = {}
    for ours in schema.columns:
        theirs = src.mapping.get(ours, ours)
        if theirs in df.columns:
            cols[ours] = df[theirs]
        elif ours in schema.required:
            close = difflib.get_close_matches(theirs, [str(c) for c in df.columns], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataValidationError(
                f"{path}: the {schema.name} needs column {theirs!r} (gsid column {ours!r}) but "
                f"the file has {list(map(str, df.columns))}.{hint} Map it with "
                f"{ours}=<your column> (CLI: --map {ours}=<your column>)."
            )
    for extra in src.category_columns + src.attribute_columns:
        if extra not in df.columns:
            raise DataValidationError(
                f"{path}: column {extra!r} named for category/attributes is not in the file; "
                f"the file has {list(map(str, df.columns))}."
            )
    return pd.DataFrame(cols)


def _check_nonempty(out: pd.DataFrame, schema: TableSchema, path: Path, fmt: str) -> None:
    for c in schema.nonempty_text:
        if c not in out.columns:
            continue
        empty = (out[c] == "").to_numpy()
        if empty.any():
            rows = np.flatnonzero(empty)
            raise DataValidationError(
                f"{path}: {_row_ref(fmt, int(rows[0]))} has an empty {c!r} ({len(rows)} such rows"
                f"{', first ' + str([int(r) + 1 for r in rows[:5]]) if len(rows) > 1 else ''}). "
                f"Every {schema.name} row needs a non-empty {c}: fill it in or drop the row."
            )


def _check_max_chars(out: pd.DataFrame, schema: TableSchema, path: Path, fmt: str) -> None:
    for c, limit in schema.max_chars:
        if c not in out.columns:
            continue
        long = (out[c].str.len() > limit).to_numpy()
        if long.any():
            i = int(np.flatnonzero(long)[0])
            raise DataValidationError(
                f"{path}: {_row_ref(fmt, i)} has a {c!r} of {len(out[c].iloc[i]):,} characters, "
                f"more than the limit of {limit:,} ({int(long.sum())} such rows); a broken "
                f"export? Shorten it (long text belongs in the description column)."
            )


def _parse_numeric(out: pd.DataFrame, schema: TableSchema, path: Path, fmt: str) -> None:
    """Turn the schema's numeric columns of `out` into float64 in place (blank: NaN)."""
    for c in schema.numeric:
        if c not in out.columns:
            continue
        raw = out[c]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.map(lambda v: v is not None and str(v).strip() != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataValidationError(
                f"{path}: {_row_ref(fmt, i)} has {c}={raw.iloc[i]!r}, which is not a number."
            )
        out[c] = num.astype("float64")


def _add_packed_columns(out: pd.DataFrame, df: pd.DataFrame, src: Source) -> None:
    """Join the category columns of `df` into `category` and pack its attribute columns into
    JSON `attributes`, in place."""
    if src.category_columns:
        parts = df[src.category_columns].astype(str).map(str.strip)
        out["category"] = [
            CATEGORY_SEP.join(p for p in row if p) for row in parts.itertuples(index=False)
        ]
    if src.attribute_columns:
        attrs = df[src.attribute_columns].astype(str)
        out["attributes"] = [
            json.dumps(
                {k: v for k, v in zip(src.attribute_columns, row, strict=True) if v.strip()},
                ensure_ascii=False,
            )
            for row in attrs.itertuples(index=False)
        ]


def _check_attributes(attributes: pd.Series, path: Path, fmt: str) -> None:
    for i, a in enumerate(attributes):
        if a and not isinstance(_try_json(a), dict):
            raise DataValidationError(
                f"{path}: {_row_ref(fmt, i)} has attributes {a[:60]!r}, which is not a JSON "
                f'object; write attributes as {{"name": "value", ...}}.'
            )


def _try_json(s: str):
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return None


def _check_unique(df: pd.DataFrame, col: str, what: str) -> None:
    dup = df[col].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        value = df[col].iloc[rows[0]]
        same = [int(r) for r in rows if df[col].iloc[r] == value][:5]
        raise DataValidationError(
            f"{df.attrs.get('path', what)}: duplicate {col} {value!r} at "
            f"{', '.join(_row_ref(df.attrs.get('fmt', ''), r) for r in same)} "
            f"({int(dup.sum())} rows share an id with another). Each {what} needs a unique "
            f"{col}: drop or merge the duplicates."
        )


def _check_known_items(df: pd.DataFrame, known: set[str], what: str) -> None:
    bad = ~df["item_id"].isin(known).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"{df.attrs.get('path', what)}: {_row_ref(df.attrs.get('fmt', ''), i)} of the {what} "
            f"names item {df['item_id'].iloc[i]!r}, which is not in the catalogue "
            f"({int(bad.sum())} such rows). Add the item to the catalogue or drop those rows."
        )


def build_dataset(
    items: Source,
    log: Source | None = None,
    judgments: Source | None = None,
    queries: Source | None = None,
    *,
    name: str = "dataset",
    relevance_threshold: float = 1.0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    bucket_rule: BucketRule | None = None,
    frequency_from: str = "auto",
    info: dict | None = None,
) -> Dataset:
    """Read and validate the input files and assemble a Dataset (in memory; call `.save`).

    Splits come from a `split` column (queries file, log or judgments) when present and
    otherwise from a seeded hash of the normalised query string. frequency_from: "log", "judgments",
    "queries" or "auto" (queries file column, else log weights, else judgment counts).
    """
    fractions = check_fractions(split_fractions)
    if not isinstance(relevance_threshold, int | float) or not np.isfinite(relevance_threshold):
        raise DataValidationError(
            f"relevance_threshold must be a finite number (grade >= it is relevant), got "
            f"{relevance_threshold!r}"
        )
    item_df = read_table(items, ITEMS)
    _check_unique(item_df, "item_id", "catalogue item")
    known = set(item_df["item_id"])

    q_df = read_table(queries, QUERIES_INPUT) if queries else None
    if q_df is not None:
        _check_unique(q_df, "query_id", "query")
    log_df = read_table(log, LOG_INPUT) if log else None
    j_df = read_table(judgments, JUDGMENTS_INPUT) if judgments else None
    for df, what in ((log_df, "query log"), (j_df, "judgments")):
        if df is not None:
            _check_known_items(df, known, what)

    # ---- one query table keyed by normalised text
    index = _QueryIndex()
    if q_df is not None:
        for i, (qid, qt) in enumerate(zip(q_df["query_id"], q_df["query"], strict=True)):
            index.add(qt, qid, _split_of(q_df, i), _where(q_df, i))
    log_qids: list[str] = []
    if log_df is not None:
        log_qids = [
            index.add(qt, None, _split_of(log_df, i), _where(log_df, i))
            for i, qt in enumerate(log_df["query"])
        ]
    j_qids = _judgment_query_ids(j_df, index) if j_df is not None else []
    qtable = index.table(fractions, seed)

    log_out = _log_table(log_df, log_qids)
    j_out = pd.DataFrame(columns=["query_id", "item_id", "grade"])
    if j_df is not None:
        j_out = _judgment_table(j_df, j_qids, relevance_threshold)

    qtable["frequency"] = _frequency(qtable, q_df, log_out, j_out, frequency_from)
    item_df = item_df.drop(
        columns=[
            c
            for c in item_df.columns
            if c not in ("item_id", "title", "description", "category", "attributes")
        ]
    )
    return Dataset(
        items=item_df,
        queries=qtable,
        log=log_out,
        judgments=j_out,
        name=name,
        relevance_threshold=relevance_threshold,
        bucket_rule=bucket_rule or BucketRule(),
        info={
            **(info or {}),
            "frequency_from": frequency_from,
            "split_seed": seed,
            "split_fractions": list(fractions),
        },
    )


def _where(df: pd.DataFrame, i: int) -> str:
    return f"{df.attrs['path']}: {_row_ref(df.attrs['fmt'], i)}"


def _split_of(df: pd.DataFrame, i: int) -> str:
    """The split named in row i of `df` ("" when none)."""
    s = df["split"].iloc[i] if "split" in df.columns else ""
    if s and s not in SPLITS:
        raise DataValidationError(f"{_where(df, i)} has split {s!r}; allowed: {list(SPLITS)}.")
    return s


class _QueryIndex:
    """The queries of all input files, one per normalised query string."""

    def __init__(self) -> None:
        self.by_norm: dict[str, dict] = {}
        self.by_id: dict[str, str] = {}

    def add(self, qtext: str, qid: str | None, split: str, where: str) -> str:
        """Record a query (merged with an earlier one of the same normalised text); its id."""
        by_norm, by_id = self.by_norm, self.by_id
        norm = normalize_text(qtext)
        if not norm:
            raise DataValidationError(
                f"{where}: the query is empty after normalisation; drop the row."
            )
        rec = by_norm.get(norm)
        if rec is not None and qid and qid != rec["query_id"]:
            # Two ids for one normalised query string ("fence  mesh" / "fence mesh"): one query.
            by_id[qid] = norm
        if rec is None:
            rec = {"query_id": qid or f"q{len(by_norm)}", "query": qtext.strip(), "split": split}
            if rec["query_id"] in by_id:
                rec["query_id"] = f"q{len(by_norm)}-{norm[:8]}"
            by_norm[norm] = rec
            by_id[rec["query_id"]] = norm
        elif split and rec["split"] and split != rec["split"]:
            raise DataValidationError(
                f"{where}: query {qtext!r} is in split {split!r} but also in {rec['split']!r}; a "
                f"query string must sit in one split only (splits are per normalised query)."
            )
        elif split and not rec["split"]:
            rec["split"] = split
        return rec["query_id"]

    def query_id(self, qid: str) -> str | None:
        """The id of the query that `qid` names (an alias of it, possibly); None if unknown."""
        norm = self.by_id.get(qid)
        return None if norm is None else self.by_norm[norm]["query_id"]

    def table(self, fractions, seed: int) -> pd.DataFrame:
        """query_id, query, split; queries no file put in a split get a seeded hash split."""
        qtable = pd.DataFrame(list(self.by_norm.values()), columns=["query_id", "query", "split"])
        missing_split = qtable["split"] == ""
        qtable.loc[missing_split, "split"] = [
            hash_split(q, fractions, seed) for q in qtable.loc[missing_split, "query"]
        ]
        return qtable


def _judgment_query_ids(j_df: pd.DataFrame, index: _QueryIndex) -> list[str]:
    """The query id of each judgment row, by its query_id or else its query text."""
    has_id, has_text = "query_id" in j_df.columns, "query" in j_df.columns
    if not has_id and not has_text:
        raise DataValidationError(
            f"{j_df.attrs['path']}: judgments need a 'query_id' (with a queries file) or a "
            f"'query' text column; map one with --map query_id=<col> or --map query=<col>."
        )
    j_qids: list[str] = []
    for i in range(len(j_df)):
        where = _where(j_df, i)
        if has_id and j_df["query_id"].iloc[i]:
            qid = j_df["query_id"].iloc[i]
            known = index.query_id(qid)
            if known is None:
                raise DataValidationError(
                    f"{where} names query_id {qid!r}, which the queries file does not have; "
                    f"add it there or give the query text in a 'query' column."
                )
            j_qids.append(known)
        elif has_text:
            j_qids.append(index.add(j_df["query"].iloc[i], None, _split_of(j_df, i), where))
        else:
            raise DataValidationError(f"{where} has an empty query_id.")
    return j_qids


def _log_table(log_df: pd.DataFrame | None, log_qids: list[str]) -> pd.DataFrame:
    if log_df is None:
        return pd.DataFrame(columns=["query_id", "item_id", "weight", "user", "time"])
    return pd.DataFrame(
        {
            "query_id": log_qids,
            "item_id": log_df["item_id"].to_numpy(),
            "weight": log_df["weight"].fillna(1.0).to_numpy() if "weight" in log_df else 1.0,
            "user": log_df["user"].to_numpy() if "user" in log_df else "",
            "time": log_df["time"].to_numpy() if "time" in log_df else "",
        }
    )


def _judgment_table(
    j_df: pd.DataFrame, j_qids: list[str], relevance_threshold: float
) -> pd.DataFrame:
    """query_id, item_id, grade: one row per judged pair; some grade must reach the threshold."""
    j_out = pd.DataFrame(
        {
            "query_id": j_qids,
            "item_id": j_df["item_id"].to_numpy(),
            "grade": j_df["grade"].to_numpy(),
        }
    )
    raw_key = j_df["query_id"] if "query_id" in j_df.columns else j_df["query"]
    dup = pd.DataFrame({"q": raw_key, "i": j_df["item_id"]}).duplicated(keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataValidationError(
            f"{j_df.attrs['path']}: {_row_ref(j_df.attrs['fmt'], i)} judges pair "
            f"({j_out['query_id'].iloc[i]!r}, {j_out['item_id'].iloc[i]!r}) again; average "
            f"the grades of a pair into one row."
        )
    grades = j_out["grade"].to_numpy(dtype=float)
    if not (grades >= relevance_threshold).any():
        raise DataValidationError(
            f"{j_df.attrs['path']}: no judgment reaches the relevance threshold "
            f"{relevance_threshold:g} (grades run from {np.nanmin(grades):g} to "
            f"{np.nanmax(grades):g}), so nothing would be relevant; lower the threshold "
            f"(CLI: --relevance-threshold)."
        )
    # pairs that meet only through merged query aliases: average their grades
    return j_out.groupby(["query_id", "item_id"], as_index=False, sort=False)["grade"].mean()


def _frequency(qtable, q_df, log_out, j_out, how: str) -> np.ndarray:
    if how not in ("auto", "queries", "log", "judgments"):
        raise ValueError(f"frequency_from must be auto|queries|log|judgments, got {how!r}")
    ids = qtable["query_id"]
    if how in ("auto", "queries") and q_df is not None and "frequency" in q_df.columns:
        f = dict(zip(q_df["query_id"], q_df["frequency"].fillna(1.0), strict=True))
        return ids.map(f).fillna(1.0).to_numpy(dtype=float)
    if how in ("auto", "log") and len(log_out):
        f = log_out.groupby("query_id")["weight"].sum()
        return ids.map(f).fillna(0.0).to_numpy(dtype=float)
    if how in ("auto", "judgments") and len(j_out):
        f = j_out.groupby("query_id").size()
        return ids.map(f).fillna(0.0).to_numpy(dtype=float)
    return np.ones(len(ids))
