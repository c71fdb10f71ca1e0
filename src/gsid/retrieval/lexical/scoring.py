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
    intervals: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items (rows of the index, or `row_item[row]` when titles are segments of items)
    and their scores for one query's distinct spans. -> (k',) int64 items, (k',) float32.
    `intervals`: the spans' (S,) lo and hi in the index when known (the beams narrowed them)."""
    if not spans:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    lo, hi = index.intervals([list(s) for s in spans]) if intervals is None else intervals
    counts = hi - lo
    w = span_weights(index, counts, np.asarray(logp))
    keep = np.flatnonzero((w > 0) & (counts > 0))
    if len(keep) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    keep = keep[np.argsort(counts[keep], kind="stable")]  # rarest first
    pair_item, pair_span, deferred = [], [], []
    n_cand = 0
    owner = index.suffix_segments()  # (T,) the title of every suffix, in suffix-array order
    # scratch (items,): a distinct set without sorting, and later a candidate's place
    mark = np.empty(index.n_items if row_item is None else len(row_item), np.int64)
    for s in keep:
        if counts[s] > max_locate and n_cand >= depth:
            deferred.append(s)  # too frequent to locate: checked on the candidates below
            continue
        items = owner[lo[s] : hi[s]]  # one per occurrence
        if row_item is not None:
            items = row_item[items]
        items = _distinct(items, mark)
        pair_item.append(items)
        pair_span.append(np.full(len(items), s))
        n_cand += len(items)
    items_all = np.concatenate(pair_item)  # (M,) one (item, span) pair each: spans are
    spans_all = np.concatenate(pair_span)  # distinct and each span's items too
    # candidates (ascending) and their upper bound, the sum of w^alpha of the spans they hold
    cand = np.sort(_distinct(items_all, mark))
    mark[cand] = np.arange(len(cand))
    where = mark[items_all]  # (M,) each pair's candidate
    upper = np.bincount(where, weights=w[spans_all] ** alpha, minlength=len(cand))
    top = np.argsort(-upper, kind="stable")[: max(depth, k)]
    # (C', S) which spans each fully scored candidate holds
    slot = np.full(len(cand), -1)
    slot[top] = np.arange(len(top))
    held = slot[where] >= 0
    member = np.zeros((len(top), len(spans)), bool)
    member[slot[where[held]], spans_all[held]] = True
    if deferred:
        member[:, deferred] = _holds(index, cand[top], [spans[s] for s in deferred], row_item)
    full = _scores(member, spans, w, alpha, coverage)
    rank = np.argsort(-full, kind="stable")[:k]
    return cand[top[rank]].astype(np.int64), full[rank].astype(np.float32)


def _distinct(values: np.ndarray, mark: np.ndarray) -> np.ndarray:
    """The distinct values (in no particular order) of an int array, in O(n) with a scratch
    array indexed by value: every value writes its position, the last write wins, and one
    position per value reads itself back."""
    at = np.arange(len(values))
    mark[values] = at
    return values[mark[values] == at]


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


def _holds(
    index: SpanIndex, items: np.ndarray, spans: Sequence[tuple[int, ...]],
    row_item: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """(C, D) bool: some segment of item items[c] contains span d. Segments are field-major
    (all titles, then the next field's rows): item i owns rows i, i + N, i + 2N, ..."""
    stride = index.n_items if row_item is None else int(row_item[-1]) + 1
    rows = (items[:, None] + stride * np.arange(index.n_items // stride)).reshape(-1)
    begin = index.starts[rows]
    end = np.append(index.starts, len(index.text))[rows + 1] - 1  # the sentinel's position
    width = int((end - begin).max())
    pos = np.minimum(begin[:, None] + np.arange(width), len(index.text) - 1)
    tokens = index.text[pos].astype(np.int64)
    titles = np.where(pos < end[:, None], tokens, -1)  # (R, width), -1 past a title's end
    out = np.zeros((len(rows), len(spans)), bool)
    for d, span in enumerate(spans):
        n = len(span)
        if n > width:
            continue
        hit = np.ones((len(rows), width - n + 1), bool)
        for j, t in enumerate(span):
            hit &= titles[:, j : j + width - n + 1] == t
        out[:, d] = hit.any(1)
    return out.reshape(len(items), -1, len(spans)).any(1)


def _scores(
    member: np.ndarray, spans: Sequence[tuple[int, ...]], w: np.ndarray, alpha: float,
    coverage: float,
) -> np.ndarray:  # fmt: skip
    """(C,) scores of C candidates from member (C, S), the spans each holds: spans taken in
    decreasing w, one span at a time for all candidates at once (S is a few dozen, C a few
    hundred), skipping a span inside one a candidate already took; the coverage discount
    from the (C, U) distinct query-span tokens each candidate has matched so far."""
    C, S = member.shape
    inside = _inside_matrix(spans)
    vocab = {t: i for i, t in enumerate(sorted({t for s in spans for t in s}))}
    toks = np.zeros((S, len(vocab)), bool)  # (S, U) the distinct tokens of each span
    for i, span in enumerate(spans):
        toks[i, [vocab[t] for t in span]] = True
    size = toks.sum(1)
    taken = np.zeros((C, S), bool)
    covered = np.zeros((C, len(vocab)), bool)
    total = np.zeros(C)
    for s in np.argsort(-w, kind="stable"):
        c = member[:, s].copy()
        if not c.any():
            continue
        if inside[s].any():
            c &= ~(taken & inside[s]).any(1)
        c = np.flatnonzero(c)
        new = (toks[s] & ~covered[c]).sum(1)
        total[c] += float(w[s]) ** alpha * (1 - coverage + coverage * new / size[s])
        taken[c, s] = True
        covered[c] |= toks[s]
    return total
