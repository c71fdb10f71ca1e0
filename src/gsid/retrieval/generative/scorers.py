"""Step scorers: what a generative retriever's beam search asks at every step — the log-probs
of each beam's next code. One for each model that generates IDs:

- `QueryToIDScorer`: the query -> ID seq2seq model of `gr` (models/query_to_id.py), with its
  key/value cache reordered as the beams move;
- `FullScorer` / `PooledStepScorer` (`gsid_scorer(model)` picks one): the GSID model itself,
  whose decoder step t scores codebook t (`gsid-gr`).

A scorer has start(...) -> state and step(state, tokens (B, w, t)) -> (log-probs (B, w, K+1)
with the EOS column last, step states (B, w, H) or None); `reorder(state, src)` when the state
caches per-beam tensors (None otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gsid._device import torch_threads
from gsid.errors import GsidError
from gsid.models.query_to_id import QueryToID
from gsid.retrieval.beam import BeamResult, constrained_beam_search
from gsid.retrieval.trie import CodeTrie

NEG_INF = float("-inf")


class QueryToIDScorer:
    """The query -> ID model as a step scorer (its cached logits, vocabulary cut to the trie's).

    state = start(texts, embeddings); the beam search calls step / reorder."""

    reorder = staticmethod(QueryToID.reorder_cache)

    def __init__(self, model: QueryToID, trie: CodeTrie, use_cache: bool = True) -> None:
        model._check()
        if trie.n_levels > model.config.n_levels or trie.n_codes > model.config.n_codes:
            raise GsidError(
                f"the trie has IDs of up to {trie.n_levels} levels over {trie.n_codes} codes but "
                f"the model was trained for {model.config.n_levels} levels x "
                f"{model.config.n_codes} codes; retrain the model on these IDs"
            )
        self.model, self.use_cache = model, use_cache
        self.cut = trie.n_codes if trie.n_codes < model.config.n_codes else None
        if not use_cache:
            self.reorder = None

    def start(self, texts: Sequence[str], embeddings: np.ndarray | None = None):
        mem, pad = self.model.encode_memory(texts, embeddings)
        return {"mem": mem, "pad": pad, "cache": None} if self.use_cache else (mem, pad)

    def logits(self, state, tokens: torch.Tensor) -> torch.Tensor:
        fn = self.model.cached_logits_fn if self.use_cache else self.model.logits_fn
        lp = fn(state, tokens)
        if self.cut is not None:  # model vocabulary wider than the trie's: cut
            lp = torch.cat([lp[..., : self.cut], lp[..., -1:]], -1)
        return lp


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
    come out."""
    with torch_threads(model.config.num_threads):
        scorer = QueryToIDScorer(model, trie, use_cache)
        return constrained_beam_search(
            scorer.logits,
            scorer.start(texts, embeddings),
            trie,
            len(texts),
            beam_width,
            n_results,
            length_penalty,
            device=model._device,
            reorder_fn=scorer.reorder,
        )


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


def gsid_scorer(model) -> FullScorer | PooledStepScorer:
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


def scorer_logits(scorer):
    """The scorer as the beam search's logits_fn (log-probs only)."""
    return lambda state, tokens: scorer.step(state, tokens)[0]
