"""Constrained beam search over a CodeTrie, batched over queries (B queries x W beams).

    result = constrained_beam_search(logits_fn, state, trie, n_queries=B, beam_width=W)
    result.nodes   # (B, R) trie node of each generated ID (-1 where fewer were found)
    result.codes   # (B, R, L) the IDs, -1 padded
    result.scores  # (B, R) ranking score (length-normalised when length_penalty > 0)

`logits_fn(state, tokens) -> log_probs`: tokens (B, W, t) long, the code prefixes of every beam
(t = 0 at the first step); returns (B, W, K + 1) log-probabilities over the K codes and EOS
(token K). `state` is whatever the model needs per query (encoder outputs, ...): beams of
query b are tokens[b], so the function never has to reorder a cache.

Scoring: the score of an ID c_1..c_n is sum_j log p(c_j | c_<j), plus log p(EOS | c) when the
ID is also the prefix of longer IDs (the model has to choose to stop there). At a node without
children EOS is the only way on, so it costs nothing and needs no model call. Only IDs that exist
in the trie can come out: every step masks the tokens the trie does not allow (one gather for
all B*W beams, see CodeTrie.allowed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from gsid.errors import GsidError
from gsid.retrieval.trie import CodeTrie

LogitsFn = Callable[[Any, torch.Tensor], torch.Tensor]
ReorderFn = Callable[[Any, torch.Tensor], Any]
NEG_INF = float("-inf")


class BeamResult(NamedTuple):
    """nodes (B, R) long, -1 where none; codes (B, R, L) long, -1 padded; scores (B, R) float
    ranking scores (-inf where none); log_probs (B, R) raw summed log-probabilities."""

    nodes: torch.Tensor
    codes: torch.Tensor
    scores: torch.Tensor
    log_probs: torch.Tensor


def _normalise(raw: torch.Tensor, length: torch.Tensor, length_penalty: float) -> torch.Tensor:
    if length_penalty == 0:
        return raw
    return raw / length.clamp(min=1).to(raw.dtype) ** length_penalty


class _Finished:
    """Top-R finished IDs per query, kept as tensors and merged with one topk per step."""

    def __init__(self, B: int, R: int, device: torch.device) -> None:
        self.R = R
        self.nodes = torch.full((B, 0), -1, dtype=torch.long, device=device)
        self.scores = torch.full((B, 0), NEG_INF, device=device)
        self.raw = torch.full((B, 0), NEG_INF, device=device)

    def add(self, nodes: torch.Tensor, scores: torch.Tensor, raw: torch.Tensor) -> None:
        n = torch.cat([self.nodes, nodes], 1)
        s = torch.cat([self.scores, scores], 1)
        r = torch.cat([self.raw, raw], 1)
        top, idx = s.topk(min(self.R, s.shape[1]), dim=1)
        self.nodes, self.scores, self.raw = n.gather(1, idx), top, r.gather(1, idx)

    def worst(self) -> torch.Tensor:
        """(B,) the R-th best score so far (-inf while fewer than R are finished)."""
        if self.scores.shape[1] < self.R:
            return torch.full(self.scores.shape[:1], NEG_INF, device=self.scores.device)
        return self.scores[:, -1]


@torch.no_grad()
def constrained_beam_search(
    logits_fn: LogitsFn,
    state: Any,
    trie: CodeTrie,
    n_queries: int,
    beam_width: int = 10,
    n_results: int | None = None,
    length_penalty: float = 0.0,
    device: str | torch.device | None = None,
    reorder_fn: ReorderFn | None = None,
) -> BeamResult:
    """Generate the top `n_results` (default `beam_width`) existing IDs for each of `n_queries`
    queries. length_penalty alpha ranks finished IDs by score / length**alpha (0 = raw sum;
    early stopping is only exact then, so with alpha > 0 the search runs all levels).

    reorder_fn(state, src) -> state: for models that cache per-beam work between steps. After
    each step, new beam j of query b continues the beam that was at position src[b, j] (B, W)
    of the previous call's `tokens`; the model reorders its cache to match."""
    if beam_width < 1:
        raise GsidError(f"beam_width must be a positive integer, got {beam_width}")
    R = beam_width if n_results is None else int(n_results)
    if R < 1:
        raise GsidError(f"n_results must be a positive integer, got {n_results}")
    if length_penalty < 0:
        raise GsidError(f"length_penalty must be >= 0, got {length_penalty}")
    B, W, K, V = int(n_queries), int(beam_width), trie.eos, trie.vocab_size
    dev = torch.device(device) if device is not None else torch.device("cpu")
    scores = torch.full((B, W), NEG_INF, device=dev)  # (B, W) raw log-probs of live beams
    scores[:, 0] = 0.0
    nodes = torch.full((B, W), -1, dtype=torch.long)  # trie lookups stay on the CPU
    nodes[:, 0] = 0
    tokens = torch.zeros((B, W, 0), dtype=torch.long, device=dev)
    fin = _Finished(B, R, dev)
    if trie.n_nodes <= 1:
        return _result(fin, trie, B, R)
    for t in range(trie.n_levels):
        live = scores > NEG_INF
        if not bool(live.any()):
            break
        # log-probs are <= 0: a live beam can only lose score, so once every query's R-th
        # finished ID beats its best live beam nothing better can come.
        if length_penalty == 0 and t > 0 and bool((fin.worst() >= scores.max(dim=1).values).all()):
            break
        # live beams come first (see the re-sort below): ask the model only about the first
        # `w` beams of every query (at t = 0 that is one beam instead of W)
        w = max(int(live.sum(1).max()), 1)
        logp = logits_fn(state, tokens[:, :w]).float()  # (B, w, V)
        if logp.shape != (B, w, V):
            raise GsidError(
                f"logits_fn returned shape {tuple(logp.shape)}, expected {(B, w, V)} "
                f"(queries, beams, codes + EOS)"
            )
        if w < W:
            logp = torch.cat([logp, logp.new_full((B, W - w, V), NEG_INF)], 1)
        mask = trie.allowed(nodes.view(-1)).view(B, W, V).to(dev)
        cand = torch.where(mask, scores.unsqueeze(-1) + logp, NEG_INF)  # (B, W, V)
        depth = torch.full((B, W), t, device=dev)
        # 1) IDs that end here although longer IDs continue them: EOS chosen by the model
        eos = cand[..., K]
        fin.add(
            torch.where(eos > NEG_INF, nodes.to(dev), -1),
            _normalise(eos, depth, length_penalty),
            eos,
        )
        # 2) continue with the best W children over all beams of a query
        flat = cand[..., :K].reshape(B, W * K)
        top, idx = flat.topk(min(W, W * K), dim=1)  # (B, W)
        beam, tok = idx // K, idx % K
        parent = nodes.gather(1, beam.cpu())
        new_nodes = trie.advance(parent.view(-1), tok.cpu().view(-1)).view(B, -1)
        new_nodes[(top == NEG_INF).cpu()] = -1
        tokens = torch.cat(
            [tokens.gather(1, beam.unsqueeze(-1).expand(-1, -1, t)), tok.unsqueeze(-1)], 2
        )
        # 3) children without children of their own are whole IDs: they finish for free
        safe = new_nodes.clamp(min=0)
        leaf = (new_nodes >= 0) & ~trie.has_children[safe]
        leaf_d = leaf.to(dev)
        fin.add(
            torch.where(leaf_d, new_nodes.to(dev), -1),
            torch.where(leaf_d, _normalise(top, depth + 1, length_penalty), NEG_INF),
            torch.where(leaf_d, top, NEG_INF),
        )
        scores = torch.where(leaf_d, NEG_INF, top)
        nodes = torch.where(leaf, -1, new_nodes)
        # keep live beams first (stable: equal scores keep their order)
        scores, perm = scores.sort(dim=1, descending=True, stable=True)
        nodes = nodes.gather(1, perm.cpu())
        tokens = tokens.gather(1, perm.unsqueeze(-1).expand(-1, -1, t + 1))
        if reorder_fn is not None:
            state = reorder_fn(state, beam.gather(1, perm))
    return _result(fin, trie, B, R)


def _result(fin: _Finished, trie: CodeTrie, B: int, R: int) -> BeamResult:
    dev = fin.scores.device
    pad = R - fin.scores.shape[1]
    nodes, scores, raw = fin.nodes, fin.scores, fin.raw
    if pad > 0:
        nodes = torch.cat([nodes, torch.full((B, pad), -1, dtype=torch.long, device=dev)], 1)
        scores = torch.cat([scores, torch.full((B, pad), NEG_INF, device=dev)], 1)
        raw = torch.cat([raw, torch.full((B, pad), NEG_INF, device=dev)], 1)
    nodes = torch.where(scores > NEG_INF, nodes, -1).cpu()
    codes = trie.node_codes(nodes.view(-1)).view(B, R, trie.n_levels)
    return BeamResult(nodes, codes, scores.cpu(), raw.cpu())


@torch.no_grad()
def brute_force_search(
    logits_fn: LogitsFn,
    state: Any,
    trie: CodeTrie,
    n_queries: int,
    n_results: int,
    length_penalty: float = 0.0,
) -> BeamResult:
    """Reference for tests: score every ID in the trie exactly (same scoring as the beam
    search) and keep the top `n_results`. Calls logits_fn with W = number of IDs."""
    B = int(n_queries)
    ends = torch.nonzero(trie.is_end).ravel()  # (E,) nodes where an ID ends
    E = len(ends)
    codes = trie.node_codes(ends)  # (E, L)
    depth = trie.depth[ends]  # (E,)
    raw = torch.zeros((B, E))
    for t in range(trie.n_levels + 1):
        prefix = codes[:, :t].clamp(min=0)  # (E, t); only used where depth >= t
        logp = logits_fn(state, prefix.unsqueeze(0).expand(B, -1, -1).contiguous()).float()
        if t < trie.n_levels:
            step = (depth > t).unsqueeze(0)
            tok = codes[:, t].clamp(min=0)
            raw += torch.where(
                step, logp.gather(2, tok.view(1, E, 1).expand(B, -1, -1)).squeeze(-1), 0.0
            )
        stop = ((depth == t) & trie.has_children[ends]).unsqueeze(0)
        raw += torch.where(stop, logp[..., trie.eos], 0.0)
    scores = _normalise(raw, depth.unsqueeze(0).expand(B, -1), length_penalty)
    R = min(n_results, E)
    top, idx = scores.topk(R, dim=1)
    nodes = ends[idx]
    fin = _Finished(B, n_results, torch.device("cpu"))
    fin.nodes, fin.scores, fin.raw = nodes, top, raw.gather(1, idx)
    return _result(fin, trie, B, n_results)
