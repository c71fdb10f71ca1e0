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
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel

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
