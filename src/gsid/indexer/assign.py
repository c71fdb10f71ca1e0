"""Codes and representations from a trained GSID model, and the evaluation helpers.

    codes, reps = encode(model, texts)                  # (N, L) int32, (N, L, H) decoder states
    codes = assign(model, ["cordless drill"])           # new items or queries -> codes
    ids = to_semantic_ids(item_ids, codes, config)      # the shared SemanticIDs artifact
    report = evaluate_gsid(model, dataset, "dev")       # q2i R@1/10/100, MRR@100, l1/l2 accuracy

Representations for retrieval: "concat" (unit d_0..d_{L-1} concatenated), "last" (d_{L-1}) or
"first" (d_0, the code-independent state). Queries are decoded greedily like items, so a query
and an item that share their first codes share the context of the later states.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gsid._progress import progress
from gsid.errors import GsidError
from gsid.indexer.config import GSIDConfig
from gsid.indexer.model import GSIDModel

logger = logging.getLogger(__name__)

REPRESENTATIONS = ("concat", "last", "first")


@torch.no_grad()
def encode(
    model: GSIDModel,
    texts: Sequence[str],
    features: np.ndarray | torch.Tensor | None = None,
    batch_size: int | None = None,
    show_progress: bool | None = None,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy codes (N, L) int32 and decoder states (N, L, H) float32 of `texts` (or of
    precomputed pooled `features` (N, H) in the cached-feature mode). With `codes` (N, L), the
    states are teacher-forced on those codes instead (e.g. the frozen item codes of training)
    and the codes are returned as given."""
    was = model.training
    model.eval()
    bs = batch_size or model.config.encode_batch_size
    N = len(features) if features is not None else len(texts)
    L, H = model.config.n_levels, model.hidden_size
    given = codes
    codes = np.zeros((N, L), np.int32) if given is None else np.asarray(given, np.int32)[:, :L]
    reps = np.zeros((N, L, H), np.float32)
    for s in progress(range(0, N, bs), show_progress, desc="GSID encode"):
        e = min(N, s + bs)
        if features is not None:
            mem, mask = model.memory_from_features(torch.as_tensor(np.asarray(features[s:e])))
        else:
            mem, mask = model.encode_texts(list(texts[s:e]))
        if given is None:
            c, d = model.generate(mem, mask)
            codes[s:e] = c.cpu().numpy()
        else:
            prefix = torch.as_tensor(codes[s:e, : L - 1], dtype=torch.long, device=mem.device)
            d = model.decode(mem, mask, prefix)  # (b, L, H)
        reps[s:e] = d.float().cpu().numpy()
    model.train(was)
    return codes, reps


def assign(model: GSIDModel, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
    """Codes (N, L) int32 for new items or for queries."""
    return encode(model, list(texts), show_progress=show_progress)[0]


def representation(reps: np.ndarray, kind: str = "concat") -> np.ndarray:
    """(N, L, H) decoder states -> (N, D) unit vectors for cosine retrieval."""
    if kind not in REPRESENTATIONS:
        raise GsidError(f"representation must be one of {list(REPRESENTATIONS)}, got {kind!r}")
    x = torch.as_tensor(reps)
    x = F.normalize(x, dim=-1)
    if kind == "last":
        out = x[:, -1]
    elif kind == "first":
        out = x[:, 0]
    else:
        out = F.normalize(x.reshape(len(x), -1), dim=-1)
    return np.ascontiguousarray(out.numpy(), dtype=np.float32)


def to_semantic_ids(
    item_ids: np.ndarray,
    codes: np.ndarray,
    config: GSIDConfig,
    collisions: str = "append",
    provenance: dict | None = None,
):
    """Wrap codes (N, L) in the shared SemanticIDs artifact, resolving collisions."""
    from gsid.ids.semantic_ids import SemanticIDs

    cfg = config.to_dict()
    ids = SemanticIDs.from_codes(
        item_ids,
        np.asarray(codes, np.int32),
        codebook_sizes=[config.codebook_size] * codes.shape[1],
        config={"builder": "gsid", **cfg},
        provenance=dict(provenance or {}),
    )
    if collisions != "none":
        from gsid.ids.collisions import resolve_collisions

        ids = resolve_collisions(ids, collisions)
    return ids


def top_k(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k (faiss), rows of `items` and scores (Q, k)."""
    import faiss

    k = min(k, len(items))
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return rows, scores


def pad_ranking(ranked: np.ndarray, k: int) -> np.ndarray:
    """Pad (Q, k') item ids to (Q, k) with None (a catalogue smaller than k)."""
    if ranked.shape[1] >= k:
        return ranked
    out = np.full((len(ranked), k), None, dtype=object)
    out[:, : ranked.shape[1]] = ranked
    return out


def code_accuracy(
    query_codes: np.ndarray,
    item_codes: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    levels: Sequence[int] = (1, 2),
) -> dict[str, float]:
    """Share of (query row, relevant item row) pairs whose first l codes agree, per l."""
    if not len(pairs):
        return {f"l{lv}": float("nan") for lv in levels}
    q = np.asarray([p[0] for p in pairs])
    i = np.asarray([p[1] for p in pairs])
    return {
        f"l{lv}": float((query_codes[q, :lv] == item_codes[i, :lv]).all(1).mean()) for lv in levels
    }


def ami_with_categories(
    codes: np.ndarray, dataset, prefix_len: int | None = None
) -> dict[str, float]:
    """AMI between the items' code prefixes and each category level (level 1 ... deepest)."""
    from sklearn.metrics import adjusted_mutual_info_score

    levels = dataset.category_levels()
    if not levels:
        return {}
    out = {}
    n = prefix_len or codes.shape[1]
    for lv in sorted({0, len(levels) - 1}):
        for pl in range(1, n + 1):
            _, lab = np.unique(codes[:, :pl], axis=0, return_inverse=True)
            out[f"cat{lv + 1}_vs_codes{pl}"] = float(
                adjusted_mutual_info_score(levels[lv], lab.ravel())
            )
    return out


def evaluate_gsid(
    model: GSIDModel,
    dataset,
    split: str = "dev",
    ks: Sequence[int] = (1, 10, 100),
    rep: str = "concat",
    item_codes: np.ndarray | None = None,
    item_features: np.ndarray | None = None,
    query_features: np.ndarray | None = None,
    show_progress: bool | None = None,
    other_reps: Sequence[str] = (),
) -> dict:
    """q2i Recall@k / MRR (cosine of decoder representations), l1/l2 code accuracy of the
    (query, relevant item) pairs of `split`, i2i Recall@k (items relevant to a common query).
    `item_codes` (N, L): the items' codes, e.g. `model.item_codes_` (the codes frozen step by
    step in training, which the SemanticIDs artifact holds); None decodes items greedily."""

    texts = dataset.item_texts()
    icodes, ireps = encode(
        model, texts, item_features, show_progress=show_progress, codes=item_codes
    )
    qs = dataset.split_queries(split)
    expected = dataset.expected(split)
    qs = qs[qs["query_id"].isin(expected)]
    qtexts = qs["query"].tolist()
    qids = qs["query_id"].tolist()
    qf = None if query_features is None else query_features
    qcodes, qreps = encode(model, qtexts, qf, show_progress=show_progress)
    X, Q = representation(ireps, rep), representation(qreps, rep)
    item_ids = dataset.item_ids
    report = {"q2i": q2i_eval(Q, X, dataset, qids, split, ks)}
    row_of = {iid: n for n, iid in enumerate(item_ids)}
    pairs = [(a, row_of[i]) for a, q in enumerate(qids) for i in expected[q]]
    for other in other_reps:  # the same decoding, other read-outs of the states
        report[f"q2i_{other}"] = q2i_eval(
            representation(qreps, other), representation(ireps, other), dataset, qids, split, ks
        )
    report["code_accuracy"] = code_accuracy(qcodes, icodes, pairs)
    report["i2i"] = i2i_eval(X, item_ids, expected, ks)
    report["n_queries"] = len(qids)
    report["representation"] = rep
    return report


def q2i_eval(
    Q: np.ndarray,
    X: np.ndarray,
    dataset,
    query_ids: Sequence[str],
    split: str = "dev",
    ks: Sequence[int] = (1, 10, 100),
) -> dict:
    """Recall@k / MRR (overall and per bucket) of exact inner-product retrieval: query vectors
    Q (Q, D) in the order of `query_ids`, item vectors X (N, D) in catalogue order."""
    from gsid.eval.metrics import evaluate

    kmax = max(ks)
    rows, _ = top_k(Q, X, kmax)
    ranked = pad_ranking(dataset.item_ids[rows], kmax)
    return evaluate(ranked, list(query_ids), dataset.expected(split), dataset.buckets(), ks)


def i2i_eval(
    X: np.ndarray,
    item_ids: np.ndarray,
    expected: dict,
    ks: Sequence[int],
    max_queries: int = 2000,
    seed: int = 0,
) -> dict:
    """Item -> item: an item's expected neighbours are the other items relevant to a query it
    is relevant to (itself excluded from the ranking)."""
    from gsid.eval.metrics import evaluate

    row_of = {iid: n for n, iid in enumerate(item_ids)}
    neigh: dict[str, set[str]] = {}
    for items in expected.values():
        for a in items:
            others = set(items) - {a}
            if others:
                neigh.setdefault(a, set()).update(others)
    if not neigh:
        return {}
    anchors = sorted(neigh)
    if len(anchors) > max_queries:
        anchors = list(np.random.default_rng(seed).choice(anchors, max_queries, replace=False))
    A = X[[row_of[a] for a in anchors]]
    rows, _ = top_k(A, X, max(ks) + 1)
    ranked = pad_ranking(item_ids[rows], max(ks) + 1)
    out = np.empty((len(anchors), max(ks)), dtype=object)
    for r, a in enumerate(anchors):
        row = [x for x in ranked[r] if x != a][: max(ks)]
        out[r] = row + [None] * (max(ks) - len(row))
    return evaluate(out, anchors, {a: neigh[a] for a in anchors}, None, ks)["overall"]
