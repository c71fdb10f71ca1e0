"""From generated spans to ranked products: SEAL's intersective scoring (Bevilacqua et al.,
2022), over a span index.

For a query q, each distinct generated span n gets a weight, the log-odds of the model's
probability P(n|q) against the span's corpus frequency P(n) = count(n) / (title tokens):

    w(n) = max(0, log[ P(n|q) (1 - P(n)) / (P(n) (1 - P(n|q))) ])

and an item d is scored over K(d), the generated spans that occur in its title, taken in
decreasing w and skipping a span that lies inside one already taken (distinct, non-overlapping):

    score(q, d) = sum_{n in K(d)} w(n)^alpha * cover(n),
    cover(n)    = 1 - beta + beta * |tok(n) - tok(earlier spans of K(d))| / |tok(n)|

(alpha = 2, beta = `coverage`): a span whose tokens earlier spans already matched counts only
1 - beta of its weight. Cost: spans are located rarest first; a span with more than
`max_locate` occurrences is not located once `depth` candidates exist (it is checked in the
titles of those candidates instead); the `depth` candidates with the highest sum of w^alpha are
then fully scored as above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gsid.text.span_index import SpanIndex


def span_weights(index: SpanIndex, counts: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """(S,) SEAL log-odds weights of spans with corpus counts and model log-probs."""
    pq = np.clip(np.exp(np.asarray(logp, np.float64)), 1e-9, 1 - 1e-6)
    pc = np.clip(np.asarray(counts, np.float64) / max(index.n_tokens, 1), 1e-12, 1 - 1e-9)
    return np.maximum(0.0, np.log(pq / (1 - pq)) - np.log(pc / (1 - pc)))


def _contains(title: list[int], span: tuple[int, ...]) -> bool:
    n = len(span)
    return any(tuple(title[i : i + n]) == span for i in range(len(title) - n + 1))


def seal_rank(
    index: SpanIndex,
    spans: Sequence[tuple[int, ...]],
    logp: Sequence[float],
    k: int,
    row_item: np.ndarray | None = None,
    alpha: float = 2.0,
    coverage: float = 0.8,
    depth: int = 200,
    max_locate: int = 10000,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items (rows of the index, or `row_item[row]` when titles are segments of items)
    and their scores for one query's distinct spans. -> (k',) int64 items, (k',) float32."""
    if not spans:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    lo, hi = index.intervals([list(s) for s in spans])
    counts = hi - lo
    w = span_weights(index, counts, np.asarray(logp))
    keep = np.flatnonzero((w > 0) & (counts > 0))
    if len(keep) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    keep = keep[np.argsort(counts[keep], kind="stable")]  # rarest first
    pair_item, pair_span, deferred = [], [], []
    n_cand = 0
    for s in keep:
        if counts[s] > max_locate and n_cand >= depth:
            deferred.append(s)  # too frequent to locate: checked on the candidates below
            continue
        rows, _ = index.locate(interval=(int(lo[s]), int(hi[s])))  # sorted by row
        items = rows if row_item is None else np.sort(row_item[rows])
        items = items[np.r_[True, items[1:] != items[:-1]]]  # distinct, already sorted
        pair_item.append(items)
        pair_span.append(np.full(len(items), s))
        n_cand += len(items)
    items_all = np.concatenate(pair_item)
    spans_all = np.concatenate(pair_span)
    # an item may hold a span in several segments: one (item, span) pair each
    key = np.unique(items_all * len(spans) + spans_all)
    items_all, spans_all = key // len(spans), key % len(spans)
    cand, inv = np.unique(items_all, return_inverse=True)
    upper = np.bincount(inv, weights=w[spans_all] ** alpha, minlength=len(cand))
    top = np.argsort(-upper, kind="stable")[: max(depth, k)]
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(cand) + 1))
    inside = _inside_matrix(spans)
    toks = [set(s) for s in spans]
    full = np.empty(len(top))
    for j, c in enumerate(top):
        mine = list(spans_all[order[bounds[c] : bounds[c + 1]]])
        if deferred:
            title = _item_tokens(index, int(cand[c]), row_item)
            mine += [s for s in deferred if any(_contains(t, spans[s]) for t in title)]
        full[j] = _score(mine, toks, inside, w, alpha, coverage)
    rank = np.argsort(-full, kind="stable")[:k]
    return cand[top[rank]].astype(np.int64), full[rank].astype(np.float32)


def _inside_matrix(spans: Sequence[tuple[int, ...]]) -> np.ndarray:
    """(S, S) bool: span a lies inside the longer span b (computed once per query from each
    span's shorter sub-spans, so that scoring a candidate is set arithmetic only)."""
    where = {s: i for i, s in enumerate(spans)}
    out = np.zeros((len(spans), len(spans)), bool)
    for b, span in enumerate(spans):
        n = len(span)
        for length in range(1, n):
            for start in range(n - length + 1):
                a = where.get(span[start : start + length])
                if a is not None:
                    out[a, b] = True
    return out


def _item_tokens(index: SpanIndex, item: int, row_item: np.ndarray | None) -> list[list[int]]:
    # segments are field-major (all titles, then the next field's rows): item i owns rows
    # i, i + N, i + 2N, ...
    stride = index.n_items if row_item is None else int(row_item[-1]) + 1
    rows = range(item, index.n_items, stride)
    return [index.title(r).tolist() for r in rows]


def _score(mine, toks: list[set], inside: np.ndarray, w, alpha: float, coverage: float) -> float:
    mine = sorted(mine, key=lambda s: -w[s])
    taken: list[int] = []
    covered: set[int] = set()
    total = 0.0
    for s in mine:
        if taken and inside[s, taken].any():
            continue
        cover = 1 - coverage + coverage * len(toks[s] - covered) / len(toks[s])
        total += float(w[s]) ** alpha * cover
        taken.append(s)
        covered |= toks[s]
    return total
