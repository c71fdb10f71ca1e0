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

Search is the shared pipeline (pipeline.py) with this model as the step scorer: constrained beam
search -> the top `beam_width` IDs -> the items whose whole ID is each generated ID, in beam
order; items that share an ID are ordered by a prior from the training log (sum of training
weights, then number of training queries, then catalogue order). With rescore="cosine" the
first max(k, beam_width) candidates are re-scored by cosine between the query and item sentence
embeddings (stored: 2 bytes x dim per item; equal cosines keep beam order).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsid._device import torch_threads
from gsid.errors import ArtifactError, DataValidationError, GsidError
from gsid.ids.semantic_ids import SemanticIDs
from gsid.models.query_to_id import QueryToID, Seq2SeqIDConfig
from gsid.retrieval.generative.pipeline import Decoding, IDGenerativeRetriever
from gsid.retrieval.generative.scorers import QueryToIDScorer
from gsid.retrieval.trie import CodeTrie

logger = logging.getLogger(__name__)


class GenerativeRetriever(IDGenerativeRetriever):
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
    stable_rescore = True

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
        super().__init__(beam_width, rescore, None, None, length_penalty, batch_size)
        if query_repeat < 0:
            raise GsidError(f"query_repeat must be >= 0, got {query_repeat}")
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
        self.index_examples = bool(index_examples)
        self.query_repeat = int(query_repeat)
        self.model = model
        self.encoder = encoder
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.seed = int(seed)
        self.device = device
        self.ids_: SemanticIDs | None = None
        self.model_: QueryToID | None = None

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
        self._store_in_trie_order(ids, dataset, X)

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

    # ------------------------------------------------------------------ search
    def _uses_embeddings(self) -> bool:
        return self.rescore == "cosine" or self.model_.config.memory == "pooled"

    def _search_batch(self, batch, k, out, offset) -> None:
        # the query embeddings with torch's own threads, decoding with the model's (as trained)
        self._qX = self.model_.embed(batch) if self._uses_embeddings() else None
        with torch_threads(self.model_.config.num_threads):
            super()._search_batch(batch, k, out, offset)

    def _begin(self, batch: list[str]) -> Decoding:
        qX = self._qX
        scorer = QueryToIDScorer(self.model_, self.trie_)
        state = scorer.start(batch, qX if self.model_.config.memory == "pooled" else None)
        return Decoding(scorer.logits, state, self.model_._device, scorer.reorder, qX)

    def _query_vectors(self, batch: list[str], decoding: Decoding) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(decoding.extra, dtype=np.float32))

    # ------------------------------------------------------------------ size and persistence
    def _save_state(self, directory: Path) -> None:
        self.ids_.save(directory / "semantic_ids")
        self.model_.save(directory / "model")
        if self.item_vectors_ is not None:
            np.save(directory / "item_vectors.npy", self.item_vectors_)

    def _load_state(self, directory: Path) -> None:
        try:
            self.ids_ = SemanticIDs.load(directory / "semantic_ids")
            self.model_ = QueryToID.load(
                directory / "model", device=self.device, cache_dir=self.cache_dir
            )
            if self.rescore == "cosine":
                self.item_vectors_ = np.load(directory / "item_vectors.npy", allow_pickle=False)
        except FileNotFoundError as e:
            raise ArtifactError(
                f"{directory}: {Path(e.filename).name} is missing; re-index and "
                f"save the retriever again"
            ) from e
        self.trie_ = CodeTrie.from_ids(self.ids_)  # rebuilt from the artifact: one source of truth
        self._check_trie_order(self.ids_, directory)
