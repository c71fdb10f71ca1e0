"""Generative retrieval over semantic IDs (TIGER / DSI style): a query -> ID model decodes under
a prefix trie, so only IDs that exist come out, and the items under each ID are the answer.

    gr = GenerativeRetriever(id_method="rq", levels=3, codebook_size=64, epochs=5)
    gr.index(dataset)                          # encode items, build IDs, train query -> ID
    ids, scores = gr.search(["cordless drill"], k=10)
    gr.save("runs/gr"); GenerativeRetriever.load("runs/gr")

`index` reads the catalogue and the *train* split only: (query -> code of a relevant item) pairs
from `dataset.training_pairs("train")` plus one indexing example per item (title -> its code) so
items that no training query touched stay reachable. Pass `semantic_ids` (a SemanticIDs or the
path of a saved one) to reuse IDs built elsewhere instead of building them here.

Search: constrained beam search -> the top `beam_width` IDs -> the items whose whole ID is each
generated ID, in beam order; items that share an ID are ordered by a prior from the training log
(sum of training weights, then number of training queries, then catalogue order). With
rescore="cosine" the candidates are re-scored by cosine between the query and item embeddings
(which then have to be stored: 2 bytes x dim per item).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsid._device import torch_threads
from gsid._progress import progress
from gsid.errors import ArtifactError, DataValidationError, GsidError
from gsid.ids.semantic_ids import SemanticIDs
from gsid.models.query_to_id import QueryToID, Seq2SeqIDConfig
from gsid.retrieval.base import Retriever, SearchResults
from gsid.retrieval.beam import BeamResult, constrained_beam_search
from gsid.retrieval.trie import CodeTrie

logger = logging.getLogger(__name__)

RESCORE = ("prior", "cosine")


class GenerativeRetriever(Retriever):
    """Query -> semantic ID generative retriever.

    id_method, levels, codebook_size, collisions, id_options: how `build_ids` builds the IDs
        (ignored when `semantic_ids` is given).
    semantic_ids: a SemanticIDs artifact or a path to one, to use instead of building IDs.
    beam_width: IDs generated per query (the number of candidates before items are expanded).
    length_penalty: rank IDs by log-prob / length**alpha (matters for variable-length IDs).
    rescore: "prior" (beam order, ties by training-log prior) or "cosine".
    index_examples: add item text -> code examples to training (DSI indexing; keeps cold items
        reachable). query_repeat: how many times each query pair is repeated per epoch.
    model: options of Seq2SeqIDConfig (epochs, d_model, memory, ...).
    cache_dir: where item embeddings are memoised (SentenceEncoder.encode_cached).
    batch_size: queries per beam-search batch at search time.
    """

    name = "gr"

    def __init__(
        self,
        id_method: str = "rq",
        levels: int = 3,
        codebook_size: int | list[int] = 64,
        collisions: str = "append",
        id_options: dict[str, Any] | None = None,
        semantic_ids: SemanticIDs | str | os.PathLike | None = None,
        beam_width: int = 20,
        length_penalty: float = 0.0,
        rescore: str = "prior",
        index_examples: bool = True,
        query_repeat: int = 1,
        model: dict[str, Any] | None = None,
        encoder: str = "minilm",
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if rescore not in RESCORE:
            raise GsidError(f"rescore {rescore!r} is unknown; choose one of {list(RESCORE)}")
        if beam_width < 1 or batch_size < 1 or query_repeat < 0:
            raise GsidError(
                f"beam_width and batch_size must be >= 1 and query_repeat >= 0; got beam_width="
                f"{beam_width}, batch_size={batch_size}, query_repeat={query_repeat}"
            )
        model = dict(model or {})
        for fixed in ("encoder", "seed", "n_levels", "n_codes"):
            if fixed in model:
                raise GsidError(
                    f"model option {fixed!r} is set by GenerativeRetriever itself; "
                    f"pass it as a retriever argument (encoder, seed) or drop it"
                )
        Seq2SeqIDConfig.from_dict({**model, "encoder": encoder, "seed": seed})  # validate early
        self.id_method = id_method
        self.levels = int(levels)
        self.codebook_size = codebook_size
        self.collisions = collisions
        self.id_options = dict(id_options or {})
        self._given_ids = semantic_ids
        self.beam_width = int(beam_width)
        self.length_penalty = float(length_penalty)
        self.rescore = rescore
        self.index_examples = bool(index_examples)
        self.query_repeat = int(query_repeat)
        self.model = model
        self.encoder = encoder
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.seed = int(seed)
        self.device = device
        self.batch_size = int(batch_size)
        self.ids_: SemanticIDs | None = None
        self.trie_: CodeTrie | None = None
        self.model_: QueryToID | None = None
        self.ranked_: np.ndarray | None = None  # (N,) item rows in code order, ties by prior
        self.item_emb_: np.ndarray | None = None  # (N, D) float16, rescore="cosine" only

    def config(self) -> dict[str, Any]:
        given = self._given_ids
        return {
            "id_method": self.id_method,
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "collisions": self.collisions,
            "id_options": self.id_options,
            "semantic_ids": str(given) if isinstance(given, str | os.PathLike) else None,
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
            "rescore": self.rescore,
            "index_examples": self.index_examples,
            "query_repeat": self.query_repeat,
            "model": self.model,
            "encoder": self.encoder,
            "cache_dir": self.cache_dir,
            "seed": self.seed,
            "device": self.device,
            "batch_size": self.batch_size,
        }

    # ------------------------------------------------------------------ index
    def _index(self, dataset, show_progress: bool | None) -> None:
        from gsid.text.encoders import SentenceEncoder

        item_ids = np.asarray(dataset.item_ids, dtype=object)
        texts = dataset.item_texts()
        q2id = QueryToID(
            Seq2SeqIDConfig.from_dict({**self.model, "encoder": self.encoder, "seed": self.seed}),
            device=self.device,
            cache_dir=self.cache_dir,
        )
        enc: SentenceEncoder = q2id._sentence_encoder()
        X = None
        if self._given_ids is None or self.rescore == "cosine" or q2id.config.memory == "pooled":
            X = enc.encode_cached(texts, self.cache_dir, show_progress)  # (N, D)
        ids = self._semantic_ids(X, item_ids, show_progress)
        self.ids_ = ids
        self.trie_ = CodeTrie.from_ids(ids)
        rows = np.fromiter((ids.index_of(i) for i in item_ids), np.int64, len(item_ids))
        # training examples: queries -> codes of their relevant items (+ items -> own code)
        pairs = dataset.training_pairs("train")
        pos = {s: i for i, s in enumerate(item_ids)}
        q_items = pairs["item_id"].map(pos).to_numpy(np.int64)
        ex_text = pairs["query"].tolist() * self.query_repeat
        ex_item = np.tile(q_items, self.query_repeat)
        if self.index_examples:
            ex_text += texts
            ex_item = np.concatenate([ex_item, np.arange(len(item_ids))])
        if not ex_text:
            raise DataValidationError(
                f"{dataset.name}: no training examples: the train split has no (query, item) "
                f"pairs and index_examples is off; add train queries or set index_examples=True"
            )
        codes = ids.codes[rows[ex_item]]  # (M, L)
        emb = None
        if q2id.config.memory == "pooled":
            n_q = len(pairs) * self.query_repeat
            # encode each distinct training query once (memoised), then map pairs onto it
            train_q = pairs["query"].unique().tolist()
            qX = np.zeros((len(pairs), X.shape[1]), np.float32)
            if len(pairs):
                table = enc.encode_cached(train_q, self.cache_dir, show_progress)
                where = {q: i for i, q in enumerate(train_q)}
                qX = table[pairs["query"].map(where).to_numpy(np.int64)]
            parts = [np.tile(qX, (self.query_repeat, 1))] if n_q else []
            if self.index_examples:
                parts.append(X)
            emb = np.concatenate(parts)
        q2id.fit(
            ex_text,
            codes,
            n_codes=max(ids.codebook_sizes),
            embeddings=emb,
            show_progress=show_progress,
        )
        self.model_ = q2id
        weight, n_queries = log_prior(pairs, q_items, len(item_ids))
        self._rank(ids, rows, weight, n_queries)
        if self.rescore == "cosine":
            self.item_emb_ = X.astype(np.float16)

    def _semantic_ids(
        self, X: np.ndarray | None, item_ids: np.ndarray, show_progress: bool | None
    ) -> SemanticIDs:
        given = self._given_ids
        if given is None:
            from gsid.ids.build import build_ids

            return build_ids(
                self.id_method,
                X,
                item_ids,
                levels=self.levels,
                codebook_size=self.codebook_size,
                collisions=self.collisions,
                seed=self.seed,
                show_progress=show_progress,
                provenance={"encoder": self.encoder},
                **self.id_options,
            )
        ids = given if isinstance(given, SemanticIDs) else SemanticIDs.load(given)
        missing = sorted(set(item_ids) - set(ids.item_ids))
        if missing:
            raise DataValidationError(
                f"the given semantic IDs miss {len(missing)} catalogue items (e.g. {missing[:3]}); "
                f"they would be unreachable: rebuild the IDs on this catalogue"
            )
        if len(ids.item_ids) != len(item_ids):
            keep = np.fromiter((ids.index_of(i) for i in item_ids), np.int64, len(item_ids))
            ids = ids.derive(
                ids.codes[keep],
                ids.lengths[keep],
                ids.codebook_sizes,
                {"op": "subset", "n_items": len(item_ids)},
                item_ids=item_ids,
            )
        return ids

    def _rank(
        self, ids: SemanticIDs, rows: np.ndarray, weight: np.ndarray, n_queries: np.ndarray
    ) -> None:
        self.ranked_ = prior_order(ids, rows, weight, n_queries)

    # ------------------------------------------------------------------ search
    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        out_ids = np.full((len(queries), k), None, dtype=object)
        out_scores = np.full((len(queries), k), -np.inf, np.float32)
        starts = range(0, len(queries), self.batch_size)
        for s in progress(starts, show_progress, desc="GR search"):
            batch = queries[s : s + self.batch_size]
            qX = (
                self.model_.embed(batch)
                if (self.rescore == "cosine" or self.model_.config.memory == "pooled")
                else None
            )
            res = generate_ids(
                self.model_,
                batch,
                self.trie_,
                beam_width=self.beam_width,
                length_penalty=self.length_penalty,
                embeddings=qX if self.model_.config.memory == "pooled" else None,
            )
            rows, scores, counts = self._expand(res.nodes, res.scores, k)
            for b in range(len(batch)):
                r, sc = rows[b][: counts[b]], scores[b][: counts[b]]
                if self.rescore == "cosine" and len(r):
                    sc = self.item_emb_[r].astype(np.float32) @ qX[b]
                    o = np.argsort(-sc, kind="stable")
                    r, sc = r[o], sc[o]
                n = min(k, len(r))
                out_ids[s + b, :n] = self.item_ids_[r[:n]]
                out_scores[s + b, :n] = sc[:n]
        return SearchResults(out_ids, out_scores)

    def _expand(
        self, nodes: torch.Tensor, scores: torch.Tensor, k: int
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Beams (B, R) -> per query the item rows of the generated IDs in beam order (at most
        `limit` each, all candidates when re-scoring) with their ID's score."""
        B = nodes.shape[0]
        limit = k if self.rescore == "prior" else max(k, self.beam_width)
        item_rows, item_scores, _, per_q = expand_ids(
            self.trie_, self.ranked_, nodes, scores, limit
        )
        starts = np.cumsum(per_q) - per_q
        counts = np.minimum(per_q, limit)
        rows = [item_rows[starts[b] : starts[b] + per_q[b]] for b in range(B)]
        scs = [item_scores[starts[b] : starts[b] + per_q[b]] for b in range(B)]
        return rows, scs, counts

    # ------------------------------------------------------------------ size and persistence
    def index_bytes(self) -> int:
        """Bytes needed to answer queries besides model weights: the trie, the ranked item
        order (int32 per item) and, with rescore="cosine", the float16 item embeddings."""
        if self.trie_ is None:
            return 0
        total = self.trie_.nbytes() + 4 * len(self.ranked_)
        if self.item_emb_ is not None:
            total += self.item_emb_.nbytes
        return int(total)

    def _save_state(self, directory: Path) -> None:
        self.ids_.save(directory / "semantic_ids")
        self.model_.save(directory / "model")
        np.save(directory / "ranked.npy", self.ranked_)
        if self.item_emb_ is not None:
            np.save(directory / "item_emb.npy", self.item_emb_)

    def _load_state(self, directory: Path) -> None:
        try:
            self.ids_ = SemanticIDs.load(directory / "semantic_ids")
            self.model_ = QueryToID.load(
                directory / "model", device=self.device, cache_dir=self.cache_dir
            )
            self.ranked_ = np.load(directory / "ranked.npy", allow_pickle=False)
            if self.rescore == "cosine":
                self.item_emb_ = np.load(directory / "item_emb.npy", allow_pickle=False)
        except FileNotFoundError as e:
            raise ArtifactError(
                f"{directory}: {Path(e.filename).name} is missing; re-index and "
                f"save the retriever again"
            ) from e
        self.trie_ = CodeTrie.from_ids(self.ids_)  # rebuilt from the artifact: one source of truth
        if len(self.ranked_) != self.ids_.n_items or len(self.item_ids_) != self.ids_.n_items:
            raise ArtifactError(
                f"{directory}: ranked.npy / item_ids do not match the semantic "
                f"IDs ({self.ids_.n_items} items); re-index and save again"
            )


@torch.no_grad()
def generate_ids(
    model: QueryToID,
    texts: Sequence[str],
    trie: CodeTrie,
    beam_width: int = 10,
    n_results: int | None = None,
    length_penalty: float = 0.0,
    embeddings: np.ndarray | None = None,
    use_cache: bool = True,
) -> BeamResult:
    """Constrained beam search of a query -> ID model for a batch of texts: only IDs in `trie`
    come out. The model scores steps (its key/value cache reordered with the beams)."""
    with torch_threads(model.config.num_threads):
        return _generate(model, texts, trie, beam_width, n_results, length_penalty, embeddings,
                         use_cache)  # fmt: skip


def _generate(model, texts, trie, beam_width, n_results, length_penalty, embeddings, use_cache):
    model._check()
    if trie.n_levels > model.config.n_levels or trie.n_codes > model.config.n_codes:
        raise GsidError(
            f"the trie has IDs of up to {trie.n_levels} levels over {trie.n_codes} codes but "
            f"the model was trained for {model.config.n_levels} levels x {model.config.n_codes} "
            f"codes; retrain the model on these IDs"
        )
    mem, pad = model.encode_memory(texts, embeddings)
    if use_cache:
        state, base, reorder = (
            {"mem": mem, "pad": pad, "cache": None},
            model.cached_logits_fn,
            model.reorder_cache,
        )
    else:
        state, base, reorder = (mem, pad), model.logits_fn, None
    if trie.n_codes < model.config.n_codes:  # model vocabulary wider than the trie's: cut
        K = trie.n_codes

        def fn(s, tok):
            lp = base(s, tok)
            return torch.cat([lp[..., :K], lp[..., -1:]], -1)
    else:
        fn = base
    return constrained_beam_search(
        fn,
        state,
        trie,
        len(texts),
        beam_width,
        n_results,
        length_penalty,
        device=model._device,
        reorder_fn=reorder,
    )


# ---------------------------------------------------------------------- shared by ID retrievers
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
