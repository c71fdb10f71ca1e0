"""Sand-glass repairs for residual-quantisation semantic IDs (both from the generative-retrieval
for e-commerce article): drop the routing level, or remove its top-K routing tokens.

    fixed = drop_routing_level(ids)                 # auto: the most concentrated middle level
    fixed = adaptive_variable_length(ids)           # auto level, K by the rule below
    fixed = adaptive_variable_length(ids, level=1, top_k=8)

Both return a new SemanticIDs whose config["sandglass_repair"] records what was done, and both
keep IDs unique: items that end up sharing an ID get one more code (0, 1, 2, ... in item order).
drop_routing_level uses `gsid.ids.collisions.resolve_collisions(..., "append")`;
adaptive_variable_length appends the codes in a fresh range of their position (offset by the
position's codebook size, config["sandglass_repair"]["disambiguation_offsets"]) so that they are
never mistaken for the position's own tokens. Collisions the input already had are resolved too.

**Adaptive variable-length IDs.** Items whose token at the target level l is one of the removed
routing tokens lose that token and their later codes shift up one position: (a, r, c, d) ->
(a, c', d'), one code shorter. We shift rather than end the ID at level l because ending it
would throw away every later level (the item's fine identity) and make most of those items
collide, so the "disambiguation" codes would be arbitrary numbers instead of semantic ones.
A shifted code comes from the next codebook, so to keep each integer with one meaning per
position it is offset by the native codebook size of its new position: at position j >= l,
codes [0, K_j) are native level-j tokens and codes [K_j, K_j + K_{j+1}) are level-(j+1) tokens
of shifted items (config["sandglass_repair"]["token_offsets"]). A shifted ID therefore never
shares a prefix with an unshifted one beyond level l-1, and the original codes can be read
back (subtract the offset, add one to the level).

**Choosing K** (when `top_k` is None). For each token t of level l:
- share(t) = share of the level's items carrying t;
- info(t) = mean over those items of -log2 p(t | parent prefix): how much t tells about the
  item beyond its prefix (1 bit = it splits its parent in two).
A token is a routing token, and is removed, when share(t) >= share_factor / K_l (it is
`share_factor` times more frequent than a uniform token; default 4) AND info(t) <= max_info_bits
(default 1.0: on average it is taken by at least half of its parent's items, so it says little).
Frequent tokens that do carry information (a big but specific cluster) are kept. `top_k=K`
overrides the rule: the K most frequent tokens are removed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from gsid.errors import GsidError
from gsid.ids.collisions import resolve_collisions
from gsid.ids.diagnostics import diagnose
from gsid.ids.product_metrics import prefix_groups
from gsid.ids.semantic_ids import PAD, SemanticIDs

logger = logging.getLogger(__name__)

DEFAULT_SHARE_FACTOR = 4.0
DEFAULT_MAX_INFO_BITS = 1.0


def _auto_level(ids: SemanticIDs) -> tuple[int, dict[str, Any]]:
    diag = diagnose(ids)
    sg = diag["sandglass"]
    if sg["routing_level"] is None:
        raise GsidError(
            f"cannot pick a routing level automatically: the IDs have {len(sg['levels'])} "
            f"quantisation level(s) and the sand-glass needs >= 3; pass level= explicitly"
        )
    return int(sg["routing_level"]), diag


def _check_level(ids: SemanticIDs, level: int, lowest: int = 1) -> int:
    level = int(level)
    if not lowest <= level < ids.n_levels:
        raise GsidError(
            f"level must be in {lowest}..{ids.n_levels - 1} for IDs with {ids.n_levels} levels "
            f"(level 0 cannot be removed: every ID needs a first code), got {level}"
        )
    return level


def _with_levels(config: dict, delta: int) -> None:
    if isinstance(config.get("levels"), int):
        config["levels"] = int(config["levels"]) + delta


def drop_routing_level(ids: SemanticIDs, level: int | None = None) -> SemanticIDs:
    """Remove the dominant routing level, then re-resolve the collisions that appear.

    level: the level to drop (1..L-1); None = the middle level with the highest concentration
    (diagnostics.diagnose(ids)["sandglass"]["routing_level"]).
    """
    diag = None
    if level is None:
        level, diag = _auto_level(ids)
    level = _check_level(ids, level)
    if diag is None:
        diag = diagnose(ids)
    row = diag["levels"][level]
    dropped = ids.drop_level(level)
    _with_levels(dropped.config, -1)
    collided = dropped.collision_rate()
    out = resolve_collisions(dropped, "append")
    out.config["sandglass_repair"] = {
        "method": "drop_routing_level",
        "level": int(level),
        "level_concentration": row["concentration"],
        "level_top1_share": row["top_share"].get("1"),
        "collision_rate_after_drop": collided,
        "collisions": "append (gsid.ids.collisions.resolve_collisions)",
    }
    logger.info(
        "dropped level %d (concentration %.3f); collision rate after the drop %.4f, resolved",
        level,
        row["concentration"],
        collided,
    )
    return out


def token_table(ids: SemanticIDs, level: int) -> dict[str, np.ndarray]:
    """Per-token statistics of one level: count, share, info (bits, see module docstring) and
    parent_share (share of parent prefixes under which the token appears); index = token."""
    codes, lengths = ids.codes, ids.lengths
    K = int(ids.codebook_sizes[level])
    has = lengths > level
    n = int(has.sum())
    tok = codes[has, level].astype(np.int64)
    count = np.bincount(tok, minlength=K)[:K].astype(np.int64)
    par = np.zeros(n, np.int64) if level == 0 else prefix_groups(codes, level)[has].astype(np.int64)
    pair = par * K + tok
    _, pinv, pc = np.unique(pair, return_inverse=True, return_counts=True)
    pinv = pinv.ravel()
    n_par = np.bincount(par)  # items per parent (par is dense over all items)
    p_t_given_parent = pc[pinv] / n_par[par]  # (n,) per item
    info_sum = np.bincount(tok, weights=-np.log2(p_t_given_parent), minlength=K)[:K]
    info = np.where(count > 0, info_sum / np.maximum(count, 1), np.inf)
    n_parents = len(np.unique(par))
    upar_tok = np.unique(pair)
    parent_count = np.bincount(upar_tok % K, minlength=K)[:K]
    return {
        "count": count,
        "share": count / n if n else np.zeros(K),
        "info_bits": info,
        "parent_share": parent_count / max(n_parents, 1),
    }


def routing_tokens(
    ids: SemanticIDs,
    level: int,
    top_k: int | None = None,
    share_factor: float = DEFAULT_SHARE_FACTOR,
    max_info_bits: float = DEFAULT_MAX_INFO_BITS,
) -> np.ndarray:
    """Tokens of `level` to remove, most frequent first (the rule of the module docstring, or
    the `top_k` most frequent used tokens when given)."""
    t = token_table(ids, level)
    by_freq = np.argsort(-t["count"], kind="stable")
    by_freq = by_freq[t["count"][by_freq] > 0]
    if top_k is not None:
        if int(top_k) < 0:
            raise GsidError(f"top_k must be >= 0, got {top_k}")
        return by_freq[: int(top_k)].astype(np.int64)
    if share_factor <= 0 or max_info_bits < 0:
        raise GsidError(
            f"need share_factor > 0 and max_info_bits >= 0, got {share_factor}, {max_info_bits}"
        )
    K = int(ids.codebook_sizes[level])
    sel = (t["share"][by_freq] >= share_factor / K) & (t["info_bits"][by_freq] <= max_info_bits)
    return by_freq[sel].astype(np.int64)


def adaptive_variable_length(
    ids: SemanticIDs,
    level: int | None = None,
    top_k: int | None = None,
    share_factor: float = DEFAULT_SHARE_FACTOR,
    max_info_bits: float = DEFAULT_MAX_INFO_BITS,
) -> SemanticIDs:
    """Remove the routing tokens of a concentrated level: their items get IDs one code shorter.

    level: 1..L-1; None = the most concentrated middle level (as for drop_routing_level).
    top_k: remove exactly the K most frequent tokens; None = the share/info rule (module
    docstring) with `share_factor` and `max_info_bits`.
    """
    if level is None:
        level, _ = _auto_level(ids)
    level = _check_level(ids, level)
    removed = routing_tokens(ids, level, top_k, share_factor, max_info_bits)
    _, L = ids.codes.shape
    sizes = list(ids.codebook_sizes)
    codes = ids.codes.copy()
    lengths = ids.lengths.copy()
    hit = (lengths > level) & np.isin(ids.codes[:, level], removed)
    # Shift the later codes of the hit items up one position, offset into a fresh token range
    # of that position so each integer keeps a single meaning per position.
    new_sizes = list(sizes)
    offsets: dict[str, int] = {}
    for j in range(level, L - 1):
        src = ids.codes[hit, j + 1]
        codes[hit, j] = np.where(src == PAD, PAD, src + sizes[j])
        if (src != PAD).any():
            new_sizes[j] = sizes[j] + sizes[j + 1]
            offsets[str(j)] = int(sizes[j])
    codes[hit, L - 1] = PAD
    lengths[hit] -= 1
    step = {
        "op": "sandglass_adaptive_variable_length",
        "level": int(level),
        "removed_tokens": [int(x) for x in removed],
    }
    shortened = ids.derive(codes, lengths, new_sizes, step)
    collided = shortened.collision_rate()
    codes, lengths, new_sizes, dis_offsets, n_dis = _append_disambiguation(
        codes, lengths, new_sizes
    )
    out = shortened
    if n_dis:
        out = shortened.derive(
            codes, lengths, new_sizes, {"op": "collisions", "strategy": "append-offset"}
        )
    t = token_table(ids, level)
    out.config["sandglass_repair"] = {
        "method": "adaptive_variable_length",
        "level": int(level),
        "rule": (
            {"top_k": int(top_k)}
            if top_k is not None
            else {"share_factor": float(share_factor), "max_info_bits": float(max_info_bits)}
        ),
        "removed_tokens": [int(x) for x in removed],
        "removed_share": float(t["share"][removed].sum()) if len(removed) else 0.0,
        "n_shortened": int(hit.sum()),
        "token_offsets": offsets,
        "collision_rate_after_shortening": collided,
        "n_disambiguated": n_dis,
        "disambiguation_offsets": dis_offsets,
        "collisions": "append-offset (local: disambiguation codes in a fresh range per position)",
    }
    logger.info(
        "level %d: removed %d routing tokens covering %.1f%% of its items; %d IDs shortened",
        level,
        len(removed),
        100 * out.config["sandglass_repair"]["removed_share"],
        int(hit.sum()),
    )
    return out


def _append_disambiguation(
    codes: np.ndarray, lengths: np.ndarray, sizes: list[int]
) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, int], int]:
    """Give items that share a full ID the codes base, base+1, ... right after their ID.

    Unlike gsid.ids.collisions' "append" (which reuses free small codes under the prefix), base
    is the position's current codebook size, so a disambiguation code never looks like a native
    or a shifted token of that position: the per-level statistics stay clean. Hand-written here
    because this offset convention belongs to the adaptive repair.
    Returns codes, lengths, sizes, {position: base} and the number of items that got a code.
    """
    n, L = codes.shape
    if n == 0:
        return codes, lengths, sizes, {}, 0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    colliding = counts[inverse] > 1
    if not colliding.any():
        return codes, lengths, sizes, {}, 0
    # rank of each item inside its group, in item order (stable sort keeps item order)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[inverse[order]]
    codes, lengths, sizes = codes.copy(), lengths.copy(), list(sizes)
    if (colliding & (lengths == L)).any():
        codes = np.concatenate([codes, np.full((n, 1), PAD, codes.dtype)], axis=1)
        sizes.append(0)
    offsets: dict[str, int] = {}
    for j in np.unique(lengths[colliding]).tolist():
        sel = colliding & (lengths == j)
        base = int(sizes[j])
        codes[sel, j] = base + rank[sel]
        sizes[j] = base + int(rank[sel].max()) + 1
        if base > 0:
            offsets[str(j)] = base
    lengths[colliding] += 1
    return codes, lengths, sizes, offsets, int(colliding.sum())
