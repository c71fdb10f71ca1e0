"""Ranking metrics: Recall@k and MRR@k, overall and per head/torso/tail bucket.

Definitions (as in the GSID paper):
- Recall@k of one query = |expected items found in its top k| / |expected items|, averaged over
  the queries that have at least one expected item. A query whose expected set is empty is left
  out of the average and counted in `n_no_expected`. With several expected items, Recall@1 of
  a query can be at most 1/|expected|.
- MRR@k of one query = 1 / rank of the first expected item within its top k (rank 1 = best),
  0 when none is there; averaged over the same queries.
- An item id returned twice in one ranking counts once (at its first rank); `None` (padding
  where a retriever found fewer than k items) is never a hit.

Values are fractions in [0, 1]; reports turn them into percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gsid.errors import GsidError
from gsid.retrieval.base import SearchResults

BUCKET_ORDER = ("head", "torso", "tail")
UNBUCKETED = "unbucketed"


def _as_ids(ids: SearchResults | np.ndarray) -> np.ndarray:
    arr = ids.ids if isinstance(ids, SearchResults) else ids
    arr = np.asarray(arr, dtype=object)
    if arr.ndim != 2:
        raise GsidError(
            f"ranked ids must be a 2-d (queries, k) array, got shape {arr.shape}; "
            f"pass SearchResults.ids or wrap one query's ranking in a list"
        )
    return arr


def _check_k(k: int, depth: int) -> None:
    if not isinstance(k, int | np.integer) or k < 1:
        raise GsidError(f"k must be a positive integer, got {k!r}")
    if k > depth:
        raise GsidError(
            f"a metric @{k} was asked of rankings only {depth} deep; search with k >= {k} "
            f"(a shallower ranking would understate the metric)"
        )


def hit_matrix(ids: SearchResults | np.ndarray, expected: Sequence[Iterable[Any]]) -> np.ndarray:
    """(Q, K) bool: True where ids[q, r] is an expected item of query q, at its first rank in row q.

    `expected[q]` is the set of expected item ids of row q. Duplicates after the first
    occurrence and `None` padding are False.
    """
    ids = _as_ids(ids)
    n_q, depth = ids.shape
    if len(expected) != n_q:
        raise GsidError(f"{n_q} ranked rows but {len(expected)} expected sets; they must align")
    exp_sets = [e if isinstance(e, set | frozenset) else set(e) for e in expected]
    if n_q == 0 or depth == 0:
        return np.zeros((n_q, depth), dtype=bool)
    exp_q = np.repeat(np.arange(n_q, dtype=np.int64), [len(e) for e in exp_sets])
    exp_items = np.asarray([i for e in exp_sets for i in e], dtype=object)
    flat = ids.ravel()
    # One vocabulary for returned and expected ids, so membership becomes integer isin.
    codes, uniques = pd.factorize(np.concatenate([flat, exp_items]), use_na_sentinel=True)
    vocab = len(uniques) + 1
    codes = np.where(codes < 0, vocab - 1, codes).astype(np.int64)  # None -> its own code
    row = np.repeat(np.arange(n_q, dtype=np.int64), depth)
    res_keys = row * vocab + codes[: flat.size]
    exp_keys = exp_q * vocab + codes[flat.size :]
    valid = codes[: flat.size] != vocab - 1
    hits = np.isin(res_keys, exp_keys) & valid
    # Keys include the row, so np.unique's first index is the first occurrence within the row.
    _, first = np.unique(res_keys, return_index=True)
    first_mask = np.zeros(flat.size, dtype=bool)
    first_mask[first] = True
    return (hits & first_mask).reshape(n_q, depth)


def _n_expected(expected: Sequence[Iterable[Any]]) -> np.ndarray:
    return np.asarray([len(e if isinstance(e, set | frozenset) else set(e)) for e in expected])


def recall_per_query(hits: np.ndarray, n_expected: np.ndarray, k: int) -> np.ndarray:
    """(Q,) share of each query's expected items in its top k; NaN where it has none."""
    _check_k(k, hits.shape[1])
    found = hits[:, :k].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_expected > 0, found / np.maximum(n_expected, 1), np.nan)


def reciprocal_rank_per_query(hits: np.ndarray, n_expected: np.ndarray, k: int) -> np.ndarray:
    """(Q,) 1 / rank of the first expected item in the top k (0 if none); NaN where none expected."""
    _check_k(k, hits.shape[1])
    top = hits[:, :k]
    any_hit = top.any(axis=1)
    rr = np.where(any_hit, 1.0 / (top.argmax(axis=1) + 1), 0.0)
    return np.where(n_expected > 0, rr, np.nan)


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def recall_at_k(
    ids: SearchResults | np.ndarray, expected: Sequence[Iterable[Any]], k: int
) -> float:
    """Mean Recall@k over queries with at least one expected item (NaN when there are none)."""
    hits = hit_matrix(ids, expected)
    return _mean(recall_per_query(hits, _n_expected(expected), k))


def mrr_at_k(ids: SearchResults | np.ndarray, expected: Sequence[Iterable[Any]], k: int) -> float:
    """Mean reciprocal rank of the first expected item within the top k (NaN when no query
    has an expected item)."""
    hits = hit_matrix(ids, expected)
    return _mean(reciprocal_rank_per_query(hits, _n_expected(expected), k))


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise GsidError("ks is empty; pass the cut-offs to report, e.g. ks=(1, 10, 100)")
    for k in ks:
        if not isinstance(k, int | np.integer) or k < 1:
            raise GsidError(f"every k in ks must be a positive integer, got {ks!r}")
    return tuple(sorted(set(int(k) for k in ks)))


def _summarise(
    recalls: dict[int, np.ndarray], rr: np.ndarray, mrr_k: int, has_exp: np.ndarray
) -> dict[str, float | int | None]:
    n = int(has_exp.sum())
    out: dict[str, float | int | None] = {}
    for k, values in recalls.items():
        out[f"R@{k}"] = float(values[has_exp].mean()) if n else None
    out[f"MRR@{mrr_k}"] = float(rr[has_exp].mean()) if n else None
    out["n"] = n
    out["n_no_expected"] = int((~has_exp).sum())
    return out


def evaluate(
    results: SearchResults | np.ndarray,
    query_ids: Sequence[str],
    expected: Mapping[str, Iterable[str]],
    buckets: Mapping[str, str] | pd.Series | None = None,
    ks: Sequence[int] = (1, 10, 100),
) -> dict[str, dict[str, float | int | None]]:
    """Recall@k for every k in `ks` and MRR@max(ks), overall and per bucket.

    results: rankings whose row i answers query `query_ids[i]`.
    expected: query_id -> expected item ids; a query missing here has none (excluded, counted).
    buckets: query_id -> "head" | "torso" | "tail" (e.g. `Dataset.buckets()`); queries absent
    from it go to "unbucketed" (listed only when it has queries).
    Returns {"overall": {"R@1": .., "R@10": .., "R@100": .., "MRR@100": .., "n": ..,
    "n_no_expected": ..}, "head": {...}, "torso": {...}, "tail": {...}}; a metric is None when
    its group has no query with an expected item.
    """
    ids = _as_ids(results)
    ks = check_ks(ks)
    query_ids = list(query_ids)
    if len(query_ids) != ids.shape[0]:
        raise GsidError(
            f"{ids.shape[0]} ranked rows but {len(query_ids)} query ids; row i must answer query i"
        )
    mrr_k = ks[-1]
    _check_k(mrr_k, ids.shape[1])
    exp = [expected.get(q, ()) for q in query_ids]
    n_exp = _n_expected(exp)
    hits = hit_matrix(ids, exp)
    recalls = {k: recall_per_query(hits, n_exp, k) for k in ks}
    rr = reciprocal_rank_per_query(hits, n_exp, mrr_k)
    has_exp = n_exp > 0
    report = {"overall": _summarise(recalls, rr, mrr_k, has_exp)}
    if buckets is None:
        return report
    bmap = buckets.to_dict() if isinstance(buckets, pd.Series) else dict(buckets)
    labels = np.asarray([bmap.get(q, UNBUCKETED) for q in query_ids], dtype=object)
    names = list(BUCKET_ORDER) + sorted(set(labels) - set(BUCKET_ORDER))
    for name in names:
        mask = labels == name
        sub = {k: v[mask] for k, v in recalls.items()}
        report[name] = _summarise(sub, rr[mask], mrr_k, has_exp[mask])
    return report


# ---------------------------------------------------------------- codes and item neighbours
def code_accuracy(
    query_codes: np.ndarray,
    item_codes: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    levels: Sequence[int] = (1, 2),
) -> dict[str, float]:
    """Share of (query row, relevant item row) pairs whose first l codes agree, per l."""
    if not len(pairs):
        return {f"l{lv}": float("nan") for lv in levels}
    q = np.asarray([p[0] for p in pairs])
    i = np.asarray([p[1] for p in pairs])
    return {
        f"l{lv}": float((query_codes[q, :lv] == item_codes[i, :lv]).all(1).mean()) for lv in levels
    }


def _top_items(Q: np.ndarray, X: np.ndarray, item_ids: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) item ids of the k best inner products (exact, faiss; None-padded when there are
    fewer than k items)."""
    import faiss

    k_eff = min(k, len(X))
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(np.ascontiguousarray(X, dtype=np.float32))
    _, rows = index.search(np.ascontiguousarray(Q, dtype=np.float32), k_eff)
    out = np.full((len(Q), k), None, dtype=object)
    out[:, :k_eff] = item_ids[rows]
    return out


def evaluate_i2i(
    X: np.ndarray,
    item_ids: np.ndarray,
    expected: dict,
    ks: Sequence[int],
    max_queries: int = 2000,
    seed: int = 0,
) -> dict:
    """Item -> item: an item's expected neighbours are the other items relevant to a query it
    is relevant to (itself excluded from the ranking)."""
    row_of = {iid: n for n, iid in enumerate(item_ids)}
    neigh: dict[str, set[str]] = {}
    for items in expected.values():
        for a in items:
            others = set(items) - {a}
            if others:
                neigh.setdefault(a, set()).update(others)
    if not neigh:
        return {}
    anchors = sorted(neigh)
    if len(anchors) > max_queries:
        anchors = list(np.random.default_rng(seed).choice(anchors, max_queries, replace=False))
    A = X[[row_of[a] for a in anchors]]
    ranked = _top_items(A, X, item_ids, max(ks) + 1)
    out = np.empty((len(anchors), max(ks)), dtype=object)
    for r, a in enumerate(anchors):
        row = [x for x in ranked[r] if x != a][: max(ks)]
        out[r] = row + [None] * (max(ks) - len(row))
    return evaluate(out, anchors, {a: neigh[a] for a in anchors}, None, ks)["overall"]
