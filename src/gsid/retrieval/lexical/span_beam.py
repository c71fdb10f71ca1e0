"""Constrained beam search over spans: a model writes up to S title spans separated by SEP, and
every span it writes occurs in the catalogue.

    beams = generate_spans(model, index, queries, beam_width=10, n_spans=3, max_len=4)
    beams[q] -> [Beam(spans=((17, 3), (88,)), span_logp=(-1.2, -0.4),
                   span_interval=((512, 519), (40, 77)), score=-2.1), ...]

Batched over queries x beams (N = B * W slots, query b's beams in slots b * W ...) with the
model's key/value cache (SpanModel.start / step / reorder as beams move). Only the beams still
writing are decoded (a finished beam keeps its slot and score at no cost), and a query whose W
beams have all finished leaves the batch (SpanModel.keep). Each beam keeps the suffix-array
interval (lo, hi) of the span it is writing and its length; at every step its allowed tokens
are:
  * writing a span of length 0 < d < max_len: the interval's next tokens (SpanIndex.
    next_tokens: the distinct tokens that follow the span somewhere) and SEP, which closes the
    span (it occurs, by construction; not after punctuation, and a span the beam already wrote
    may not be closed again);
  * at d == max_len: SEP only;
  * before a span (d == 0): any token that begins a title n-gram and a word (`start_ok`), and
    END once a span is written; after S spans: END only;
  * finished beams: END again at no cost.
The model's log-probabilities are masked, not renormalised. No (N, V) mask is built: a beam
before a span offers its W best start tokens (no more of them can survive the step), a beam
inside a span the extensions of its interval (SpanIndex.children: each with its own, narrower
interval, so no beam ever re-walks its prefix and no written span can have count 0), and
every query keeps its W best candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gsid.text.span_index import SpanIndex


@dataclass
class Beam:
    spans: tuple[tuple[int, ...], ...]
    span_logp: tuple[float, ...]  # log-probability of each span's tokens
    span_interval: tuple[tuple[int, int], ...]  # each span's suffix-array interval [lo, hi)
    score: float  # log-probability of the whole sequence


def distinct_spans(
    beams: Sequence[Beam],
) -> tuple[list[tuple[int, ...]], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """One query's beams -> its distinct spans, each with its best log-probability (S,) and
    its suffix-array interval ((S,) lo, (S,) hi)."""
    best: dict[tuple[int, ...], tuple[float, tuple[int, int]]] = {}  # logp, interval
    for b in beams:
        for s, lp, iv in zip(b.spans, b.span_logp, b.span_interval, strict=True):
            if s not in best or lp > best[s][0]:
                best[s] = (lp, iv)
    spans = list(best)
    iv = np.array([best[s][1] for s in spans], np.int64).reshape(-1, 2)
    return spans, np.array([best[s][0] for s in spans]), (iv[:, 0], iv[:, 1])


def start_tokens(
    index: SpanIndex,
    continuation: np.ndarray | None = None,
    punctuation: np.ndarray | None = None,
) -> np.ndarray:
    """(V,) bool: tokens a span may start with (they start a title n-gram and a word, and are
    not punctuation)."""
    ok = np.diff(np.asarray(index.first)) > 0
    for mask in (continuation, punctuation):
        if mask is not None:
            ok &= ~np.asarray(mask, bool)[: len(ok)]
    return ok


@torch.no_grad()
def generate_spans(
    model,
    index: SpanIndex,
    queries: Sequence[str],
    beam_width: int = 10,
    n_spans: int = 3,
    max_len: int = 4,
    start_ok: np.ndarray | None = None,
    punctuation: np.ndarray | None = None,
) -> list[list[Beam]]:
    """W beams of up to n_spans spans per query, best first (beams that found no valid
    continuation are dropped). `punctuation` (V,) bool: tokens a span may not end with."""
    B, W = len(queries), int(beam_width)
    if B == 0:
        return []
    V = model.vocab_size
    start_ok = start_tokens(index) if start_ok is None else np.asarray(start_ok, bool)
    start_row = np.zeros(V, bool)
    start_row[: min(len(start_ok), V)] = start_ok[:V]
    no_end = np.zeros(V, bool)
    if punctuation is not None:
        no_end[: min(len(punctuation), V)] = np.asarray(punctuation, bool)[:V]
    enc, mask = model.encode(list(queries))  # ((B, S, d), (B, S)), (B, S)
    dev = mask.device
    rules = _Rules(index, V, model.sep_id, model.end_id, n_spans, max_len, W, no_end, start_row)
    rules.start_bias = rules.start_bias.to(dev)
    state = model.start(enc, mask, beams=W)
    slots = _Slots(B * W, n_spans, max_len, index)
    slots.score[::W] = 0.0  # one live beam per query at the start; the rest are empty
    slots.finished[:] = ~np.isfinite(slots.score)
    qid = np.arange(B)  # the queries still decoding, in slot order
    out: list[list[Beam]] = [[] for _ in range(B)]
    for _ in range(n_spans * (max_len + 1) + 1):
        rows = np.flatnonzero(~slots.finished)  # the slots decoded this step
        whole = len(rows) == len(slots.score)
        logp = model.step(
            state,
            torch.from_numpy(slots.last[rows]).to(dev),
            None if whole else torch.from_numpy(rows).to(dev),
        ).float()  # (n, V)
        src, tok, lp, score, iv = rules.select(slots, rows, logp)
        slots = slots.advance(src, tok, lp, score, iv, rules)
        # a query whose W beams have all finished leaves the batch: its slots are not decoded
        over = slots.finished.reshape(-1, W).all(1)
        nxt = np.flatnonzero(~slots.finished)
        where = np.full(len(src), -1)
        where[rows] = np.arange(len(rows))
        if len(nxt):
            model.reorder(state, torch.from_numpy(where[src[nxt]]).to(dev))
        if over.any():
            for b in np.flatnonzero(over):
                out[qid[b]] = slots.beams(range(b * W, (b + 1) * W))
            live = np.flatnonzero(~over)
            if len(live) == 0:
                break
            qid = qid[live]
            slots = slots.take((live[:, None] * W + np.arange(W)).reshape(-1))
            model.keep(state, torch.from_numpy(live).to(dev))
    else:  # the step budget ran out: what is left stops here
        for b in range(len(qid)):
            out[qid[b]] = slots.beams(range(b * W, (b + 1) * W))
    return out


class _Slots:
    """The beam slots' state as arrays (N slots; S spans of up to L tokens each)."""

    FIELDS = ("score", "finished", "last", "lo", "hi", "depth", "done", "cur", "cur_lp",
              "sp_tok", "sp_len", "sp_lp", "sp_lo", "sp_hi")  # fmt: skip

    def __init__(self, N: int, S: int, L: int, index: SpanIndex) -> None:
        self.score = np.full(N, -np.inf)  # log-probability of the whole sequence
        self.finished = np.zeros(N, bool)
        self.last = np.zeros(N, np.int64)  # the last token written (decoder start: pad, 0)
        self.lo, self.hi = index.root(N)  # interval of the span being written
        self.depth = np.zeros(N, np.int64)  # its length
        self.done = np.zeros(N, np.int64)  # spans written
        self.cur = np.full((N, L), -1, np.int64)  # its tokens (-1: none)
        self.cur_lp = np.zeros(N)  # their log-probability
        self.sp_tok = np.full((N, S, L), -1, np.int64)  # the spans written, their tokens,
        self.sp_len = np.zeros((N, S), np.int64)  # lengths, log-probabilities and intervals
        self.sp_lp = np.zeros((N, S))
        self.sp_lo = np.zeros((N, S), np.int64)
        self.sp_hi = np.zeros((N, S), np.int64)

    def take(self, idx: np.ndarray) -> _Slots:
        """The slots idx (a copy)."""
        new = object.__new__(_Slots)
        for f in self.FIELDS:
            setattr(new, f, getattr(self, f)[idx])
        return new

    def advance(self, src, tok, lp, score, iv, rules: _Rules) -> _Slots:
        """The new slots: slot j continues slot src[j] with token tok[j] (log-prob lp[j]; its
        span's interval becomes iv[j] when it extends a span), scoring score[j] in all."""
        s = self.take(src)
        dead = ~np.isfinite(score)
        is_end = (tok == rules.end) | s.finished | dead
        is_sep = (tok == rules.sep) & ~is_end
        i = np.flatnonzero(is_sep)  # close the span being written
        k = s.done[i]
        s.sp_tok[i, k], s.sp_len[i, k], s.sp_lp[i, k] = s.cur[i], s.depth[i], s.cur_lp[i]
        s.sp_lo[i, k], s.sp_hi[i, k] = s.lo[i], s.hi[i]
        s.done[i] += 1
        s.cur[i], s.cur_lp[i], s.depth[i] = -1, 0.0, 0
        s.lo[i], s.hi[i] = rules.root
        g = np.flatnonzero(~is_end & ~is_sep)  # one more token in the span
        s.cur[g, s.depth[g]] = tok[g]
        s.lo[g], s.hi[g] = iv[0][g], iv[1][g]
        s.depth[g] += 1
        s.cur_lp[g] += lp[g]
        s.finished = s.finished | is_end
        s.score, s.last = score, tok
        return s

    def beams(self, rows) -> list[Beam]:
        """One query's beams that wrote a span, best first."""
        rows = sorted((i for i in rows if np.isfinite(self.score[i]) and self.done[i]),
                      key=lambda i: -self.score[i])  # fmt: skip
        out = []
        for i in rows:
            n = range(self.done[i])
            out.append(Beam(
                tuple(tuple(self.sp_tok[i, k, : self.sp_len[i, k]].tolist()) for k in n),
                tuple(float(self.sp_lp[i, k]) for k in n),
                tuple((int(self.sp_lo[i, k]), int(self.sp_hi[i, k])) for k in n),
                float(self.score[i]),
            ))  # fmt: skip
        return out


@dataclass
class _Rules:
    """What a beam may write next, and the W best candidates of every query."""

    index: SpanIndex
    V: int
    sep: int
    end: int
    n_spans: int
    max_len: int
    W: int
    no_end: np.ndarray  # (V,) bool: tokens a span may not end with
    start_row: np.ndarray  # (V,) bool: tokens a span may start with

    def __post_init__(self) -> None:
        lo, hi = self.index.root()
        self.root = (int(lo[0]), int(hi[0]))
        # (V,) added to a row's log-probabilities before a span: -inf where it may not start
        self.start_bias = torch.zeros(self.V).masked_fill_(
            torch.from_numpy(~self.start_row), -torch.inf
        )

    def select(self, s: _Slots, rows: np.ndarray, logp: torch.Tensor):
        """Every query's W best candidates -> per new slot (N,): source slot, token, its
        log-prob, the new score (-inf: no candidate left) and the interval ((N,) lo, (N,) hi)
        of the span it extends."""
        slot, tok, lp, c_lo, c_hi = self._candidates(s, rows, logp)
        W, B = self.W, len(s.score) // self.W
        if len(slot) == 0:  # no beam can go on: every slot ends empty
            return (np.repeat(np.arange(B) * W, W), np.full(B * W, self.end), np.zeros(B * W),
                    np.full(B * W, -np.inf), (np.zeros(B * W, np.int64),) * 2)  # fmt: skip
        total = s.score[slot].astype(np.float32) + lp
        # candidates grouped by query into a (B, C) matrix, padded with -inf: one top-k
        q = slot // W
        order = np.argsort(q.astype(np.uint16 if B < 2**16 else np.int64), kind="stable")
        count = np.bincount(q, minlength=B)
        first = np.cumsum(count) - count
        grid = np.full((B, max(int(count.max()), W)), -np.inf, np.float32)
        grid[q[order], np.arange(len(order)) - first[q[order]]] = total[order]
        best, top = torch.topk(torch.from_numpy(grid), W, dim=1)  # (B, W) each, best first
        best, top = best.numpy().reshape(-1).astype(np.float64), top.numpy()
        pick = order[np.minimum(first[:, None] + top, len(order) - 1)].reshape(-1)
        dead = ~np.isfinite(best)
        own = np.repeat(np.arange(B) * W, W)  # a dead slot stays in its own query
        src = np.where(dead, own, slot[pick])
        tok = np.where(dead, self.end, tok[pick])
        return src, tok, lp[pick], best, (c_lo[pick], c_hi[pick])

    def _candidates(self, s: _Slots, rows: np.ndarray, logp: torch.Tensor):
        """What the decoded slots `rows` (log-probs logp (n, V)) may write, and the finished
        beams (END again, at no cost) -> (M,) slot, token, log-prob (float32), and the interval
        (lo, hi) of the span a token extends."""
        V, W, pos = self.V, self.W, np.arange(len(rows))
        d, done = s.depth[rows], s.done[rows]
        parts = []  # (n_c,) row positions, tokens, log-probs, child lo, child hi
        # before a span: the W best start tokens (no others can be among the W kept)
        f = pos[(d == 0) & (done < self.n_spans)]
        if len(f):
            k = min(W, V)
            val, top = torch.topk(logp[torch.from_numpy(f)] + self.start_bias, k, dim=1)
            val, top = val.cpu().numpy().reshape(-1), top.cpu().numpy().reshape(-1)
            ok = np.isfinite(val)
            t = top[ok]
            parts.append((np.repeat(f, k)[ok], t, val[ok], self.index.first[t],
                          self.index.first[t + 1]))  # fmt: skip
        gather = []  # (positions, tokens, child lo, child hi) whose log-probs are read below
        e = pos[(d == 0) & (done >= 1)]  # END once a span is written
        gather.append((e, np.full(len(e), self.end), e, e))
        w = pos[d > 0]  # SEP closes a span: not after punctuation, nor a span written before
        r = rows[w]
        ok = ~self.no_end[s.cur[r, d[w] - 1]]
        ok &= ~(s.sp_tok[r] == s.cur[r][:, None, :]).all(-1).any(-1)
        gather.append((w[ok], np.full(int(ok.sum()), self.sep), w[ok], w[ok]))
        g = pos[(d > 0) & (d < self.max_len)]  # inside a span: the interval's extensions
        if len(g):
            parent, t, c_lo, c_hi = self.index.children(s.lo[rows[g]], s.hi[rows[g]], d[g])
            ok = t < V
            gather.append((g[parent[ok]], t[ok], c_lo[ok], c_hi[ok]))
        at, t, c_lo, c_hi = (np.concatenate(x) for x in zip(*gather, strict=True))
        flat = torch.from_numpy(at * V + t).to(logp.device)
        parts.append((at, t, logp.reshape(-1)[flat].cpu().numpy(), c_lo, c_hi))
        at, tok, lp, c_lo, c_hi = (np.concatenate(x) for x in zip(*parts, strict=True))
        slot = rows[at]
        fin = np.flatnonzero(s.finished & np.isfinite(s.score))  # finished beams stay
        z = np.zeros(len(fin), np.int64)
        return (np.concatenate([slot, fin]), np.concatenate([tok, z + self.end]),
                np.concatenate([lp.astype(np.float32), z.astype(np.float32)]),
                np.concatenate([c_lo, z]), np.concatenate([c_hi, z]))  # fmt: skip
