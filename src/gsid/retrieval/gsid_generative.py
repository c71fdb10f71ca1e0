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
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gsid._device import torch_threads
from gsid._progress import progress
from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.models.assign import REPRESENTATIONS, encode, representation, to_semantic_ids
from gsid.retrieval.base import Retriever, SearchResults
from gsid.retrieval.beam import constrained_beam_search
from gsid.retrieval.generative import (
    RESCORE,
    beam_ranges,
    expand_ids,
    expand_ranges,
    log_prior,
    prior_order,
)
from gsid.retrieval.gsid import cpu_config, encode_catalogue, train_or_load
from gsid.retrieval.pq import PQVectors, parse_spec
from gsid.retrieval.trie import CodeTrie
from gsid.text.static_encoder import StaticDistillConfig, StaticEncoder

logger = logging.getLogger(__name__)

NEG_INF = float("-inf")
#: CSR trie, no dense next-node table: on Home Depot (54,667 items, 8,769 nodes) the beam search
#: ran as fast with it (measured, batch 1 and 64) and the trie took 11.5 instead of 42.9 B/item
#: (int64 arrays then; int32 now: 11.7 B/item for the 17,775 nodes of the 2026-12-01 model)
TRIE_DENSE_LIMIT = 0
#: how queries reach the decoder: the model's own encoder, or a static encoder distilled from it
QUERY_ENCODERS = ("model", "static")
#: float32 elements widened at once when re-scoring by cosine (~16 MB)
_COSINE_CHUNK = 1 << 22
#: cost models of the two cosine strategies, in microseconds on one core (fitted to timings of
#: both on 54,667 x 384 float16 vectors, B = 1 / 8 / 64 queries, ranges of 28 to 427 items):
#: union = a * candidates + (b * B + c) * distinct rows;
#: ranges = a * candidates + o * distinct ranges + w * distinct rows
_UNION_COST = (0.131, 0.0054, 0.556)
_RANGE_COST = (0.033, 30.0, 0.137)


# ---------------------------------------------------------------------- step scorers
class FullScorer:
    """Step log-probs by re-running `model.decode` on every beam's whole prefix (any GSID model).

    state = start(memory, mask); logp, d = step(state, tokens) with tokens (B, w, t) the code
    prefixes -> logp (B, w, K + 1) (EOS column -inf) and d (B, w, H) the step-t states. At
    t = L (a whole ID) only EOS is possible (the beam search never asks; brute force does)."""

    def __init__(self, model) -> None:
        self.model = model

    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return memory, mask

    @torch.no_grad()
    def step(self, state, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory, mask = state
        B, w, t = tokens.shape
        if t >= self.model.config.n_levels:
            return _ended(B, w, self.model, memory.device)
        mem = memory.repeat_interleave(w, 0)  # (B*w, S, H)
        msk = mask.repeat_interleave(w, 0)
        d = self.model.decode(mem, msk, tokens.reshape(B * w, t))[:, -1]  # (B*w, H)
        return _with_eos(self.model.step_logits(d, t), B, w), d.view(B, w, -1)


class PooledStepScorer:
    """Exact incremental decoding for a GSID model with pooled memory and one pre-norm decoder
    layer (the CPU default). Hand-written because nn.TransformerDecoder has no KV cache; this
    form needs no cache at all:

    * the layer input at position p is x_p = code_in(E_{p-1}[c]) + pos[p] (x_0 = BOS + pos[0]):
      one row per (position, code). Its self-attention values and the attention logits of
      every (row, row) pair are tabulated once (R = 1 + (L-1) * K rows);
    * cross-attention over one memory vector has weight 1 whatever the query: its output
      out_proj(v_proj(m)) is one vector per query;
    * only d_t of the newest position is needed (one layer: the other positions' outputs
      never feed anything), so a step is an attention over t+1 tabulated keys, the
      feed-forward block and the final norm, per beam.
    Equal to `model.decode(...)[:, -1]` up to float rounding (tested)."""

    def __init__(self, model) -> None:
        self.model = model
        layer = model.decoder.layers[0]
        sa = layer.self_attn
        H, K, L = model.hidden_size, model.config.codebook_size, model.config.n_levels
        self.H, self.K, self.L = H, K, L
        self.nh = sa.num_heads
        self.dh = H // self.nh
        self.layer = layer
        with torch.no_grad():
            rows = [(model.bos + model.pos[0])[None]]  # (1, H) position 0
            for p in range(1, L):
                e = model.codebooks.table(p - 1)  # (K, H) E_{p-1}
                rows.append(model.code_in(e) + model.pos[p])  # (K, H)
            X = torch.cat(rows)  # (R, H), R = 1 + (L-1)K
            qkv = F.linear(layer.norm1(X), sa.in_proj_weight, sa.in_proj_bias)  # (R, 3H)
            q, k, v = qkv.split(H, dim=1)
            self.X = X
            q = (q / math.sqrt(self.dh)).view(-1, self.nh, self.dh)  # (R, nh, dh)
            # attention logits of every (new position row, earlier position row) pair
            self.S = torch.einsum("rhd,shd->rsh", q, k.view(-1, self.nh, self.dh))  # (R, R, nh)
            self.V = v.view(-1, self.nh, self.dh)  # (R, nh, dh)
            ca = layer.multihead_attn
            self.Wv_ca = ca.in_proj_weight[2 * H :]
            self.bv_ca = ca.in_proj_bias[2 * H :]
            # codebooks as used for scoring, temperature folded in: (L, K, H)
            self.E = torch.stack([model.codebooks.table(t) for t in range(L)])
            self.E = self.E / model.codebooks.temperature
        self.normalize = model.codebooks.normalize

    @staticmethod
    def supports(model) -> bool:
        """The conditions under which the tabulated form equals the model's decoder."""
        if getattr(model, "is_t5", True) or model.config.memory != "pooled":
            return False
        layers = getattr(getattr(model, "decoder", None), "layers", None)
        if layers is None or len(layers) != 1 or model.decoder.norm is not None:
            return False
        lay = layers[0]
        sa, ca = lay.self_attn, lay.multihead_attn
        return bool(
            lay.norm_first
            and sa.batch_first
            and sa._qkv_same_embed_dim
            and ca._qkv_same_embed_dim
            and sa.bias_k is None
            and ca.bias_k is None
            and not sa.add_zero_attn
            and not ca.add_zero_attn
            and sa.in_proj_bias is not None
            and ca.in_proj_bias is not None
        )

    @torch.no_grad()
    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, 1, H) -> (cross-attention output (B, H), skip path (B, H))."""
        m = memory[:, 0]  # (B, H)
        ca = F.linear(
            F.linear(m, self.Wv_ca, self.bv_ca),
            self.layer.multihead_attn.out_proj.weight,
            self.layer.multihead_attn.out_proj.bias,
        )
        return ca, m

    @torch.no_grad()
    def step(self, state, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ca, m = state
        B, w, t = tokens.shape
        if t >= self.L:
            return _ended(B, w, self.model, ca.device)
        # table row of every position: 0, then 1 + (p-1)K + code
        rows = torch.zeros((B, w, t + 1), dtype=torch.long, device=tokens.device)
        if t:
            offs = 1 + torch.arange(t, device=tokens.device) * self.K  # (t,)
            rows[..., 1:] = tokens + offs
        last = rows[..., -1]  # (B, w)
        att = self.S[last.unsqueeze(-1), rows].softmax(2)  # (B, w, t+1, nh)
        # a broadcast product, not einsum: at these sizes einsum's permute copies cost more
        heads = (att.unsqueeze(-1) * self.V[rows]).sum(2)  # (B, w, nh, dh)
        lay = self.layer
        sa = lay.self_attn.out_proj(heads.reshape(B, w, self.H))  # (B, w, H)
        x = self.X[last] + sa + ca[:, None]  # (B, w, H)
        x = x + lay.linear2(lay.activation(lay.linear1(lay.norm3(x))))
        d = self.model.with_skip(self.model.dec_norm(x), m[:, None])
        u = F.normalize(d, dim=-1) if self.normalize else d
        logits = u @ self.E[t].T  # (B, w, K)
        return _with_eos(logits.reshape(B * w, -1), B, w), d


def _with_eos(logits: torch.Tensor, B: int, w: int) -> torch.Tensor:
    """(B*w, K) code logits -> (B, w, K + 1) log-probs; EOS (fixed-length IDs) is -inf."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    eos = logp.new_full((logp.shape[0], 1), NEG_INF)
    return torch.cat([logp, eos], 1).view(B, w, -1)


def _ended(B: int, w: int, model, device) -> tuple[torch.Tensor, torch.Tensor]:
    """After the last step a whole ID is there: only EOS (log-prob 0) can follow."""
    logp = torch.full((B, w, model.config.codebook_size + 1), NEG_INF, device=device)
    logp[..., -1] = 0.0
    return logp, torch.zeros((B, w, model.hidden_size), device=device)


def make_scorer(model) -> FullScorer | PooledStepScorer:
    return PooledStepScorer(model) if PooledStepScorer.supports(model) else FullScorer(model)


@torch.no_grad()
def greedy_states(scorer, state, B: int, L: int) -> torch.Tensor:
    """(B, L, H) decoder states along each query's greedy path (its codes, as items are)."""
    tokens = torch.zeros((B, 1, 0), dtype=torch.long, device=_state_device(state))
    states = []
    for _ in range(L):
        logp, d = scorer.step(state, tokens)  # (B, 1, K+1), (B, 1, H)
        states.append(d[:, 0])
        tokens = torch.cat([tokens, logp[..., :-1].argmax(-1, keepdim=True)], 2)
    return torch.stack(states, 1)


def _state_device(state) -> torch.device:
    return state[0].device


# ---------------------------------------------------------------------- the retriever
class GSIDGenerativeRetriever(Retriever):
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
        super().__init__()
        self.config_ = cpu_config(config)
        if rescore not in RESCORE:
            raise GsidError(f"rescore {rescore!r} is unknown; choose one of {list(RESCORE)}")
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
            ("beam_width", beam_width, 1),
            ("batch_size", batch_size, 1),
            ("rescore_depth", rescore_depth, 1),
            ("num_threads", num_threads, 0),
            *([("id_levels", id_levels, 1)] if id_levels is not None else []),
        ):
            if not isinstance(value, int | np.integer) or value < low:
                raise GsidError(f"{arg} must be an integer >= {low}, got {value!r}")
        if beam_mass is not None and (
            isinstance(beam_mass, bool)
            or not isinstance(beam_mass, float | int)
            or not 0 < beam_mass <= 1
        ):
            raise GsidError(f"beam_mass must be None or a number in (0, 1], got {beam_mass!r}")
        self.model_dir = None if model_dir is None else str(model_dir)
        self.beam_width = int(beam_width)
        self.rescore = rescore
        self.representation = representation
        self.rescore_depth = int(rescore_depth)
        self.vectors = vectors
        self.query_encoder = query_encoder
        self.static_encoder = None if static_encoder is None else dict(static_encoder)
        self.id_levels = None if id_levels is None else int(id_levels)
        self.beam_mass = None if beam_mass is None else float(beam_mass)
        self.num_threads = int(num_threads)
        self.batch_size = int(batch_size)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.out_dir = out_dir
        self.seed = int(seed)
        self.device = device
        self.model_ = None  # GSIDModel
        self.ids_ = None  # SemanticIDs: L codes per item, no collision suffix
        self.trie_: CodeTrie | None = None
        # items are kept in trie order (code order, ties by prior): item_ids_[j] is the item at
        # sorted position j, so a leaf's items are a contiguous run and no permutation is stored
        self.item_reps_: np.ndarray | PQVectors | None = None  # rescore="cosine" only
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
        rows = np.fromiter((self.ids_.index_of(i) for i in item_ids), np.int64, len(item_ids))
        pairs = dataset.training_pairs("train")
        pos = {s: i for i, s in enumerate(item_ids)}
        q_items = pairs["item_id"].map(pos).to_numpy(np.int64)
        weight, n_queries = log_prior(pairs, q_items, len(item_ids))
        ranked = prior_order(self.ids_, rows, weight, n_queries)
        self.item_ids_ = item_ids[ranked]
        if self.rescore == "cosine":
            vecs = representation(reps, self.representation)[ranked]
            if self.vectors == "float16":
                self.item_reps_ = vecs.astype(np.float16)
            else:  # residual PQ groups the items by their first code
                first = self.ids_.sorted_codes()[0][:, 0]  # items are in trie order
                self.item_reps_ = PQVectors.fit(vecs, self.vectors, first, seed=self.seed)
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
            self._scorer = make_scorer(self.model_)
        return self._scorer

    # ------------------------------------------------------------------ search
    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        if self.rescore == "cosine" and self.item_reps_ is None:
            raise NotFittedError(
                "rescore='cosine' needs the items' GSID representations, which this retriever "
                "did not keep: index it (or load one saved) with rescore='cosine'"
            )
        out = SearchResults.empty(len(queries), k)
        starts = range(0, len(queries), self.batch_size)
        on_cpu = self.model_.device.type == "cpu"
        with torch_threads(self.num_threads if on_cpu else 0), torch.inference_mode():
            for s in progress(starts, show_progress, desc="gsid-gr search", unit="batch"):
                self._search_batch(queries[s : s + self.batch_size], k, out, s)
        return out

    def query_memory(self, batch: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder memory of the queries (B, S, H) and its mask (B, S): the model's own
        encoder, or (query_encoder="static") the static encoder's vector as pooled memory."""
        if self.static_ is not None:
            return self.model_.memory_from_features(self.static_.encode(batch))
        return self.model_.encode_texts(batch)

    def _search_batch(self, batch: list[str], k: int, out: SearchResults, offset: int) -> None:
        model, scorer = self.model_, self.scorer
        B = len(batch)
        mem, mask = self.query_memory(batch)
        state = scorer.start(mem, mask)
        first: list[torch.Tensor] = []

        def logits_fn(st, tokens: torch.Tensor) -> torch.Tensor:
            logp, d = scorer.step(st, tokens)
            if tokens.shape[2] == 0:  # step 0 has one beam per query: keep d_0 for "first"
                first.append(d[:, 0])
            return logp

        res = constrained_beam_search(
            logits_fn, state, self.trie_, B, self.beam_width, device=mem.device
        )
        nodes = res.nodes
        if self.beam_mass is not None:
            nodes = mass_cut(nodes, res.log_probs, self.beam_mass)
        if self.rescore == "cosine":
            depth = self.rescore_depth  # the first `depth` candidates of each query, in beam order
            lo, cnt = beam_ranges(self.trie_, nodes, depth, depth)
            rows, query, per_q = expand_ranges(lo, cnt, nodes.shape[1])  # items in trie order
            if self.representation == "first" and first:
                reps = first[0][:, None]  # (B, 1, H)
            else:  # the greedy path, as the items were encoded
                n = 1 if self.representation == "first" else model.config.n_levels
                reps = greedy_states(scorer, state, B, n)  # (B, n, H)
            scores = self._cosine(reps, rows, query, (lo, cnt, nodes.shape[1]))
            rows, scores, query, rank = _top_per_query(rows, scores, query, per_q, k)
        else:
            rows, scores, query, per_q = expand_ids(self.trie_, None, nodes, res.scores, k)
            # rank of each candidate within its query (candidates are grouped by query)
            rank = np.arange(len(rows)) - np.repeat(np.cumsum(per_q) - per_q, per_q)
        keep = rank < k
        qi, ri = query[keep] + offset, rank[keep]
        out.ids[qi, ri] = self.item_ids_[rows[keep]]
        out.scores[qi, ri] = scores[keep]

    def _cosine(
        self,
        reps: torch.Tensor,
        rows: np.ndarray,
        query: np.ndarray,
        beams: tuple[np.ndarray, np.ndarray, int] | None = None,
    ) -> np.ndarray:
        """Cosine between each candidate item (rows (M,)) and its query (query (M,)); reps
        (B, L', H): the queries' decoder states. beams (lo, cnt, R), when given, says that the
        candidates are the item ranges [lo, lo + cnt) of the B * R beams, in beam order (as
        expand_ids lists them): they are then scored range by range (_range_cosine) or as one
        union (_union_cosine), whichever the fitted cost models say is cheaper. Range by range
        wins on big ranges (prefix beams), the union on many small ones (whole IDs)."""
        Q = torch.from_numpy(representation(reps.float().cpu().numpy(), self.representation))
        if isinstance(self.item_reps_, PQVectors):
            return self.item_reps_.dot(Q, rows, query)
        items = torch.from_numpy(self.item_reps_)  # (N, D) float16, shares memory
        if beams is not None:
            lo, cnt, R = beams
            alive = cnt > 0
            starts, which = np.unique(lo[alive], return_inverse=True)  # distinct ranges
            longest = np.zeros(len(starts), np.int64)
            np.maximum.at(longest, which, cnt[alive])
            M, U, B = len(rows), int(longest.sum()), Q.shape[0]
            union = _UNION_COST[0] * M + (_UNION_COST[1] * B + _UNION_COST[2]) * U
            ranges = _RANGE_COST[0] * M + _RANGE_COST[1] * len(starts) + _RANGE_COST[2] * U
            if ranges < union:
                return _range_cosine(items, Q, lo, cnt, R).numpy()
        return _union_cosine(items, Q, rows, query).numpy()

    # ---- what the evaluation harness reads besides the ranking (see eval.bench)
    def query_codes(self, queries: list[str]) -> np.ndarray:
        """(Q, L) greedy codes of query texts (the model's own encoder)."""
        return encode(self.model_, queries)[0]

    def item_codes(self) -> np.ndarray:
        """(N, L) the items' IDs in catalogue order."""
        return np.stack([self.ids_.codes[self.ids_.index_of(i)] for i in self.item_ids_])

    # ------------------------------------------------------------------ size and persistence
    def index_bytes(self) -> int:
        """Bytes needed to answer queries besides the model weights (and the static query
        encoder's): the trie as held in memory and, with rescore="cosine", the item vectors
        (float16, or PQ codes plus their centroids). Items are stored in trie order, so there is
        no permutation array."""
        if self.trie_ is None:
            return 0
        total = self.trie_.nbytes()
        if isinstance(self.item_reps_, PQVectors):
            total += self.item_reps_.nbytes()
        elif self.item_reps_ is not None:
            total += self.item_reps_.nbytes
        return int(total)

    def _save_state(self, directory: Path) -> None:
        self.model_.save(directory / "model")
        self.ids_.save(directory / "semantic_ids")
        if isinstance(self.item_reps_, PQVectors):
            self.item_reps_.save(directory, "item_reps")
        elif self.item_reps_ is not None:
            np.save(directory / "item_reps.npy", self.item_reps_)
        if self.static_ is not None:
            self.static_.save(directory / "static_encoder")

    def _load_state(self, directory: Path) -> None:
        from gsid.ids.semantic_ids import SemanticIDs
        from gsid.models.model import GSIDModel

        try:
            self.model_ = GSIDModel.load(directory / "model", device=self.device).eval()
            self.ids_ = SemanticIDs.load(directory / "semantic_ids")
            if self.rescore == "cosine" and self.vectors == "float16":
                self.item_reps_ = np.load(directory / "item_reps.npy", allow_pickle=False)
        except FileNotFoundError as e:
            raise ArtifactError(
                f"{directory}: {Path(e.filename).name} is missing; re-index and save the "
                f"retriever again"
            ) from e
        if self.rescore == "cosine" and self.vectors != "float16":
            self.item_reps_ = PQVectors.load(directory, "item_reps", self.vectors)
        self.static_ = None
        if self.query_encoder == "static":
            self.static_ = StaticEncoder.load(directory / "static_encoder")
        self.trie_ = self._trie()  # rebuilt from the artifact: one source of truth
        n = self.ids_.n_items
        reps = getattr(self.item_reps_, "codes", self.item_reps_)
        if len(self.item_ids_) != n or (reps is not None and len(reps) != n):
            raise ArtifactError(
                f"{directory}: item_ids / item vectors do not match the semantic IDs ({n} "
                f"items); re-index and save again"
            )
        # the items must be stored in the trie's order (their codes sorted)
        rows = np.fromiter((self.ids_.index_of(i) for i in self.item_ids_), np.int64, n)
        if not np.array_equal(self.ids_.codes[rows], self.ids_.sorted_codes()[0]):
            raise ArtifactError(
                f"{directory}: item_ids are not in the order of the trie (saved by an older "
                f"gsid?); re-index and save the retriever again"
            )
        self._scorer = None


def mass_cut(nodes: torch.Tensor, log_probs: torch.Tensor, mass: float) -> torch.Tensor:
    """Beams (B, W), best first, with their ID log-probs: a beam is dropped (node -1) once the
    beams before it hold `mass` of the probability, so each query keeps at least one."""
    p = log_probs.exp()
    before = torch.cumsum(p, dim=1) - p
    return torch.where(before >= mass, torch.full_like(nodes, -1), nodes)


def _top_per_query(
    rows: np.ndarray, scores: np.ndarray, query: np.ndarray, per_q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The k best-scored candidates of each query (candidates grouped by query, per_q of
    them each), best first: rows, scores, query, rank. One padded top-k instead of sorting every
    candidate: with prefix beams a batch has over a million candidates, and their lexsort took
    longer than scoring them."""
    B = len(per_q)
    start = np.cumsum(per_q) - per_q
    rank = np.arange(len(rows)) - np.repeat(start, per_q)
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


def _union_cosine(
    items: torch.Tensor, Q: torch.Tensor, rows: np.ndarray, query: np.ndarray
) -> torch.Tensor:
    """Queries of a batch share candidates: each distinct row is widened from float16 once and
    scored against all B queries by one matrix product (3-4x faster than a gather per candidate
    once candidates number in the thousands per query); chunks bound the temporaries."""
    uniq, inv = torch.unique(torch.from_numpy(rows), return_inverse=True)
    query_t = torch.from_numpy(query)
    out = torch.empty(len(rows), dtype=torch.float32)
    step = max(1, _COSINE_CHUNK // (items.shape[1] + Q.shape[0]))
    for s in range(0, len(uniq), step):
        scores = Q @ items[uniq[s : s + step]].float().T  # (B, chunk)
        hit = (inv >= s) & (inv < s + step)
        out[hit] = scores[query_t[hit], inv[hit] - s]
    return out


def _range_cosine(
    items: torch.Tensor, Q: torch.Tensor, lo: np.ndarray, cnt: np.ndarray, R: int
) -> torch.Tensor:
    """The candidates as item ranges, one per beam (B * R,), listed in beam order: each distinct
    range is widened once and multiplied by the queries of the beams that generated it. With
    big ranges (prefix beams: hundreds of items per first code) this costs the candidates
    alone, where the union product costs the batch times every distinct row, which is most of
    the catalogue: about 3x faster on Home Depot at id_levels=1 (beam 10: 108 -> 40 ms per
    batch of 64)."""
    beams = np.flatnonzero(cnt > 0)
    beams = beams[np.lexsort((cnt[beams], lo[beams]))]  # by range start, then length
    first = np.flatnonzero(np.r_[True, lo[beams][1:] != lo[beams][:-1]])
    # one float32 buffer for every range: widening into fresh tensors cost twice as much
    wide = torch.empty(int(cnt.max(initial=0)), items.shape[1], dtype=torch.float32)
    queries = torch.from_numpy(beams // R)
    pieces = []  # each beam's scores, beam after beam in `beams` order
    ends = np.r_[first[1:], len(beams)]
    for a, b, at, n, n0 in zip(
        first.tolist(),
        ends.tolist(),
        lo[beams[first]].tolist(),
        cnt[beams[ends - 1]].tolist(),
        cnt[beams[first]].tolist(),
        strict=True,
    ):  # beams a..b share one range start; the last is the longest (depth cut)
        scores = (Q[queries[a:b]] @ wide[:n].copy_(items[at : at + n]).T).reshape(-1)
        if n0 != n:  # some beams were cut short: keep each beam's own count
            keep = np.arange(n) < cnt[beams[a:b]][:, None]
            scores = scores[torch.from_numpy(keep.reshape(-1))]
        pieces.append(scores)
    # one scatter to beam order (per-range scatters cost more than the products)
    start = np.cumsum(cnt) - cnt  # each beam's first position in the output
    size = cnt[beams]
    pos = (
        np.repeat(start[beams], size)
        + np.arange(int(size.sum()))
        - np.repeat(np.cumsum(size) - size, size)
    )
    out = torch.empty(int(cnt.sum()), dtype=torch.float32)
    if pieces:
        out[torch.from_numpy(pos)] = torch.cat(pieces)
    return out


def scorer_logits(scorer):
    """The scorer as the beam search's logits_fn (log-probs only)."""
    return lambda state, tokens: scorer.step(state, tokens)[0]


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
    from gsid.models.sampling import pseudo_query
    from gsid.models.train import pooled_features

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
