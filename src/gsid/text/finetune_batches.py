"""What the encoder fine-tuning trains on: its (query, item) examples, batches without
repeated items (optionally drawn from k-means cells of the items: grouped hard negatives), the
known positives masked out of a query's softmax, and the frozen item vectors of the
"frozen-items" towers."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from gsid.data.normalize import normalize_text
from gsid.errors import GsidError
from gsid.text.contrastive import masked_info_nce

if TYPE_CHECKING:  # for annotations only (it imports this module)
    from gsid.text.finetune import FineTuneConfig


def training_examples(
    dataset, config: FineTuneConfig, split: str = "train"
) -> tuple[list[str], list[str], list[str]]:
    """(queries, item texts, item ids) of the positive pairs, sampled down to max_pairs."""
    pairs = dataset.training_pairs(split)
    if len(pairs) < 2:
        raise GsidError(
            f"{dataset.name!r} has {len(pairs)} training pair(s) in split {split!r}; contrastive "
            f"fine-tuning needs at least 2 (query, relevant item) pairs: add judgments or a log"
        )
    if config.max_pairs is not None and len(pairs) > config.max_pairs:
        pairs = pairs.sample(n=config.max_pairs, random_state=config.seed)
    text_of = dict(zip(dataset.item_ids, dataset.item_texts(config.with_description), strict=True))
    items = pairs["item_id"].tolist()
    return pairs["query"].tolist(), [text_of[i] for i in items], items


def grouped_order(groups: np.ndarray, run: int, rng: random.Random) -> list[int]:
    """Pair indices in runs of `run` pairs of one group (each group shuffled, then cut into
    runs), the runs shuffled: consecutive batches of n * run pairs then span about n groups."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    runs = []
    for g in sorted(members):
        idx = members[g]
        rng.shuffle(idx)
        runs += [idx[s : s + run] for s in range(0, len(idx), run)]
    rng.shuffle(runs)
    return [i for r in runs for i in r]


def batches_without_duplicates(
    queries: list[str],
    item_texts: list[str],
    item_ids: list[str],
    batch_size: int,
    rng: random.Random,
    groups: np.ndarray | None = None,
    groups_per_batch: int = 0,
) -> Iterator[list[int]]:
    """Shuffled batches of pair indices in which no item id, item text or query repeats.

    A pair that would repeat one waits for a later batch (as sentence-transformers'
    NoDuplicatesDataLoader does); a last batch of fewer than 2 pairs is dropped. With `groups`
    (one group id per pair), the batches are cut from grouped_order: about `groups_per_batch`
    groups each.
    """
    if groups is not None and groups_per_batch > 0:
        order = grouped_order(groups, max(1, batch_size // groups_per_batch), rng)
    else:
        order = list(range(len(queries)))
        rng.shuffle(order)
    while order:
        batch, seen, rest = [], set(), []
        for n, i in enumerate(order):
            keys = {("q", normalize_text(queries[i])), ("i", item_ids[i]), ("t", item_texts[i])}
            if keys & seen:
                rest.append(i)
                continue
            batch.append(i)
            seen |= keys
            if len(batch) == batch_size:
                rest.extend(order[n + 1 :])
                break
        if len(batch) < 2:
            return
        yield batch
        order = rest


def known_positives(
    batch: list[int], queries: list[str], ids: list[str], relevant: dict[str, set[str]]
) -> np.ndarray:
    """(B, B) bool: True where the item of pair b is another known relevant item of the query of
    pair a (a != b), i.e. a false negative to mask out of row a of the in-batch softmax."""
    rel = [relevant[normalize_text(queries[i])] for i in batch]
    return np.array(
        [[a != b and ids[j] in rel[a] for b, j in enumerate(batch)] for a in range(len(batch))],
        dtype=bool,
    )


def item_cells(
    texts: list[str],
    base_model: str,
    cells: int,
    seed: int,
    device: str,
    cache_dir: str | os.PathLike | None,
    show_progress: bool | None,
) -> np.ndarray:
    """k-means cell (faiss) of each text's base-encoder embedding: the groups of grouped
    batches. Distinct texts are encoded once (memoised in cache_dir)."""
    import faiss

    from gsid.text.encoders import SentenceEncoder

    distinct = sorted(set(texts))
    emb = SentenceEncoder(base_model, device=device).encode_cached(
        distinct, cache_dir, show_progress
    )
    emb = np.ascontiguousarray(emb, np.float32)
    k = min(cells, len(distinct))
    km = faiss.Kmeans(emb.shape[1], k, niter=20, seed=seed, spherical=True)
    km.train(emb)
    cell = km.index.search(emb, 1)[1][:, 0]
    row = {t: n for n, t in enumerate(distinct)}
    return cell[[row[t] for t in texts]].astype(np.int64)


# ---------------------------------------------------------------------- training


class FrozenItems:
    """towers="frozen-items": the item vectors (N, H) that stay fixed, each pair's item row and,
    for catalogue negatives, the rows of each query's relevant items (masked in its softmax)."""

    def __init__(self, dataset, config, base_model, device, queries, ids, item_embeddings,
                 cache_dir, show_progress) -> None:  # fmt: skip
        import torch

        if item_embeddings is None:
            from gsid.text.encoders import SentenceEncoder

            item_embeddings = SentenceEncoder(base_model, device=device).encode_cached(
                dataset.item_texts(config.with_description), cache_dir, show_progress
            )
        if len(item_embeddings) != len(dataset.items):
            raise GsidError(
                f"item_embeddings has {len(item_embeddings)} rows but the catalogue "
                f"{len(dataset.items)} items; pass one embedding per item, in catalogue order"
            )
        row_of = {iid: r for r, iid in enumerate(dataset.item_ids)}
        self.vecs = torch.from_numpy(np.ascontiguousarray(item_embeddings, np.float32))
        self.rows = np.array([row_of[i] for i in ids])
        self.device = device
        self.rows_of_query: dict[str, list[int]] = {}
        if config.catalogue_negatives:
            self.vecs = self.vecs.to(device)
            for q, r in zip(queries, self.rows, strict=True):
                self.rows_of_query.setdefault(normalize_text(q), []).append(int(r))

    def catalogue_loss(self, q_emb, batch, queries, scale: float):
        """A full softmax over every frozen item vector; the query's other relevant items are
        no negatives (masked), its own item the target."""
        import torch

        logits = scale * q_emb @ self.vecs.T  # (B, N)
        mask = torch.zeros_like(logits, dtype=torch.bool)
        for b, i in enumerate(batch):
            mask[b, self.rows_of_query[normalize_text(queries[i])]] = True
            mask[b, int(self.rows[i])] = False
        return masked_info_nce(logits, torch.as_tensor(self.rows[batch], device=self.device), mask)


def grouped_negatives(config, base_model, device, queries, texts, ids, cache_dir, show_progress):
    """Per epoch the k-means cells that batches are drawn from, and each query's relevant items
    (no negatives in its row of the in-batch softmax)."""
    cells = config.cells_per_epoch()
    by_k = {
        k: item_cells(texts, base_model, k, config.seed, device, cache_dir, show_progress)
        for k in sorted(set(cells))
    }
    relevant: dict[str, set[str]] = {}
    for q, i in zip(queries, ids, strict=True):
        relevant.setdefault(normalize_text(q), set()).add(i)
    return [by_k[k] for k in cells], relevant
