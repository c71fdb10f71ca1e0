"""GSID generative retrieval (name "gsid-gr"): the GSID model reads a query and generates the
GSID codes of the products that answer it, under a beam search that only produces codes that
exist in the catalogue (the paper's online use).

    r = GSIDGenerativeRetriever(model_dir="runs/gsid_homedepot").index(dataset)
    ids, scores = r.search(["cordless drill"], k=10)
    r.save("runs/gsid-gr"); load_retriever("runs/gsid-gr")

`index` trains GSID like GSIDRetriever does (same CPU defaults and config) or loads `model_dir`
(a directory written by `train_gsid`, which holds model/, or a GSIDModel directory). Every
item's greedy codes are its ID: the L codes WITHOUT a collision suffix, so many items share one
ID (a leaf of the code tree). A CodeTrie is built over them.

Search, one batch at a time: encode the queries, run one batched constrained beam search whose
step scores are log softmax(d_t . E_t / T) of the GSID decoder (the codes of the beam prefix
teacher-forced), take the `beam_width` best IDs (score = sum of the step log-probs) and list the
items under each in beam order; items that share an ID are ordered by the prior from the
training log (exactly as the `gr` method does, see retrieval/generative.py). With
rescore="cosine" the first `rescore_depth` candidates are re-ranked by the cosine between the
query's and the items' GSID representations (assign.representation, stored as float16).

GSID IDs have a fixed length, so EOS is never needed: its log-prob is -inf and the beam search
finishes an ID at its leaf for free.

Speed: with the CPU model (pooled memory, one decoder layer) decoding is exact and incremental:
the decoder's self-attention inputs at each position depend only on that position's code, so
their projections are tabulated once per model for every (position, code), and the
cross-attention over the single pooled memory vector is one vector per query. A step then costs
one attention over <= L cached keys and the feed-forward block per beam. Other models (T5,
token memory, deeper decoders) re-run `model.decode` on the whole prefix (L <= 4 steps).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsid._device import torch_threads
from gsid.errors import ArtifactError, GsidError
from gsid.models.assign import REPRESENTATIONS, encode, representation, to_semantic_ids
from gsid.retrieval.generative.pipeline import Decoding, IDGenerativeRetriever
from gsid.retrieval.generative.scorers import greedy_states, gsid_scorer
from gsid.retrieval.gsid import cpu_config, encode_catalogue, train_or_load
from gsid.retrieval.pq import PQVectors, parse_spec
from gsid.retrieval.trie import CodeTrie
from gsid.text.static_encoder import StaticDistillConfig, StaticEncoder

logger = logging.getLogger(__name__)

#: CSR trie, no dense next-node table: on Home Depot (54,667 items, 8,769 nodes) the beam search
#: ran as fast with it (measured, batch 1 and 64) and the trie took 11.5 instead of 42.9 B/item
#: (int64 arrays then; int32 now: 11.7 B/item for the 17,775 nodes of the 2026-12-01 model)
TRIE_DENSE_LIMIT = 0
#: how queries reach the decoder: the model's own encoder, or a static encoder distilled from it
QUERY_ENCODERS = ("model", "static")


class GSIDGenerativeRetriever(IDGenerativeRetriever):
    """Query -> GSID code generative retriever.

    config: GSIDConfig fields over the CPU defaults of GSIDRetriever (used when training).
    model_dir: a `train_gsid` output directory (holding model/) or a GSIDModel directory to
        load instead of training.
    beam_width: IDs generated per query (each ID holds all items with those codes).
    rescore: "prior" (beam order; items of one ID by the training-log prior) or "cosine"
        (re-rank the first `rescore_depth` candidates by the cosine of GSID representations).
    representation: which GSID representation "cosine" uses: "first" (d_0, the default: on Home
        Depot as good as "concat" at a quarter of the bytes, and the query needs no greedy
        decoding), "concat" or "last" (see assign.representation).
    rescore_depth: candidates per query that "cosine" re-ranks (in beam order).
    vectors: how "cosine" keeps the item vectors: "float16", or product-quantised with a
        faiss-style spec such as "PQ16x4" (m sub-quantisers of nbits bits: m * nbits / 8 B/item)
        or "RPQ32x8" (the residuals from the mean of the items sharing the first code).
    query_encoder: "model" (the GSID model's own encoder) or "static" (a bag-of-tokens encoder
        distilled from it when indexing, see gsid.text.static_encoder; pooled-memory models).
    static_encoder: StaticDistillConfig fields for that distillation.
    id_levels: generate only the first `id_levels` codes (None = all levels): the beam runs
        over code prefixes and every item under a generated prefix is a candidate. Fewer
        decoder steps and far more candidates per beam, so recall rises at a given speed; made
        for rescore="cosine" (with "prior", the items of a prefix come in the order of their
        deeper codes, then by prior).
    beam_mass: keep the generated IDs, best first, only until their probabilities add up to this
        share (None = keep all `beam_width`): a query the model is sure of gets few IDs, an
        unsure one up to `beam_width`. On Home Depot, first-code probabilities are flat (the
        best holds 25% on average), and at the same mean number of candidates a mass cut
        covered 1.5-2.5 points more of the expected items than a fixed width.
    num_threads: torch threads during search (0 = leave torch's setting).
    batch_size: queries per beam-search batch.
    """

    name = "gsid-gr"
    can_add = True

    def __init__(
        self,
        config: dict | None = None,
        model_dir: str | None = None,
        beam_width: int = 20,
        rescore: str = "prior",
        representation: str = "first",
        rescore_depth: int = 1000,
        vectors: str = "float16",
        query_encoder: str = "model",
        static_encoder: dict | None = None,
        id_levels: int | None = None,
        beam_mass: float | None = None,
        num_threads: int = 1,
        batch_size: int = 64,
        cache_dir: str | None = None,
        out_dir: str | None = None,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__(beam_width, rescore, rescore_depth, beam_mass, 0.0, batch_size)
        self.config_ = cpu_config(config)
        if vectors != "float16":
            parse_spec(vectors)
        if query_encoder not in QUERY_ENCODERS:
            raise GsidError(
                f"query_encoder {query_encoder!r} is unknown; choose one of {list(QUERY_ENCODERS)}"
            )
        StaticDistillConfig.from_dict(static_encoder)  # reject unknown options now
        if representation not in REPRESENTATIONS:
            raise GsidError(
                f"representation {representation!r} is unknown; choose one of "
                f"{list(REPRESENTATIONS)}"
            )
        for arg, value, low in (
            ("num_threads", num_threads, 0),
            *([("id_levels", id_levels, 1)] if id_levels is not None else []),
        ):
            if not isinstance(value, int | np.integer) or value < low:
                raise GsidError(f"{arg} must be an integer >= {low}, got {value!r}")
        if rescore_depth is None:
            raise GsidError("rescore_depth must be an integer >= 1, got None")
        self.model_dir = None if model_dir is None else str(model_dir)
        self.representation = representation
        self.vectors = vectors
        self.query_encoder = query_encoder
        self.static_encoder = None if static_encoder is None else dict(static_encoder)
        self.id_levels = None if id_levels is None else int(id_levels)
        self.num_threads = int(num_threads)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.out_dir = out_dir
        self.seed = int(seed)
        self.device = device
        self.model_ = None  # GSIDModel
        self.ids_ = None  # SemanticIDs: L codes per item, no collision suffix
        self.static_: StaticEncoder | None = None  # query_encoder="static" only
        self._scorer = None

    def config(self) -> dict[str, Any]:
        return {
            "config": self.config_,
            "model_dir": self.model_dir,
            "beam_width": self.beam_width,
            "rescore": self.rescore,
            "representation": self.representation,
            "rescore_depth": self.rescore_depth,
            "vectors": self.vectors,
            "query_encoder": self.query_encoder,
            "static_encoder": self.static_encoder,
            "id_levels": self.id_levels,
            "beam_mass": self.beam_mass,
            "num_threads": self.num_threads,
            "batch_size": self.batch_size,
            "cache_dir": self.cache_dir,
            "out_dir": self.out_dir,
            "seed": self.seed,
            "device": self.device,
        }

    # ------------------------------------------------------------------ index
    def _index(self, dataset, show_progress: bool | None) -> None:
        model = train_or_load(
            dataset,
            self.config_,
            self.model_dir,
            self.seed,
            self.device,
            self.out_dir,
            self.cache_dir,
            show_progress,
        )
        self.model_ = model.eval()
        item_ids = np.asarray(dataset.item_ids, dtype=object)
        texts = dataset.item_texts()
        with torch_threads(self.num_threads if model.device.type == "cpu" else 0):
            codes, reps = encode_catalogue(model, texts, self.cache_dir, show_progress)
        self.ids_ = to_semantic_ids(item_ids, codes, model.config, collisions="none")
        self.trie_ = self._trie()
        vecs = representation(reps, self.representation) if self.rescore == "cosine" else None
        ranked = self._store_in_trie_order(self.ids_, dataset, vecs)
        if vecs is not None and self.vectors != "float16":
            # residual PQ groups the items by their first code (items are in trie order)
            first = self.ids_.sorted_codes()[0][:, 0]
            self.item_vectors_ = PQVectors.fit(vecs[ranked], self.vectors, first, seed=self.seed)
        if self.query_encoder == "static":
            self.static_ = distill_query_encoder(
                model, dataset, self.static_encoder, self.cache_dir, self.seed, show_progress
            )
        self._scorer = None
        logger.info(
            "gsid-gr: %d items on %d IDs (largest ID holds %d items); trie of %d nodes",
            len(item_ids),
            int(self.trie_.is_end.sum()),
            int(self.trie_.n_end.max()),
            self.trie_.n_nodes,
        )

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        """New items get the codes the model decodes for them (no training); old IDs stay."""
        with torch_threads(self.num_threads if self.model_.device.type == "cpu" else 0):
            codes, reps = encode_catalogue(
                self.model_, new.item_texts(), self.cache_dir, show_progress
            )
        ids = self.ids_.extend(new.item_ids, codes, unique=False)
        vecs = representation(reps, self.representation) if self.rescore == "cosine" else None
        item_ids, vectors = self._insert_in_trie_order(ids, vecs)
        self.ids_, self.item_ids_, self.item_vectors_ = ids, item_ids, vectors
        self.trie_ = self._trie()

    def _trie(self) -> CodeTrie:
        """The trie of the generated IDs: whole IDs, or their first `id_levels` codes (the
        code-sorted order of whole IDs is also sorted by any prefix, so item ranges still hold)."""
        L = self.ids_.n_levels
        if self.id_levels is not None and self.id_levels > L:
            raise GsidError(
                f"id_levels={self.id_levels} exceeds the model's {L} code levels; pass "
                f"id_levels <= {L} (or None for whole IDs)"
            )
        if self.id_levels is None or self.id_levels == L:
            return CodeTrie.from_ids(self.ids_, dense_limit=TRIE_DENSE_LIMIT)
        codes, lengths, _ = self.ids_.sorted_codes()
        return CodeTrie.from_sorted_codes(
            np.ascontiguousarray(codes[:, : self.id_levels]),
            np.minimum(lengths, self.id_levels),
            max(self.ids_.codebook_sizes),
            TRIE_DENSE_LIMIT,
        )

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = gsid_scorer(self.model_)
        return self._scorer

    # ------------------------------------------------------------------ search
    def _threads(self):
        return torch_threads(self.num_threads if self.model_.device.type == "cpu" else 0)

    def query_memory(self, batch: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder memory of the queries (B, S, H) and its mask (B, S): the model's own
        encoder, or (query_encoder="static") the static encoder's vector as pooled memory."""
        if self.static_ is not None:
            return self.model_.memory_from_features(self.static_.encode(batch))
        return self.model_.encode_texts(batch)

    def _begin(self, batch: list[str]) -> Decoding:
        scorer = self.scorer
        mem, mask = self.query_memory(batch)
        state = scorer.start(mem, mask)
        first: list[torch.Tensor] = []

        def logits_fn(st, tokens: torch.Tensor) -> torch.Tensor:
            logp, d = scorer.step(st, tokens)
            if tokens.shape[2] == 0:  # step 0 has one beam per query: keep d_0 for "first"
                first.append(d[:, 0])
            return logp

        return Decoding(logits_fn, state, mem.device, None, first)

    def _query_vectors(self, batch: list[str], decoding: Decoding) -> torch.Tensor:
        first = decoding.extra
        if self.representation == "first" and first:
            reps = first[0][:, None]  # (B, 1, H)
        else:  # the greedy path, as the items were encoded
            n = 1 if self.representation == "first" else self.model_.config.n_levels
            reps = greedy_states(self.scorer, decoding.state, len(batch), n)  # (B, n, H)
        return torch.from_numpy(representation(reps.float().cpu().numpy(), self.representation))

    def _item_scores(self, Q, rows, query, beams) -> np.ndarray:
        if isinstance(self.item_vectors_, PQVectors):
            return self.item_vectors_.dot(Q, rows, query)
        return super()._item_scores(Q, rows, query, beams)

    # ---- what the evaluation harness reads besides the ranking (see eval.bench)
    def query_codes(self, queries: list[str]) -> np.ndarray:
        """(Q, L) greedy codes of query texts (the model's own encoder)."""
        return encode(self.model_, queries)[0]

    def item_codes(self) -> np.ndarray:
        """(N, L) the items' IDs in catalogue order."""
        return np.stack([self.ids_.codes[self.ids_.index_of(i)] for i in self.item_ids_])

    # ------------------------------------------------------------------ size and persistence
    def _save_state(self, directory: Path) -> None:
        self.model_.save(directory / "model")
        self.ids_.save(directory / "semantic_ids")
        if isinstance(self.item_vectors_, PQVectors):
            self.item_vectors_.save(directory, "item_reps")
        elif self.item_vectors_ is not None:
            np.save(directory / "item_reps.npy", self.item_vectors_)
        if self.static_ is not None:
            self.static_.save(directory / "static_encoder")

    def _load_state(self, directory: Path) -> None:
        from gsid.ids.semantic_ids import SemanticIDs
        from gsid.models.model import GSIDModel

        try:
            self.model_ = GSIDModel.load(directory / "model", device=self.device).eval()
            self.ids_ = SemanticIDs.load(directory / "semantic_ids")
            if self.rescore == "cosine" and self.vectors == "float16":
                self.item_vectors_ = np.load(directory / "item_reps.npy", allow_pickle=False)
        except FileNotFoundError as e:
            raise ArtifactError(
                f"{directory}: {Path(e.filename).name} is missing; re-index and save the "
                f"retriever again"
            ) from e
        if self.rescore == "cosine" and self.vectors != "float16":
            self.item_vectors_ = PQVectors.load(directory, "item_reps", self.vectors)
        self.static_ = None
        if self.query_encoder == "static":
            self.static_ = StaticEncoder.load(directory / "static_encoder")
        self.trie_ = self._trie()  # rebuilt from the artifact: one source of truth
        self._check_trie_order(self.ids_, directory)
        self._scorer = None


def distill_query_encoder(
    model,
    dataset,
    config: dict | None,
    cache_dir: str | None,
    seed: int,
    show_progress: bool | None,
) -> StaticEncoder:
    """A static encoder fitted to the model's own pooled query features (see
    gsid.text.static_encoder), on the train queries, the item titles and one query-like span of
    every title. Only the pooled-memory models read one vector per text, which it replaces."""
    from gsid.models.features import pooled_features
    from gsid.models.sampling import pseudo_query

    if model.config.memory != "pooled" or model.is_t5:
        raise GsidError(
            "query_encoder='static' needs a GSID model with pooled memory (memory='pooled', "
            "MiniLM backbone): the static encoder stands in for its one pooled query vector"
        )
    titles = dataset.item_texts()
    rng = np.random.default_rng(seed)
    queries = sorted(set(dataset.training_pairs("train")["query"].astype(str)))
    texts = list(dict.fromkeys(queries + titles + [pseudo_query(t, rng) for t in titles]))

    def teacher(batch: list[str]) -> np.ndarray:
        return pooled_features(model, batch, cache_dir).numpy()

    cfg = StaticDistillConfig.from_dict({"seed": seed, **(config or {})})
    return StaticEncoder.distill(
        teacher, model.tokenizer, texts, config=cfg, show_progress=show_progress
    )
