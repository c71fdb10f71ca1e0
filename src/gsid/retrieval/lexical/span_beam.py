"""Constrained beam search over spans: a model writes up to S title spans separated by SEP, and
every span it writes occurs in the catalogue.

    beams = generate_spans(model, index, queries, beam_width=10, n_spans=3, max_len=4)
    beams[q] -> [Beam(spans=((17, 3), (88,)), span_logp=(-1.2, -0.4),
                   span_interval=((512, 519), (40, 77)), score=-2.1), ...]

Batched over queries x beams (N = B * W rows) with the model's key/value cache (SpanModel.
start / step / reorder as beams move; a query whose W beams have all finished leaves the
batch, SpanModel.keep). Each beam keeps the suffix-array interval (lo, hi) of the span it is
writing and its length; at every step its allowed tokens are:
  * writing a span of length 0 < d < max_len: the interval's next tokens (SpanIndex.
    next_tokens: the distinct tokens that follow the span somewhere) and SEP, which closes the
    span (it occurs, by construction; not after punctuation, and a span the beam already wrote
    may not be closed again);
  * at d == max_len: SEP only;
  * before a span (d == 0): any token that begins a title n-gram and a word (`start_ok`), and
    END once a span is written; after S spans: END only;
  * finished beams: END again at no cost.
The chosen token narrows the interval by one step (SpanIndex.narrow, all beams at once), so no
beam ever re-walks its prefix and no written span can have count 0.
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
    sep, end = model.sep_id, model.end_id
    start_ok = start_tokens(index) if start_ok is None else start_ok
    start_row = np.zeros(V, bool)
    start_row[: len(start_ok)] = start_ok
    no_end = np.zeros(V, bool) if punctuation is None else np.asarray(punctuation, bool)[:V]
    enc, mask = model.encode(list(queries))  # ((B, S, d), (B, S)), (B, S)
    dev = mask.device
    N = B * W
    score = np.full(N, -np.inf)
    score[::W] = 0.0  # one live beam per query at the start
    lo, hi = index.root(N)
    depth = np.zeros(N, np.int64)
    done = np.zeros(N, np.int64)
    finished = np.zeros(N, bool)
    spans: list[list[tuple[int, ...]]] = [[] for _ in range(N)]
    span_lp: list[list[float]] = [[] for _ in range(N)]
    span_iv: list[list[tuple[int, int]]] = [[] for _ in range(N)]
    cur: list[list[int]] = [[] for _ in range(N)]
    cur_lp = np.zeros(N)
    prev = torch.zeros(N, dtype=torch.long, device=dev)  # decoder start (pad)
    state = model.start(enc, mask, beams=W)
    qid = np.arange(B)  # the queries still decoding, in row order
    out: list[list[Beam]] = [[] for _ in range(B)]
    for _ in range(n_spans * (max_len + 1) + 1):
        logp = model.step(state, prev).float()  # (N, V)
        allowed = _allowed(index, lo, hi, depth, done, finished, spans, cur, start_row,
                           no_end, n_spans, max_len, sep, end)  # fmt: skip
        allowed[finished] = False
        # in place: the tokens a beam may write keep their log-probabilities (read below)
        logp.masked_fill_(torch.from_numpy(~allowed).to(dev), -torch.inf)
        logp[torch.from_numpy(finished).to(dev), end] = 0.0  # a finished beam stays as it is
        total = (logp + torch.from_numpy(score).to(dev, torch.float32)[:, None]).view(-1, W * V)
        best, top = torch.topk(total, W, dim=1)  # (B', W) each, best first (B' still live)
        top = top.cpu().numpy()
        src = (np.arange(len(qid))[:, None] * W + top // V).reshape(-1)  # (N,) source beam
        tok = (top % V).reshape(-1)
        new_score = best.cpu().numpy().reshape(-1).astype(np.float64)
        step_lp = np.where(finished[src], 0.0, logp[src, tok].cpu().numpy())
        # move every beam's state to its new row
        lo, hi, depth, done, fin = lo[src], hi[src], depth[src], done[src], finished[src]
        spans = [list(spans[s]) for s in src]
        span_lp = [list(span_lp[s]) for s in src]
        span_iv = [list(span_iv[s]) for s in src]
        cur = [list(cur[s]) for s in src]
        cur_lp = cur_lp[src]
        dead = ~np.isfinite(new_score)
        is_end = (tok == end) | fin | dead
        is_sep = (tok == sep) & ~is_end
        grow = ~is_end & ~is_sep
        for i in np.flatnonzero(is_sep):
            spans[i].append(tuple(cur[i]))
            span_lp[i].append(float(cur_lp[i]))
            span_iv[i].append((int(lo[i]), int(hi[i])))
            cur[i] = []
        done[is_sep] += 1
        cur_lp[is_sep] = 0.0
        r_lo, r_hi = index.root()
        lo[is_sep], hi[is_sep], depth[is_sep] = r_lo[0], r_hi[0], 0
        g = np.flatnonzero(grow)
        if len(g):
            lo[g], hi[g] = index.narrow(lo[g], hi[g], depth[g], tok[g])
            depth[g] += 1
            cur_lp[g] += step_lp[g]
            for i in g:
                cur[i].append(int(tok[i]))
        finished = fin | is_end
        score = new_score
        # a query whose W beams have all finished leaves the batch: its rows are not decoded
        rows = np.arange(len(src))
        over = finished.reshape(-1, W).all(1)
        if over.any():
            for b in np.flatnonzero(over):
                out[qid[b]] = _collect(range(b * W, (b + 1) * W), spans, span_lp, span_iv, score)
            live = np.flatnonzero(~over)
            if len(live) == 0:
                break
            rows = (live[:, None] * W + np.arange(W)).reshape(-1)
            qid = qid[live]
            lo, hi, depth, done, finished, score, cur_lp = (
                a[rows] for a in (lo, hi, depth, done, finished, score, cur_lp)
            )
            spans, span_lp, span_iv, cur = (
                [x[i] for i in rows] for x in (spans, span_lp, span_iv, cur)
            )
            model.keep(state, torch.as_tensor(live, device=dev))
        model.reorder(state, torch.as_tensor(src[rows], device=dev))
        prev = torch.as_tensor(tok[rows], device=dev)
    else:  # the step budget ran out: what is left stops here
        for b in range(len(qid)):
            out[qid[b]] = _collect(range(b * W, (b + 1) * W), spans, span_lp, span_iv, score)
    return out


def _collect(rows, spans, span_lp, span_iv, score) -> list[Beam]:
    """One query's beams that wrote a span, best first."""
    rows = sorted((i for i in rows if np.isfinite(score[i]) and spans[i]), key=lambda i: -score[i])
    return [Beam(tuple(spans[i]), tuple(span_lp[i]), tuple(span_iv[i]), float(score[i]))
            for i in rows]  # fmt: skip


def _allowed(index, lo, hi, depth, done, finished, spans, cur, start_row, no_end, n_spans,
             max_len, sep, end) -> np.ndarray:  # fmt: skip
    """(N, V) bool mask of the tokens each beam may write next."""
    N, V = len(lo), len(start_row)
    allowed = np.zeros((N, V), bool)
    fresh = (depth == 0) & (done < n_spans) & ~finished
    allowed[fresh] = start_row
    allowed[(depth == 0) & (done >= 1), end] = True
    writing = np.flatnonzero((depth > 0) & ~finished)
    for i in writing:
        allowed[i, sep] = not no_end[cur[i][-1]] and tuple(cur[i]) not in spans[i]
    grow = writing[depth[writing] < max_len]
    size = hi[grow] - lo[grow]
    # narrow intervals (most beams after a token or two): the next token of every suffix in
    # all of them at once; wide ones (a frequent first token): one next_tokens call each
    small = grow[size <= 4096]
    if len(small):
        n = hi[small] - lo[small]
        beam = np.repeat(small, n)
        offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        col = index._column(np.repeat(lo[small], n) + offs, np.repeat(depth[small], n))
        ok = col < V
        allowed[beam[ok], col[ok]] = True
    memo: dict[tuple[int, int, int], np.ndarray] = {}  # beams often share an interval
    for i in grow[size > 4096]:
        key = (int(lo[i]), int(hi[i]), int(depth[i]))
        if key not in memo:
            memo[key] = index.next_tokens(*key)[0]
        nxt = memo[key]
        allowed[i, nxt[nxt < V]] = True
    return allowed
