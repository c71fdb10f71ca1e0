"""The on-disk dataset every gsid step reads: Parquet tables plus a versioned JSON manifest.

my_dataset/
  manifest.json     kind, format_version, name, counts, relevance threshold, bucket rule, source
  items.parquet     item_id, title, description, category, attributes
  queries.parquet   query_id, query, split, frequency
  log.parquet       query_id, item_id, weight, user, time          (optional)
  judgments.parquet query_id, item_id, grade                       (optional)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.data.schema import CATEGORY_SEP, SPLITS
from gsid.data.splits import BucketRule, assign_buckets
from gsid.errors import ArtifactError, DataValidationError

FORMAT_VERSION = 1
KIND = "gsid-dataset"

ITEM_COLUMNS = ("item_id", "title", "description", "category", "attributes")
QUERY_COLUMNS = ("query_id", "query", "split", "frequency")
LOG_COLUMNS = ("query_id", "item_id", "weight", "user", "time")
JUDGMENT_COLUMNS = ("query_id", "item_id", "grade")


def _empty(columns: tuple[str, ...], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([], dtype="float64" if c in numeric else "object") for c in columns}
    )


@dataclass
class Dataset:
    """A catalogue with its queries, search log and relevance judgments.

    `relevance_threshold`: a judged pair with grade >= threshold is relevant (an expected item
    in evaluation and a positive in training). Queries without judgments fall back to the items
    their log rows name.
    """

    items: pd.DataFrame
    queries: pd.DataFrame = field(default_factory=lambda: _empty(QUERY_COLUMNS, ("frequency",)))
    log: pd.DataFrame = field(default_factory=lambda: _empty(LOG_COLUMNS, ("weight",)))
    judgments: pd.DataFrame = field(default_factory=lambda: _empty(JUDGMENT_COLUMNS, ("grade",)))
    name: str = "dataset"
    relevance_threshold: float = 1.0
    bucket_rule: BucketRule = field(default_factory=BucketRule)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items = _conform(
            self.items, ITEM_COLUMNS, {"description": "", "category": "", "attributes": "{}"}
        )
        self.queries = _conform(self.queries, QUERY_COLUMNS, {"split": "train", "frequency": 1.0})
        self.log = _conform(self.log, LOG_COLUMNS, {"weight": 1.0, "user": "", "time": ""})
        self.judgments = _conform(self.judgments, JUDGMENT_COLUMNS, {})
        self.queries["frequency"] = self.queries["frequency"].astype("float64")
        self.log["weight"] = self.log["weight"].astype("float64")
        self.judgments["grade"] = self.judgments["grade"].astype("float64")
        self.check()

    @classmethod
    def of_items(cls, items, name: str = "new-items") -> Dataset:
        """A catalogue-only Dataset (new products for `Retriever.add`) from a Dataset, a
        DataFrame or a list of dicts, validated: item_id and title strings, non-empty, within
        the length limits, unique, and no field a catalogue does not have."""
        from gsid.data.schema import MAX_ID_CHARS, MAX_TITLE_CHARS

        if isinstance(items, Dataset):
            return cls(items=items.items)
        if isinstance(items, list | tuple):
            if not items or not all(isinstance(r, dict) for r in items):
                raise DataValidationError(
                    "new items must be a non-empty list of objects with item_id and title"
                )
            items = pd.DataFrame(list(items))
        if not isinstance(items, pd.DataFrame) or items.empty:
            raise DataValidationError("no new items given: pass item_id and title for each")
        unknown = sorted(set(items.columns) - set(ITEM_COLUMNS))
        missing = [c for c in ("item_id", "title") if c not in items.columns]
        if unknown or missing:
            raise DataValidationError(
                f"new items: unknown field(s) {unknown} / missing {missing}; an item has "
                f"{list(ITEM_COLUMNS)} (item_id and title required)"
            )
        items = items.copy()
        for col in items.columns:
            bad = ~items[col].map(lambda v: isinstance(v, str))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataValidationError(f"new item {row}: {col} must be a string")
        for col in ("item_id", "title"):
            empty = ~items[col].str.strip().astype(bool)
            if empty.any():
                row = int(np.flatnonzero(empty.to_numpy())[0])
                raise DataValidationError(f"new item {row} has an empty {col}; give every item one")
        for col, limit in (("item_id", MAX_ID_CHARS), ("title", MAX_TITLE_CHARS)):
            long = items[col].str.len() > limit
            if long.any():
                row = int(np.flatnonzero(long.to_numpy())[0])
                raise DataValidationError(
                    f"new item {row}: its {col} has more than {limit} characters; shorten it"
                )
        return cls(items=items, name=name)

    # ------------------------------------------------------------------ integrity
    def check(self) -> None:
        """Referential integrity; raises DataValidationError naming the table, the row and the fix."""
        dup = self.items["item_id"].duplicated(keep=False)
        if dup.any():
            rows = np.flatnonzero(dup.to_numpy())[:5].tolist()
            raise DataValidationError(
                f"{self.name}: duplicate item_id {self.items['item_id'].iloc[rows[0]]!r} in the "
                f"catalogue (rows {rows}); item ids must be unique: merge or rename the duplicates."
            )
        dupq = self.queries["query_id"].duplicated(keep=False)
        if dupq.any():
            rows = np.flatnonzero(dupq.to_numpy())[:5].tolist()
            raise DataValidationError(
                f"{self.name}: duplicate query_id {self.queries['query_id'].iloc[rows[0]]!r} "
                f"(rows {rows}); query ids must be unique."
            )
        bad_split = ~self.queries["split"].isin(SPLITS)
        if bad_split.any():
            row = int(np.flatnonzero(bad_split.to_numpy())[0])
            raise DataValidationError(
                f"{self.name}: query row {row} has split {self.queries['split'].iloc[row]!r}; "
                f"allowed splits are {list(SPLITS)}."
            )
        # pandas hashes a Series argument once; a Python set would be converted element-wise
        known_items = self.items["item_id"]
        known_queries = self.queries["query_id"]
        for table_name, table in (("log", self.log), ("judgments", self.judgments)):
            for col, known, what in (
                ("item_id", known_items, "item"),
                ("query_id", known_queries, "query"),
            ):
                bad = ~table[col].isin(known)
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise DataValidationError(
                        f"{self.name}: {table_name} row {row} names unknown {what} "
                        f"{table[col].iloc[row]!r} ({int(bad.sum())} such rows); every {what} "
                        f"in the {table_name} must exist in the "
                        f"{'catalogue' if what == 'item' else 'queries table'}."
                    )

    # ------------------------------------------------------------------ views
    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy(dtype=object)

    def item_texts(self, with_description: bool = False) -> list[str]:
        """Text an encoder reads for each item: the title, optionally with the description."""
        titles = self.items["title"].tolist()
        if not with_description:
            return titles
        return [
            f"{t}. {d}" if d else t
            for t, d in zip(titles, self.items["description"].tolist(), strict=True)
        ]

    def split_queries(self, split: str) -> pd.DataFrame:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return self.queries[self.queries["split"] == split].reset_index(drop=True)

    def expected(self, split: str) -> dict[str, set[str]]:
        """query_id -> relevant item ids, for the queries of `split` that have any."""
        qids = set(self.split_queries(split)["query_id"])
        out: dict[str, set[str]] = {}
        j = self.judgments
        rel = j[(j["grade"] >= self.relevance_threshold) & j["query_id"].isin(qids)]
        for qid, iid in zip(rel["query_id"], rel["item_id"], strict=True):
            out.setdefault(qid, set()).add(iid)
        judged = set(j["query_id"])
        lg = self.log[self.log["query_id"].isin(qids - judged)]
        for qid, iid in zip(lg["query_id"], lg["item_id"], strict=True):
            out.setdefault(qid, set()).add(iid)
        return out

    def training_pairs(self, split: str = "train") -> pd.DataFrame:
        """(query, item_id, weight) positives: log rows, plus relevant judged pairs.

        Only queries of `split` are used, so training never sees dev/test queries.
        """
        qs = self.split_queries(split)[["query_id", "query"]]
        j = self.judgments
        rel = j[j["grade"] >= self.relevance_threshold][["query_id", "item_id"]].assign(weight=1.0)
        pairs = pd.concat([self.log[["query_id", "item_id", "weight"]], rel], ignore_index=True)
        pairs = pairs.merge(qs, on="query_id", how="inner")
        pairs = pairs.groupby(["query_id", "query", "item_id"], as_index=False, sort=False)[
            "weight"
        ].sum()
        return pairs[["query_id", "query", "item_id", "weight"]]

    def buckets(self, rule: BucketRule | None = None) -> pd.Series:
        """query_id -> 'head' | 'torso' | 'tail' by query frequency (see BucketRule)."""
        rule = rule or self.bucket_rule
        return pd.Series(
            assign_buckets(self.queries["frequency"].to_numpy(), rule),
            index=self.queries["query_id"].to_numpy(),
            name="bucket",
        )

    def category_levels(self) -> list[np.ndarray]:
        """Category labels per level: level L of an item is its path cut after L+1 parts
        (so labels of level L are unique across parents). Items with a shorter path reuse
        their deepest label, so every level has a label for every item."""
        paths = [c.split(CATEGORY_SEP) if c else [] for c in self.items["category"].tolist()]
        depth = max((len(p) for p in paths), default=0)
        levels = []
        for level in range(depth):
            labels = [CATEGORY_SEP.join(p[: level + 1]) if p else "" for p in paths]
            levels.append(np.asarray(labels, dtype=object))
        return levels

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": len(self.items),
            "queries": {s: int((self.queries["split"] == s).sum()) for s in SPLITS},
            "log_rows": len(self.log),
            "judgments": len(self.judgments),
            "category_depth": len(self.category_levels()),
            "relevance_threshold": self.relevance_threshold,
            "bucket_rule": self.bucket_rule.to_dict(),
        }

    def fingerprint(self) -> str:
        """BLAKE2b-128 of the catalogue, the queries, the log and the judgments (their values,
        not their file encoding): two datasets with this fingerprint train the same index."""
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        for name in ("items", "queries", "log", "judgments"):
            table = getattr(self, name)
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy())
        return h.hexdigest()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write atomically: a failure leaves any previous dataset at `path` untouched. `path`
        may hold a previous dataset; `force` lets it replace another gsid artifact (never a
        directory gsid did not write)."""
        path = Path(path)
        with atomic_dir(path, KIND, force=force) as tmp:
            for name in ("items", "queries", "log", "judgments"):
                df = getattr(self, name)
                pq.write_table(_to_arrow(df), tmp / f"{name}.parquet")
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                name=self.name,
                relevance_threshold=self.relevance_threshold,
                bucket_rule=self.bucket_rule.to_dict(),
                counts=self.summary(),
                info=self.info,
                created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dataset:
        path = Path(path)
        manifest = read_manifest(path, KIND, FORMAT_VERSION)
        tables = {}
        for name in ("items", "queries", "log", "judgments"):
            f = path / f"{name}.parquet"
            try:
                tables[name] = pq.read_table(f).to_pandas()
            except Exception as e:  # pyarrow raises several types for truncated/corrupt files
                raise ArtifactError(
                    f"{f} cannot be read ({type(e).__name__}: {e}); the dataset is corrupted, "
                    f"import it again with `gsid data import`."
                ) from e
        return cls(
            **tables,
            name=manifest["name"],
            relevance_threshold=float(manifest["relevance_threshold"]),
            bucket_rule=BucketRule.from_dict(manifest["bucket_rule"]),
            info=manifest.get("info", {}),
        )

    def __repr__(self) -> str:
        return f"Dataset({json.dumps(self.summary())})"


def _conform(df: pd.DataFrame, columns: tuple[str, ...], defaults: dict[str, Any]) -> pd.DataFrame:
    df = df.copy()
    for c in columns:
        if c not in df.columns:
            if c not in defaults:
                raise DataValidationError(
                    f"table is missing column {c!r}; it needs {list(columns)}"
                )
            df[c] = defaults[c]
    df = df[list(columns)].reset_index(drop=True)
    for c in columns:
        if c in ("frequency", "weight", "grade"):
            continue
        df[c] = df[c].fillna(defaults.get(c, "")).astype(str).astype(object)
    return df


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    schema = pa.schema(
        [(c, pa.float64() if df[c].dtype == "float64" else pa.string()) for c in df.columns]
    )
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)
