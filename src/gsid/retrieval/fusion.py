"""Reciprocal-rank fusion (RRF) of several retrievers' results, e.g. generative IDs + BM25.

    fused = reciprocal_rank_fusion([gr.search(qs, 100), bm25.search(qs, 100)], k=10)
    hybrid = HybridRetriever([GenerativeRetriever(), BM25Retriever()]).index(dataset)
    ids, scores = hybrid.search(qs, k=10)

RRF (Cormack et al., SIGIR 2009): score(item) = sum_r weight_r / (c + rank_r(item)), rank from 1.
It needs no score calibration, which matters here: beam log-probs and BM25 scores live on
unrelated scales.

The constant defaults to c = 10, not the paper's 60 (tuned there on TREC runs of 1,000
documents). With lists of 100, c = 60 makes rank 1 worth barely more than rank 10 (1/61 against
1/70), so the fused top 10 mostly counts how many lists hold an item. c = 10 gave +2.7 to +4.1
R@10 (same R@100) on two seeds of the synthetic marketplace and +2.3 on Home Depot dev, for
gsid-gr fused with BM25 (benchmarks/NOTES.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gsid.errors import GsidError
from gsid.retrieval.base import Retriever, SearchResults, load_retriever

RRF_C = 10.0
DEFAULT_PARTS = ("gsid-gr", "bm25")


def reciprocal_rank_fusion(
    results: Sequence[SearchResults],
    k: int,
    c: float = RRF_C,
    weights: Sequence[float] | None = None,
) -> SearchResults:
    """Fuse result lists of the same queries; returns the top k by RRF score per query
    (ties broken by first appearance: the earlier list, then the better rank)."""
    if not results:
        raise GsidError("reciprocal_rank_fusion needs at least one SearchResults")
    n = results[0].ids.shape[0]
    if any(r.ids.shape[0] != n for r in results):
        raise GsidError(
            f"all results must cover the same queries; got {[r.ids.shape[0] for r in results]} rows"
        )
    weights = [1.0] * len(results) if weights is None else [float(w) for w in weights]
    if len(weights) != len(results):
        raise GsidError(
            f"{len(weights)} weights for {len(results)} result lists; give one per list"
        )
    if c < 0:
        raise GsidError(f"the RRF constant c must be >= 0, got {c}")
    out = SearchResults.empty(n, k)
    for q in range(n):
        acc: dict[Any, float] = {}
        for res, w in zip(results, weights, strict=True):
            for rank, item in enumerate(res.ids[q]):
                if item is None or not np.isfinite(res.scores[q, rank]):
                    continue
                acc[item] = acc.get(item, 0.0) + w / (c + rank + 1)
        # dicts keep insertion order and sorted() is stable: ties keep first appearance
        best = sorted(acc.items(), key=lambda kv: -kv[1])[:k]
        for j, (item, score) in enumerate(best):
            out.ids[q, j] = item
            out.scores[q, j] = score
    return out


class HybridRetriever(Retriever):
    """Several retrievers fused by RRF. `depth`: how many results each one returns for fusion.
    Each part is saved in its own sub-directory (part0, part1, ...).

    The parts are given as retriever objects (`retrievers`), or by method name (`parts`, with
    `part_options` keyed by name, or one dict per part), which is how `gsid bench` / `gsid demo`
    build them:
    `--methods hybrid --set 'hybrid.parts=["gsid-gr","bm25"]'`. With neither, the parts are
    DEFAULT_PARTS: GSID generative retrieval and BM25."""

    name = "hybrid"

    def __init__(
        self,
        retrievers: Sequence[Retriever] | None = None,
        c: float = RRF_C,
        weights: Sequence[float] | None = None,
        depth: int = 100,
        parts: Sequence[str] | None = None,
        part_options: dict[str, dict[str, Any]] | list[dict[str, Any]] | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if retrievers is not None and parts is not None:
            raise GsidError("give the hybrid's parts as retrievers or as method names, not both")
        # by method name (a loading hybrid then replaces them by its saved parts)
        if retrievers is None:
            from gsid.retrieval.registry import make_retriever

            parts = list(DEFAULT_PARTS if parts is None else parts)
            if "hybrid" in parts:
                raise GsidError("a hybrid cannot contain another hybrid")
            if isinstance(part_options, list | tuple):  # one dict per part (config() writes it)
                if len(part_options) != len(parts):
                    raise GsidError(f"{len(part_options)} part_options for {len(parts)} parts")
                per_part = list(part_options)
            else:  # keyed by method name (the CLI's form)
                part_options = dict(part_options or {})
                stray = sorted(set(part_options) - set(parts))
                if stray:
                    raise GsidError(f"part_options names {stray}, which are not in parts {parts}")
                per_part = [part_options.get(m) for m in parts]
            shared = {"cache_dir": cache_dir, "seed": seed, "device": device}
            retrievers = [
                make_retriever(m, o, **shared) for m, o in zip(parts, per_part, strict=True)
            ]
        self.retrievers = list(retrievers or [])
        if weights is not None and self.retrievers and len(weights) != len(self.retrievers):
            raise GsidError(f"{len(weights)} weights for {len(self.retrievers)} retrievers")
        if depth < 1:
            raise GsidError(f"depth must be a positive integer, got {depth}")
        self.c = float(c)
        self.weights = None if weights is None else [float(w) for w in weights]
        self.depth = int(depth)

    def config(self) -> dict[str, Any]:
        """The parts by method name with their own configs, so `HybridRetriever(**config())` is
        an unfitted copy and reports say what was fused. Parts that are not registered methods
        cannot be named: then parts=[] and only a saved hybrid (its part directories) restores
        them."""
        from gsid.retrieval.registry import METHODS, method_class

        named = all(r.name in METHODS and type(r) is method_class(r.name) for r in self.retrievers)
        return {
            "c": self.c,
            "weights": self.weights,
            "depth": self.depth,
            "parts": [r.name for r in self.retrievers] if named else [],
            "part_options": [r.config() for r in self.retrievers] if named else [],
        }

    def _index(self, dataset, show_progress: bool | None) -> None:
        if not self.retrievers:
            raise GsidError(
                "HybridRetriever needs retrievers to fuse, e.g. [GenerativeRetriever(), BM25Retriever()]"
            )
        for r in self.retrievers:
            r._fit(dataset, show_progress)  # the hybrid keeps the catalogue and provenance once

    def semantic_ids(self):
        return next((r.semantic_ids() for r in self.retrievers if r.semantic_ids()), None)

    @property
    def can_add(self) -> bool:
        return all(r.can_add for r in self.retrievers)

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        for r in self.retrievers:
            r._extend(new, catalogue, show_progress)
        self.item_ids_ = catalogue.item_ids

    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        parts = [r.search(queries, max(k, self.depth), show_progress) for r in self.retrievers]
        return reciprocal_rank_fusion(parts, k, self.c, self.weights)

    def index_bytes(self) -> int:
        return int(sum(r.index_bytes() for r in self.retrievers))

    def _save_state(self, directory: Path) -> None:
        for i, r in enumerate(self.retrievers):
            r.save(directory / f"part{i}")

    def _saved_to(self, path: Path) -> None:
        for i, r in enumerate(self.retrievers):
            r._saved_to(path / f"part{i}")

    def _load_state(self, directory: Path) -> None:
        parts = sorted(
            (p for p in directory.glob("part*") if p.is_dir()), key=lambda p: int(p.name[4:])
        )
        self.retrievers = [load_retriever(p) for p in parts]  # each checked as it loads
