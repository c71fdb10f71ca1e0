"""Training targets of the lexical route: which title spans a model should write for a query.

    spans = TitleSpans(index, continuation)           # candidate spans of every title, counted
    multi_span_rule(spans, item, query_tokens, n_spans=3, max_len=4)   # [[tok, ...], ...]
    seal_rule(spans, item, query_tokens, n_spans=3, max_len=4, rng=rng) # SEAL's n-grams

A *span* is a run of 1..max_len tokens of a title that starts at a word start and ends at a
word end (word pieces "##ing" never begin or end a span) and neither begins nor ends with
punctuation, so every target is text a shopper could read. `TitleSpans` enumerates the candidate spans of every title once and counts them in
the corpus with one vectorised pass over the span index (counts are what "single the item out"
means); the rules then only sort small lists.

The default rule (`multi_span_rule`, "intent first, then the rarest"):
  1. intent: while fewer than n_spans are chosen, take the candidate span made only of query
     tokens that covers the most query tokens not yet covered (ties: rarer, then earlier);
  2. identity: fill the remaining places with the rarest spans (lowest corpus count; ties:
     shorter, then earlier) that overlap no chosen span.
Spans are returned intent spans first, each group in that order. Indexing examples (no query)
use step 2 only. Any callable with the same signature can replace it (LexicalRetriever's
`span_rule`).

`seal_rule` gives SEAL's targets: n-grams of the title (one per generation), the span with the
most query tokens first, then spans drawn at random (seeded) from the title's candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gsid.text.span_index import SpanIndex

SpanRule = Callable[..., list[list[int]]]


class TitleSpans:
    """Candidate spans (start, length, corpus count) of every title of a span index."""

    def __init__(
        self,
        index: SpanIndex,
        continuation: np.ndarray | None = None,
        max_len: int = 4,
        punctuation: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.max_len = int(max_len)
        V = index.vocab_size
        self.continuation = (
            np.zeros(V, bool) if continuation is None else np.asarray(continuation, bool)
        )
        punct = np.zeros(V, bool) if punctuation is None else np.asarray(punctuation, bool)
        grams: list[list[int]] = []
        owner: list[tuple[int, int, int]] = []  # (item, start, length)
        for item in range(index.n_items):
            toks = index.title(item)
            n = len(toks)
            cont, pun = self.continuation[toks], punct[toks]
            for s in range(n):
                if cont[s] or pun[s]:
                    continue
                for length in range(1, min(self.max_len, n - s) + 1):
                    if (s + length < n and cont[s + length]) or pun[s + length - 1]:
                        continue  # would end inside a word, or on punctuation
                    grams.append(toks[s : s + length].tolist())
                    owner.append((item, s, length))
        counts = index.count(grams) if grams else np.zeros(0, np.int64)
        arr = np.asarray(owner, np.int64).reshape(-1, 3)
        self.item = arr[:, 0]
        self.start = arr[:, 1]
        self.length = arr[:, 2]
        self.counts = counts.astype(np.int64)
        self.bounds = np.searchsorted(self.item, np.arange(index.n_items + 1))

    def of(self, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(C,) starts, lengths, counts of item's candidates, and its title tokens."""
        a, b = self.bounds[item], self.bounds[item + 1]
        return self.start[a:b], self.length[a:b], self.counts[a:b], self.index.title(item)


def _overlaps(s: int, n: int, taken: list[tuple[int, int]]) -> bool:
    return any(s < ts + tn and ts < s + n for ts, tn in taken)


def multi_span_rule(
    spans: TitleSpans,
    item: int,
    query: Sequence[int] | None,
    n_spans: int = 3,
    max_len: int = 4,
    rng: np.random.Generator | None = None,
) -> list[list[int]]:
    """Up to n_spans spans of item's title: query intent first, then the rarest."""
    starts, lengths, counts, toks = spans.of(item)
    ok = lengths <= max_len
    starts, lengths, counts = starts[ok], lengths[ok], counts[ok]
    taken: list[tuple[int, int]] = []
    if query is not None and len(query):
        qset = set(int(t) for t in query)
        in_q = np.fromiter((int(t) in qset for t in toks), np.int64, len(toks))
        cum = np.concatenate([[0], np.cumsum(in_q)])
        only_q = np.flatnonzero(cum[starts + lengths] - cum[starts] == lengths)  # all query tokens
        cands = [(int(starts[i]), int(lengths[i]), int(counts[i])) for i in only_q]
        covered: set[int] = set()
        while len(taken) < n_spans:
            best, best_key = None, None
            for s, n, c in cands:
                if _overlaps(s, n, taken):
                    continue
                new = len({int(t) for t in toks[s : s + n]} - covered)
                key = (-new, c, s)
                if new and (best_key is None or key < best_key):
                    best, best_key = (int(s), int(n)), key
            if best is None:
                break
            taken.append(best)
            covered |= {int(t) for t in toks[best[0] : best[0] + best[1]]}
    n_intent = len(taken)
    order = np.lexsort((starts, lengths, counts))  # rarest, then shorter, then earlier
    for i in order:
        if len(taken) >= n_spans:
            break
        s, n = int(starts[i]), int(lengths[i])
        if not _overlaps(s, n, taken):
            taken.append((s, n))
    intent, rest = taken[:n_intent], taken[n_intent:]
    return [toks[s : s + n].tolist() for s, n in intent + rest]


def seal_rule(
    spans: TitleSpans,
    item: int,
    query: Sequence[int] | None,
    n_spans: int = 3,
    max_len: int = 4,
    rng: np.random.Generator | None = None,
) -> list[list[int]]:
    """SEAL's targets: title n-grams, the most query-like first, then random ones (each one
    span is one training example)."""
    rng = rng or np.random.default_rng(0)
    starts, lengths, _, toks = spans.of(item)
    ok = lengths <= max_len
    starts, lengths = starts[ok], lengths[ok]
    if len(starts) == 0:
        return []
    picked: list[int] = []
    if query is not None and len(query):
        qset = set(int(t) for t in query)
        hits = [
            sum(int(t) in qset for t in toks[s : s + n])
            for s, n in zip(starts, lengths, strict=True)
        ]
        if max(hits) > 0:
            picked.append(int(np.argmax(hits)))
    rest = [i for i in rng.permutation(len(starts)) if i not in picked]
    picked += [int(i) for i in rest[: max(n_spans - len(picked), 0)]]
    return [toks[starts[i] : starts[i] + lengths[i]].tolist() for i in picked]


RULES: dict[str, SpanRule] = {"multi_span": multi_span_rule, "seal": seal_rule}
