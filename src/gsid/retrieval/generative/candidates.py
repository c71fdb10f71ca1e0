"""From generated IDs to candidate items, shared by every generative retriever: the prior order
of items that share an ID, the item range of each beam, their expansion into candidates, the
probability-mass cut of the beams and the k best candidates of each query.

Items are stored in trie order (code-sorted, items of one ID by prior), so the items of a
generated ID (or ID prefix) are one contiguous range of positions and no permutation is kept.
"""

from __future__ import annotations

import numpy as np
import torch

from gsid.ids.semantic_ids import SemanticIDs
from gsid.retrieval.trie import CodeTrie


def log_prior(pairs, q_items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item prior from the training log: (sum of training weights, number of training
    queries), both (n_items,). pairs: `dataset.training_pairs(...)`; q_items (P,): the item row
    of each pair."""
    weight = np.zeros(n_items)
    n_queries = np.zeros(n_items)
    if len(pairs):
        np.add.at(weight, q_items, pairs["weight"].to_numpy(float))
        np.add.at(n_queries, q_items, 1.0)
    return weight, n_queries


def prior_order(
    ids: SemanticIDs, rows: np.ndarray, weight: np.ndarray, n_queries: np.ndarray
) -> np.ndarray:
    """ranked[j] = dataset item row at code-sorted position j, with items that share a whole ID
    ordered by prior (they form one contiguous run of the sorted order): higher weight, then more
    training queries, then catalogue order. rows (N,): artifact row of each dataset item."""
    order = ids.order_  # artifact rows in code order
    to_item = np.empty(ids.n_items, np.int64)
    to_item[rows] = np.arange(len(rows))
    item_sorted = to_item[order]  # dataset row at sorted position
    sc = ids.sorted_codes()[0]
    group = np.zeros(len(sc), np.int64)
    if len(sc) > 1:
        group[1:] = np.cumsum((sc[1:] != sc[:-1]).any(axis=1))
    # lexsort: last key is primary -> group, then -weight, -n_queries, catalogue row
    perm = np.lexsort((item_sorted, -n_queries[item_sorted], -weight[item_sorted], group))
    return item_sorted[perm]


def beam_ranges(
    trie: CodeTrie, nodes: torch.Tensor, limit: int, per_query: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generated IDs (B, R) trie nodes (-1 = none) -> the sorted-position range [lo, lo + cnt)
    of each beam's items, both (B * R,): at most `limit` items per ID and, with `per_query`, at
    most that many per query in beam order (the last beam that fits is cut short)."""
    B, R = nodes.shape
    nodes_f = nodes.reshape(-1)
    alive = nodes_f >= 0
    safe = nodes_f.clamp(min=0)
    lo = torch.where(alive, trie.lo[safe], 0).numpy()
    cnt = np.minimum(torch.where(alive, trie.n_end[safe], 0).numpy(), limit)
    if per_query is not None:
        before = (np.cumsum(cnt.reshape(B, R), axis=1) - cnt.reshape(B, R)).reshape(-1)
        cnt = np.clip(per_query - before, 0, cnt)
    return lo, cnt


def expand_ids(
    trie: CodeTrie,
    ranked: np.ndarray | None,
    nodes: torch.Tensor,
    scores: torch.Tensor,
    limit: int,
    per_query: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generated IDs (B, R) trie nodes (-1 = none) and their scores -> the items whose whole ID
    is each node (at most `limit` per ID and `per_query` per query, see beam_ranges; in `ranked`
    order; None: items are stored in trie order and the sorted position is the row), flat and in
    beam order: item_rows (M,), item_scores (M,) (the ID's score), query (M,) (the query row,
    nondecreasing) and per_q (B,) (candidates per query). Vectorised: the ranges of all beams
    are expanded with one repeat."""
    lo, cnt = beam_ranges(trie, nodes, limit, per_query)
    pos, query, per_q = expand_ranges(lo, cnt, nodes.shape[1])
    item_rows = pos if ranked is None else ranked[pos]
    item_scores = np.repeat(scores.reshape(-1).numpy(), cnt)  # each beam's score, per item
    return item_rows, item_scores, query, per_q


def expand_ranges(
    lo: np.ndarray, cnt: np.ndarray, R: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The beam ranges of beam_ranges, expanded with one repeat: every candidate's sorted
    position (M,), its query (M,) (nondecreasing) and the candidates per query (B,)."""
    total = int(cnt.sum())
    beam_of = np.repeat(np.arange(len(cnt)), cnt)
    offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    pos = np.repeat(lo, cnt) + offs
    query = beam_of // R
    return pos, query, np.bincount(query, minlength=len(cnt) // R)


def mass_cut(nodes: torch.Tensor, log_probs: torch.Tensor, mass: float) -> torch.Tensor:
    """Beams (B, W), best first, with their ID log-probs: a beam is dropped (node -1) once the
    beams before it hold `mass` of the probability, so each query keeps at least one."""
    p = log_probs.exp()
    before = torch.cumsum(p, dim=1) - p
    return torch.where(before >= mass, torch.full_like(nodes, -1), nodes)


def top_per_query(
    rows: np.ndarray,
    scores: np.ndarray,
    query: np.ndarray,
    per_q: np.ndarray,
    k: int,
    stable: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k best-scored candidates of each query (candidates grouped by query, per_q of
    them each), best first: rows, scores, query, rank. One padded top-k instead of sorting every
    candidate: with prefix beams a batch has over a million candidates, and their lexsort took
    longer than scoring them. `stable`: equal scores keep their beam order (a full sort; for
    the few candidates of whole-ID beams)."""
    B = len(per_q)
    start = np.cumsum(per_q) - per_q
    rank = np.arange(len(rows)) - np.repeat(start, per_q)
    if stable:
        order = np.lexsort((rank, -scores, query))  # by query, score descending, beam order
        rank = np.arange(len(rows)) - np.repeat(start, per_q)  # ranks of the sorted positions
        keep = rank < k
        order = order[keep]
        return rows[order], scores[order], query[order], rank[keep]
    width = int(per_q.max(initial=0))
    if width == 0:
        return rows, scores, query, rank
    values = torch.from_numpy(scores)
    table = torch.full((B, width), float("-inf"), dtype=values.dtype)
    table[torch.from_numpy(query), torch.from_numpy(rank)] = values
    best, at = table.topk(min(k, width), dim=1)  # (B, k'), best first
    at = at.numpy()
    keep = at < per_q[:, None]  # padding sorts last
    q, r = np.nonzero(keep)
    flat = start[q] + at[q, r]
    return rows[flat], best.numpy()[q, r], q, r
