"""Diagnostics of semantic IDs: how each level uses its codebook, and the sand-glass test.

    diag = diagnose(ids, categories=ds.category_levels())   # JSON-able dict
    print(format_report(diag))

Per level l (over the items whose ID reaches level l; `n_ending_here` counts IDs of length l+1):
- utilisation = distinct tokens used / codebook size
- entropy H (bits) of the token distribution, normalised entropy H / log2(K), perplexity 2^H
- top-k share = share of items on the k most frequent tokens; Gini of the K token counts
  (unused tokens count as 0, so an under-used codebook scores high too)
- conditional versions, given the parent prefix (codes 0..l-1): H(C_l | prefix) and the top-1
  share inside each parent, both item-weighted (= the usual conditional entropy) and as a plain
  mean over parents; and `top_token_parent_share`, the share of parents under which the level's
  most frequent token appears. A "routing" token is one that is frequent overall *and* shows up
  under most parents: it carries little information about the item beyond its prefix.

Sand-glass score (the phenomenon of RQ semantic IDs in "Generative retrieval for e-commerce
search" / "Breaking the hourglass phenomenon of residual quantization": middle levels pile up on
a few tokens while the first and last levels spread out):

    concentration_l = 1 - normalised entropy_l                 (0 = uniform, 1 = one token)
    score      = mean(concentration over middle levels) - mean(concentration of first, last)
    score_top1 = the same with top-1 share in place of concentration
    score_max  = max(concentration over middle levels) - mean(concentration of first, last)

For a column of adaptive variable-length IDs (see `gsid.ids.sandglass`) the score reads the
column's native tokens only (`levels[j]["native"]`): the original level's remaining tokens over
its own codebook size, so the offset ranges that hold shifted codes and disambiguation codes
neither count as unused codebook nor as concentration. Middle levels are 1..L-2 of the quantisation levels (appended disambiguation levels, recorded in
config["disambiguation_levels"] or as the levels beyond config["levels"], are left out). score > 0
means sand-glass; ~0 means the middle levels are as spread as the ends. It needs >= 3 levels
(None otherwise). `routing_level` is the middle level with the highest concentration: the level
the repairs in `gsid.ids.sandglass` act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gsid.errors import GsidError
from gsid.ids.product_metrics import ami, prefix_groups

SANDGLASS_DEFINITION = (
    "concentration_l = 1 - H_l / log2(K_l) over items with a code at level l; "
    "score = mean(concentration of middle levels 1..L-2) - mean(concentration of levels 0 and "
    "L-1); > 0 means the middle levels concentrate (sand-glass)"
)


# ----------------------------------------------------------------------------- small pieces
def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of a count vector; 0 for an empty one."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return 0.0
    p = c[c > 0] / total
    return float(-(p * np.log2(p)).sum())


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 = all equal, (n-1)/n = all on one entry."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float((2.0 * (i * x).sum()) / (n * total) - (n + 1) / n)


def _normalised(h: float, k: int) -> float:
    # A one-token codebook can only ever hold one token: call it fully concentrated.
    return h / math.log2(k) if k > 1 else 0.0


def marginal_stats(tokens: np.ndarray, codebook_size: int, top_k: Sequence[int]) -> dict[str, Any]:
    """Utilisation, entropy, perplexity, top-k shares, Gini and concentration of a token sample."""
    K = int(codebook_size)
    tok = np.asarray(tokens, dtype=np.int64)
    n = int(tok.size)
    counts = np.bincount(tok, minlength=K)[:K] if n else np.zeros(K, np.int64)
    order = np.sort(counts)[::-1]
    h = entropy_bits(counts)
    out: dict[str, Any] = {
        "codebook_size": K,
        "n_items": n,
        "used": int((counts > 0).sum()),
        "utilisation": float((counts > 0).sum() / K),
        "entropy_bits": h,
        "max_entropy_bits": math.log2(K) if K > 1 else 0.0,
        "normalised_entropy": _normalised(h, K),
        "perplexity": float(2.0**h),
        "top_share": {str(k): (float(order[:k].sum() / n) if n else 0.0) for k in top_k},
        "gini": gini(counts),
        "top_tokens": [int(t) for t in np.argsort(-counts, kind="stable")[:5] if counts[t] > 0],
    }
    out["concentration"] = 1.0 - out["normalised_entropy"]
    return out


def native_limits(ids: Any) -> dict[int, int]:
    """{position: n} for positions of adaptive variable-length IDs whose codes >= n are not the
    position's own tokens (shifted next-level tokens or disambiguation codes)."""
    repair = (getattr(ids, "config", {}) or {}).get("sandglass_repair", {}) or {}
    out: dict[int, int] = {}
    for key in ("token_offsets", "disambiguation_offsets"):
        for j, off in (repair.get(key) or {}).items():
            out[int(j)] = min(int(off), out.get(int(j), int(off)))
    return out


def quantisation_levels(ids: Any) -> list[int]:
    """Levels that come from quantisation, without appended disambiguation levels."""
    L = int(ids.codes.shape[1])
    config = getattr(ids, "config", {}) or {}
    extra = config.get("disambiguation_levels")
    if extra is not None:
        extra = {int(x) for x in extra}
        return [j for j in range(L) if j not in extra]
    n = config.get("levels")
    if isinstance(n, int) and 1 <= n < L:
        return list(range(n))
    return list(range(L))


def level_stats(
    codes: np.ndarray,
    lengths: np.ndarray,
    codebook_size: int,
    level: int,
    top_k: Sequence[int] = (1, 5, 10),
    parents: np.ndarray | None = None,
) -> dict[str, Any]:
    """Marginal and parent-conditional statistics of one level (see the module docstring).

    `parents`: (N,) dense parent-prefix group of each item (prefix_groups(codes, level)); computed
    when None.
    """
    has = lengths > level
    n = int(has.sum())
    K = int(codebook_size)
    tok = codes[has, level].astype(np.int64)
    out: dict[str, Any] = {
        "level": int(level),
        **marginal_stats(tok, K, top_k),
        "n_ending_here": int((lengths == level + 1).sum()),  # IDs of length level + 1
    }
    counts = np.bincount(tok, minlength=K)[:K] if n else np.zeros(K, np.int64)
    # Conditional on the parent prefix. Level 0 has a single parent (the root).
    if level == 0:
        par = np.zeros(n, np.int64)
    else:
        if parents is None:
            parents = prefix_groups(codes, level)
        par = np.asarray(parents)[has].astype(np.int64)
    if n == 0:
        out["conditional"] = {
            "n_parents": 0,
            "entropy_bits": 0.0,
            "normalised_entropy": 0.0,
            "top1_share": 0.0,
            "mean_parent_entropy_bits": 0.0,
            "mean_parent_top1_share": 0.0,
            "mean_children_per_parent": 0.0,
            "top_token_parent_share": 0.0,
        }
        return out
    pair = par * K + tok
    upair, pc = np.unique(pair, return_counts=True)  # counts of (parent, token)
    pp = upair // K
    ut = upair % K
    uparent, pinv, psize = np.unique(pp, return_inverse=True, return_counts=True)
    pinv = pinv.ravel()
    n_par = np.bincount(pinv, weights=pc)  # items per parent
    p = pc / n_par[pinv]
    h_parent = np.bincount(pinv, weights=-p * np.log2(p))  # entropy per parent
    top1_parent = np.zeros(len(uparent))
    np.maximum.at(top1_parent, pinv, pc)
    top1_parent /= n_par
    w = n_par / n
    top_tok = int(np.argmax(counts))
    h_cond = float((w * h_parent).sum())
    out["conditional"] = {
        "n_parents": len(uparent),
        "entropy_bits": h_cond,
        "normalised_entropy": _normalised(h_cond, K),
        "top1_share": float((w * top1_parent).sum()),
        "mean_parent_entropy_bits": float(h_parent.mean()),
        "mean_parent_top1_share": float(top1_parent.mean()),
        "mean_children_per_parent": float(psize.mean()),
        "top_token_parent_share": float(len(np.unique(pp[ut == top_tok])) / len(uparent)),
    }
    return out


def sandglass_score(level_rows: Sequence[dict[str, Any]], levels: Sequence[int]) -> dict[str, Any]:
    """The sand-glass score from per-level stats (see module docstring); None below 3 levels."""
    levels = list(levels)
    res: dict[str, Any] = {
        "definition": SANDGLASS_DEFINITION,
        "levels": levels,
        "middle_levels": levels[1:-1],
        "concentration": [
            float(level_rows[j].get("native", level_rows[j])["concentration"]) for j in levels
        ],
        "score": None,
        "score_top1": None,
        "score_max": None,
        "routing_level": None,
    }
    if len(levels) < 3:
        return res
    rows = {j: level_rows[j].get("native", level_rows[j]) for j in levels}
    conc = {j: float(rows[j]["concentration"]) for j in levels}
    top1 = {j: float(rows[j]["top_share"]["1"]) for j in levels}
    ends = (levels[0], levels[-1])
    mid = levels[1:-1]
    end_c = (conc[ends[0]] + conc[ends[1]]) / 2
    end_t = (top1[ends[0]] + top1[ends[1]]) / 2
    res["score"] = float(np.mean([conc[j] for j in mid]) - end_c)
    res["score_top1"] = float(np.mean([top1[j] for j in mid]) - end_t)
    res["score_max"] = float(max(conc[j] for j in mid) - end_c)
    res["routing_level"] = int(max(mid, key=lambda j: (conc[j], -j)))
    return res


# ----------------------------------------------------------------------------- the report
def diagnose(
    ids: Any,
    categories: list[np.ndarray] | None = None,
    top_k: Sequence[int] = (1, 5, 10),
    category_names: Sequence[str] | None = None,
    category_mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-level codebook statistics, the sand-glass score, collisions and AMI (JSON-able).

    ids: a SemanticIDs. categories: optional list of (N,) label arrays, one per category level
    (e.g. Dataset.category_levels()); category_mask: items that count for AMI (e.g. drop a
    "missing" class). AMI is computed for every prefix length 1..L against every level.
    """
    for k in top_k:
        if int(k) < 1:
            raise GsidError(f"top_k values must be >= 1, got {list(top_k)}")
    top_k = sorted({int(k) for k in top_k} | {1})  # top-1 share feeds the sand-glass score
    codes = np.asarray(ids.codes)
    lengths = np.asarray(ids.lengths)
    sizes = list(ids.codebook_sizes)
    N, L = codes.shape
    groups = [prefix_groups(codes, p) for p in range(1, L + 1)] if N else []
    rows = [
        level_stats(codes, lengths, sizes[j], j, top_k, parents=groups[j - 1] if j else None)
        for j in range(L)
    ]
    # Adaptive variable-length IDs hold two codebooks in a column (native level-j tokens and,
    # offset by K_j, shifted level-(j+1) tokens): add the native tokens' own statistics.
    # (and, after collision repair, disambiguation codes offset into a range of their own).
    for j, off in native_limits(ids).items():
        col = codes[lengths > j, j]
        rows[j]["native"] = marginal_stats(col[col < off], off, top_k)
    qlevels = quantisation_levels(ids)
    if N:
        uniq_counts = np.unique(groups[-1], return_counts=True)[1]
        collision = float((uniq_counts[groups[-1]] > 1).mean())
        n_unique = len(uniq_counts)
    else:
        collision, n_unique = 0.0, 0
    out: dict[str, Any] = {
        "n_items": int(N),
        "n_levels": int(L),
        "codebook_sizes": [int(k) for k in sizes],
        "builder": (getattr(ids, "config", {}) or {}).get("builder"),
        "length_histogram": {
            str(n): int((lengths == n).sum()) for n in range(1, L + 1) if (lengths == n).any()
        },
        "mean_length": float(lengths.mean()) if N else 0.0,
        "collision_rate": collision,
        "n_unique_ids": n_unique,
        "levels": rows,
        "sandglass": sandglass_score(rows, qlevels),
    }
    if categories is not None:
        if isinstance(categories, np.ndarray) and categories.ndim == 1:
            categories = [categories]
        names = (
            list(category_names)
            if category_names
            else [f"level{i + 1}" for i in range(len(categories))]
        )
        if len(names) != len(categories):
            raise GsidError(f"{len(names)} category names for {len(categories)} category levels")
        keep_all = np.ones(N, bool) if category_mask is None else np.asarray(category_mask, bool)
        if keep_all.shape != (N,):
            raise GsidError(f"category_mask must have shape ({N},), got {keep_all.shape}")
        ami_rows = []
        for name, cat in zip(names, categories, strict=True):
            cat = np.asarray(cat, dtype=object)
            if cat.shape != (N,):
                raise GsidError(
                    f"category level {name!r} has {cat.shape[0]} labels for {N} items; give one "
                    f"label per item, in the IDs' item order"
                )
            keep = keep_all & np.array([c is not None and c == c for c in cat], bool)
            ami_rows.append(
                {
                    "category": name,
                    "n_classes": len(set(cat[keep].tolist())),
                    "ami_by_prefix": [ami(cat[keep].astype(str), g[keep]) for g in groups],
                }
            )
        out["ami"] = ami_rows
    return out


def format_report(diag: dict[str, Any]) -> str:
    """Plain-text rendering of `diagnose` output (one table per concern)."""
    lines = [
        f"semantic IDs: {diag['n_items']} items, {diag['n_levels']} levels, codebooks "
        f"{diag['codebook_sizes']}, builder {diag.get('builder')!r}",
        f"unique IDs {diag['n_unique_ids']}, collision rate {diag['collision_rate']:.4f}, "
        f"mean length {diag['mean_length']:.2f}, lengths {diag['length_histogram']}",
        "",
    ]
    ks = list(diag["levels"][0]["top_share"]) if diag["levels"] else []
    head = (
        f"{'lvl':>3} {'items':>7} {'used':>5} {'util':>6} {'H':>6} {'H/Hmax':>6} {'ppl':>7} "
        + " ".join(f"{'top' + k:>6}" for k in ks)
        + f" {'gini':>5} | {'H|par':>6} {'top1|par':>8} {'par':>6} {'topTokPar':>9}"
    )
    lines.append(head)
    for r in diag["levels"]:
        c = r["conditional"]
        lines.append(
            f"{r['level']:>3} {r['n_items']:>7} {r['used']:>5} {r['utilisation']:>6.3f} "
            f"{r['entropy_bits']:>6.2f} {r['normalised_entropy']:>6.3f} {r['perplexity']:>7.1f} "
            + " ".join(f"{r['top_share'][k]:>6.3f}" for k in ks)
            + f" {r['gini']:>5.3f} | {c['entropy_bits']:>6.2f} {c['top1_share']:>8.3f} "
            f"{c['n_parents']:>6} {c['top_token_parent_share']:>9.3f}"
        )
        if "native" in r:
            nv = r["native"]
            lines.append(
                f"    native tokens of level {r['level']} (K={nv['codebook_size']}): items "
                f"{nv['n_items']}, used {nv['used']}, H/Hmax {nv['normalised_entropy']:.3f}, "
                f"top1 {nv['top_share'].get('1', float('nan')):.3f}"
            )
    sg = diag["sandglass"]
    lines.append("")
    if sg["score"] is None:
        lines.append("sand-glass score: n/a (needs >= 3 quantisation levels)")
    else:
        lines.append(
            f"sand-glass score {sg['score']:+.3f} (top-1 {sg['score_top1']:+.3f}, max "
            f"{sg['score_max']:+.3f}); routing level {sg['routing_level']}; concentration "
            + ", ".join(f"{c:.3f}" for c in sg["concentration"])
        )
    for a in diag.get("ami", []):
        lines.append(
            f"AMI vs {a['category']} ({a['n_classes']} classes) by prefix length 1..: "
            + ", ".join(f"{v:.3f}" for v in a["ami_by_prefix"])
        )
    return "\n".join(lines)
