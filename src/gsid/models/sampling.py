"""Batches for progressive training: multi-query sampling and prefix-grouped batches.

    data = TrainData.from_dataset(dataset)             # item texts + each item's positive queries
    for items, queries, q_item in batches(data, cfg, level, epoch, item_codes):
        ...  # items (B,) item rows; queries (B*m,) texts; q_item (B*m,) batch position of their item

Multi-query sampling: every item in a batch brings `queries_per_item` of its queries (drawn
with replacement when it has fewer, so every rank of a distributed run holds equal shapes) and
the contrastive loss counts all of them as positives. Prefix-grouped batches (from step 2 on):
items sharing their current code prefix are laid out together, so a batch is full of items that
earlier steps could not tell apart: the hard negatives step t must separate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gsid.errors import DataValidationError
from gsid.models.config import GSIDConfig


@dataclass
class TrainData:
    """item_texts (N,); item_queries[n]: the query texts that lead to item n (may be empty);
    has_log[n]: whether those came from a log (else pseudo-queries are drawn from the title)."""

    item_ids: np.ndarray
    item_texts: list[str]
    item_queries: list[list[str]]
    has_log: np.ndarray | None = None

    @classmethod
    def from_dataset(
        cls, dataset, split: str = "train", pseudo_per_item: int = 2, seed: int = 0
    ) -> TrainData:
        """Positive queries per item from `dataset.training_pairs(split)`; items without any get
        `pseudo_per_item` pseudo-queries cut from their own title (0: none). Drawn once, so
        every query text is known up front (and its encoding can be cached)."""
        item_ids = dataset.item_ids
        texts = dataset.item_texts()
        pos = {iid: n for n, iid in enumerate(item_ids)}
        queries: list[list[str]] = [[] for _ in item_ids]
        pairs = dataset.training_pairs(split)
        for q, iid in zip(pairs["query"].tolist(), pairs["item_id"].tolist(), strict=True):
            queries[pos[iid]].append(str(q))
        if len(texts) < 2:
            raise DataValidationError(
                f"GSID training needs at least 2 items (got {len(texts)}): the contrastive loss "
                f"needs in-batch negatives"
            )
        has_log = np.asarray([bool(qs) for qs in queries])
        rng = np.random.default_rng([seed, 7])
        for n in np.flatnonzero(~has_log):
            queries[n] = sorted({pseudo_query(texts[n], rng) for _ in range(pseudo_per_item)})
        return cls(item_ids=item_ids, item_texts=texts, item_queries=queries, has_log=has_log)

    def all_queries(self) -> list[str]:
        """Every distinct query text, in first-seen order."""
        return list(dict.fromkeys(q for qs in self.item_queries for q in qs))

    @property
    def n_items(self) -> int:
        return len(self.item_texts)

    def query_sets(self) -> dict[str, set[int]]:
        """query text -> rows of every item it leads to (for the multi-positive mask)."""
        out: dict[str, set[int]] = {}
        for n, qs in enumerate(self.item_queries):
            for q in qs:
                out.setdefault(q, set()).add(n)
        return out

    def n_with_queries(self) -> int:
        """Items with at least one logged (not pseudo) query."""
        if self.has_log is None:  # built by hand: every query counts as logged
            return sum(1 for qs in self.item_queries if qs)
        return int(np.asarray(self.has_log, bool).sum())


def pseudo_query(title: str, rng: np.random.Generator) -> str:
    """A query-like span of the item's own text (used when an item has no logged query):
    2-4 consecutive words, or the whole title when it is shorter."""
    words = title.split()
    if len(words) <= 2:
        return title
    n = int(rng.integers(2, min(4, len(words)) + 1))
    start = int(rng.integers(0, len(words) - n + 1))
    return " ".join(words[start : start + n])


def item_order(
    n_items: int,
    cfg: GSIDConfig,
    level: int,
    rng: np.random.Generator,
    item_codes: np.ndarray | None,
) -> np.ndarray:
    """Order of the items in one epoch: shuffled, or grouped by their code prefix of length
    `level` (groups in random order, items shuffled inside each group)."""
    perm = rng.permutation(n_items)
    if not cfg.prefix_batches or level == 0 or item_codes is None:
        return perm
    prefix = item_codes[perm, :level]  # (N, level)
    _, group = np.unique(prefix, axis=0, return_inverse=True)
    group = group.ravel()
    shuffled_groups = rng.permutation(group.max() + 1)
    key = shuffled_groups[group]
    return perm[np.argsort(key, kind="stable")]


def batches(
    data: TrainData,
    cfg: GSIDConfig,
    level: int,
    epoch: int,
    item_codes: np.ndarray | None = None,
    world_size: int = 1,
) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
    """Deterministic given (seed, level, epoch): resuming regenerates the same schedule.
    Yields global batches; a distributed trainer slices them per rank (sizes divide evenly)."""
    rng = np.random.default_rng([cfg.seed, level, epoch])
    order = item_order(data.n_items, cfg, level, rng, item_codes)
    m = cfg.queries_per_item if cfg.multi_query else 1
    B = cfg.batch_size
    for start in range(0, len(order), B):
        items = order[start : start + B]
        items = items[: len(items) - len(items) % world_size]
        if len(items) < max(2, world_size):
            continue
        queries: list[str] = []
        q_item: list[int] = []
        for b, n in enumerate(items):
            own = data.item_queries[n]
            if not own:
                continue
            # all distinct queries first (shuffled), then repeats when the item has fewer than m
            picks = rng.permutation(len(own))[:m].tolist()
            picks += rng.integers(0, len(own), m - len(picks)).tolist()
            for j in picks:
                queries.append(own[j])
                q_item.append(b)
        if not queries:
            continue
        yield items, queries, np.asarray(q_item, dtype=np.int64)


def n_batches(n_items: int, cfg: GSIDConfig) -> int:
    return max(1, -(-n_items // cfg.batch_size))


def positive_mask(
    items: np.ndarray, queries: list[str], q_item: np.ndarray, query_sets: dict[str, set[int]]
) -> np.ndarray:
    """(Q, I) bool: query a is a positive of batch item b when the log links them (or it was
    drawn for b). Catches the same query sampled for two items of the batch."""
    pos = np.zeros((len(queries), len(items)), dtype=bool)
    pos[np.arange(len(queries)), q_item] = True
    col = {int(n): b for b, n in enumerate(items)}
    for a, q in enumerate(queries):
        for n in query_sets.get(q, ()):
            b = col.get(n)
            if b is not None:
                pos[a, b] = True
    return pos
