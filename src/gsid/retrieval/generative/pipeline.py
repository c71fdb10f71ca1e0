"""The one generative retriever pipeline, shared by `gr` and `gsid-gr`:

    queries -> step scorer -> constrained beam search over the trie of IDs -> (mass cut)
            -> the items of each generated ID, in beam order -> prior order, or the cosine of
               query and item vectors over the first `rescore_depth` candidates -> top k.

A subclass says how it was indexed (which IDs, which model) and supplies the step scorer of a
batch (`_begin`) and, for rescore="cosine", the query vectors (`_query_vectors`); the items are
stored in trie order (code-sorted, items of one ID by the training-log prior), so the items of a
generated ID or ID prefix are one contiguous range and no permutation is kept.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import Any, NamedTuple

import numpy as np
import torch

from gsid._progress import progress
from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.retrieval.base import Retriever, SearchResults
from gsid.retrieval.beam import constrained_beam_search
from gsid.retrieval.generative.candidates import (
    beam_ranges,
    expand_ids,
    expand_ranges,
    log_prior,
    mass_cut,
    prior_order,
    top_per_query,
)
from gsid.retrieval.generative.cosine import cosine_scores
from gsid.retrieval.trie import CodeTrie

RESCORE = ("prior", "cosine")


class Decoding(NamedTuple):
    """What a batch's beam search needs from the retriever's model (see `_begin`)."""

    logits_fn: Any  # (state, tokens (B, w, t)) -> log-probs (B, w, K + 1)
    state: Any
    device: torch.device
    reorder_fn: Any = None  # (state, src) -> state, for a per-beam cache
    extra: Any = None  # whatever `_query_vectors` needs of this batch


class IDGenerativeRetriever(Retriever):
    """Shared search of the generative retrievers (see the module docstring).

    beam_width: IDs generated per query. length_penalty: rank IDs by log-prob / length**alpha.
    rescore: "prior" or "cosine". rescore_depth: candidates per query that "cosine" re-ranks,
    in beam order (None: max(k, beam_width)). beam_mass: keep the generated IDs, best first,
    until their probabilities add up to this share (None: all). batch_size: queries per beam
    search. `stable_rescore` (class attribute): equal cosines keep beam order (a full sort)."""

    stable_rescore = False

    def __init__(
        self,
        beam_width: int,
        rescore: str,
        rescore_depth: int | None,
        beam_mass: float | None,
        length_penalty: float,
        batch_size: int,
    ) -> None:
        super().__init__()
        if rescore not in RESCORE:
            raise GsidError(f"rescore {rescore!r} is unknown; choose one of {list(RESCORE)}")
        for arg, value in (("beam_width", beam_width), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise GsidError(f"{arg} must be an integer >= 1, got {value!r}")
        if rescore_depth is not None and (
            isinstance(rescore_depth, bool)
            or not isinstance(rescore_depth, int | np.integer)
            or rescore_depth < 1
        ):
            raise GsidError(f"rescore_depth must be None or an integer >= 1, got {rescore_depth!r}")
        if beam_mass is not None and (
            isinstance(beam_mass, bool)
            or not isinstance(beam_mass, float | int)
            or not 0 < beam_mass <= 1
        ):
            raise GsidError(f"beam_mass must be None or a number in (0, 1], got {beam_mass!r}")
        self.beam_width = int(beam_width)
        self.rescore = rescore
        self.rescore_depth = None if rescore_depth is None else int(rescore_depth)
        self.beam_mass = None if beam_mass is None else float(beam_mass)
        self.length_penalty = float(length_penalty)
        self.batch_size = int(batch_size)
        self.trie_: CodeTrie | None = None
        self.item_vectors_: Any = None  # (N, D) float16 in trie order (or PQ), "cosine" only

    # ---- to implement
    @abstractmethod
    def _begin(self, batch: list[str]) -> Decoding:
        """Encode a batch of queries and return what the beam search needs."""

    def _query_vectors(self, batch: list[str], decoding: Decoding) -> torch.Tensor:
        """(B, D) float32 unit query vectors for rescore="cosine"."""
        raise NotImplementedError

    def _item_scores(
        self, Q: torch.Tensor, rows: np.ndarray, query: np.ndarray, beams: tuple
    ) -> np.ndarray:
        """Scores of the candidates (rows (M,), trie positions) against their queries."""
        return cosine_scores(self.item_vectors_, Q, rows, query, beams)

    def _threads(self) -> contextlib.AbstractContextManager:
        """The torch thread setting the whole search runs under."""
        return contextlib.nullcontext()

    # ---- index helpers
    def _store_in_trie_order(self, ids, dataset, vectors: np.ndarray | None) -> np.ndarray:
        """Keep the items in trie order (items of one ID by the training-log prior): item_ids_
        and, for "cosine", `vectors` (N, D) in catalogue order as float16. Returns the order."""
        item_ids = np.asarray(dataset.item_ids, dtype=object)
        rows = np.fromiter((ids.index_of(i) for i in item_ids), np.int64, len(item_ids))
        pairs = dataset.training_pairs("train")
        pos = {s: i for i, s in enumerate(item_ids)}
        q_items = pairs["item_id"].map(pos).to_numpy(np.int64)
        ranked = prior_order(ids, rows, *log_prior(pairs, q_items, len(item_ids)))
        self.item_ids_ = item_ids[ranked]
        if self.rescore == "cosine" and vectors is not None:
            self.item_vectors_ = np.asarray(vectors)[ranked].astype(np.float16)
        return ranked

    def _insert_in_trie_order(self, ids, vectors: np.ndarray | None) -> tuple:
        """Item ids and vectors after appending the last items of `ids` (the grown IDs, old
        items first) to the stored ones: a stable sort by code keeps every old item's order
        within its ID, and puts the new items (no training-log prior) after them."""
        n_old = len(self.item_ids_)
        item_ids = np.concatenate([self.item_ids_, ids.item_ids[n_old:]])
        rows = np.fromiter((ids.index_of(i) for i in item_ids), np.int64, len(item_ids))
        order = np.lexsort(ids.codes[rows].T[::-1])  # stable; level 0 is the primary key
        out_vectors = None
        if self.item_vectors_ is not None:
            if vectors is None or not isinstance(self.item_vectors_, np.ndarray):
                raise GsidError(
                    f"{self.name}: items cannot be added to product-quantised vectors (they "
                    f"would need new PQ codebooks); rebuild the index, or build it with "
                    f"vectors='float16'"
                )
            both = np.concatenate([self.item_vectors_, vectors.astype(np.float16)])
            out_vectors = both[order]
        return item_ids[order], out_vectors

    def _check_trie_order(self, ids, directory) -> None:
        """A loaded retriever's items must be stored in the trie's order (their codes sorted)."""
        n = ids.n_items
        vecs = getattr(self.item_vectors_, "codes", self.item_vectors_)
        if len(self.item_ids_) != n or (vecs is not None and len(vecs) != n):
            raise ArtifactError(
                f"{directory}: item_ids / item vectors do not match the semantic IDs ({n} "
                f"items); re-index and save again"
            )
        rows = np.fromiter((ids.index_of(i) for i in self.item_ids_), np.int64, n)
        if not np.array_equal(ids.codes[rows], ids.sorted_codes()[0]):
            raise ArtifactError(
                f"{directory}: item_ids are not in the order of the trie (saved by an older "
                f"gsid?); re-index and save the retriever again"
            )

    def index_bytes(self) -> int:
        """Bytes needed to answer queries besides the model weights: the trie as held in memory
        and, with rescore="cosine", the item vectors (float16, or PQ codes and centroids).
        Items are stored in trie order, so there is no permutation array."""
        if self.trie_ is None:
            return 0
        v = self.item_vectors_
        vectors = 0 if v is None else (v.nbytes() if callable(v.nbytes) else v.nbytes)
        return int(self.trie_.nbytes() + vectors)

    # ---- search
    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        if self.rescore == "cosine" and self.item_vectors_ is None:
            raise NotFittedError(
                "rescore='cosine' needs the items' vectors, which this retriever did not keep: "
                "index it (or load one saved) with rescore='cosine'"
            )
        out = SearchResults.empty(len(queries), k)
        starts = range(0, len(queries), self.batch_size)
        with self._threads(), torch.inference_mode():
            for s in progress(starts, show_progress, desc=f"{self.name} search", unit="batch"):
                self._search_batch(queries[s : s + self.batch_size], k, out, s)
        return out

    def _search_batch(self, batch: list[str], k: int, out: SearchResults, offset: int) -> None:
        dec = self._begin(batch)
        res = constrained_beam_search(
            dec.logits_fn,
            dec.state,
            self.trie_,
            len(batch),
            self.beam_width,
            length_penalty=self.length_penalty,
            device=dec.device,
            reorder_fn=dec.reorder_fn,
        )
        nodes = res.nodes
        if self.beam_mass is not None:
            nodes = mass_cut(nodes, res.log_probs, self.beam_mass)
        if self.rescore == "cosine":
            # the first `depth` candidates of each query, in beam order
            depth = self.rescore_depth or max(k, self.beam_width)
            lo, cnt = beam_ranges(self.trie_, nodes, depth, depth)
            rows, query, per_q = expand_ranges(lo, cnt, nodes.shape[1])
            Q = self._query_vectors(batch, dec)
            scores = self._item_scores(Q, rows, query, (lo, cnt, nodes.shape[1]))
            rows, scores, query, rank = top_per_query(
                rows, scores, query, per_q, k, stable=self.stable_rescore
            )
        else:
            rows, scores, query, per_q = expand_ids(self.trie_, None, nodes, res.scores, k)
            # rank of each candidate within its query (candidates are grouped by query)
            rank = np.arange(len(rows)) - np.repeat(np.cumsum(per_q) - per_q, per_q)
        keep = rank < k
        qi, ri = query[keep] + offset, rank[keep]
        out.ids[qi, ri] = self.item_ids_[rows[keep]]
        out.scores[qi, ri] = scores[keep]
