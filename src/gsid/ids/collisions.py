"""Collisions: items that end up with the same full semantic ID, and how to make IDs unique.

    collision_stats(ids)                       # rate, n_unique, largest group, ...
    resolve_collisions(ids, "append")          # colliders get 0, 1, 2, ... one level deeper
    resolve_collisions(ids, "reassign", candidates=cand, distances=dist)
                                               # colliders move to their next-best last code
    resolve_collisions(ids, "none")            # keep them (stats are still recorded)

"append" (TIGER-style): within a group of items sharing a full ID, the items get 0, 1, 2, ... in
item order at the next position. For fixed-length IDs that is a new level whose codebook size is
the largest group; unique items keep their shorter ID, so the result stays prefix-free.
`append_to="all"` gives every full-length item the extra code (0 when it is unique) for
fixed-length IDs.

"reassign": builders return ranked candidate codes for the last level (nearest centroids first).
In each group the item closest to its centroid keeps its code; the others take their best
candidate that makes a free ID. Items without a free candidate fall back to "append".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from gsid.errors import GsidError
from gsid.ids.semantic_ids import PAD, SemanticIDs

logger = logging.getLogger(__name__)

STRATEGIES = ("append", "reassign", "none")


def collision_stats(ids: SemanticIDs) -> dict:
    """Rate (share of items whose full ID is shared), unique IDs, colliding groups, largest group."""
    inverse, counts = ids.groups()
    colliding = counts[inverse] > 1 if ids.n_items else np.zeros(0, bool)
    return {
        "n_items": ids.n_items,
        "n_unique_ids": len(counts),
        "collision_rate": float(colliding.mean()) if ids.n_items else 0.0,
        "n_colliding_items": int(colliding.sum()),
        "n_colliding_groups": int((counts > 1).sum()),
        "max_group_size": int(counts.max()) if len(counts) else 0,
    }


def resolve_collisions(
    ids: SemanticIDs,
    strategy: str = "append",
    candidates: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    append_to: str = "colliding",
) -> SemanticIDs:
    """Return a new artifact whose IDs are unique (unless strategy="none").

    candidates: (N, C) int, ranked alternative codes for the last level of each item (-1 = none);
        needed by "reassign". distances: (N, C) float, the matching distances (optional; used to
        pick which item of a group keeps its code: the one nearest its centroid).
    The statistics before and after go to provenance["collisions"].
    """
    if strategy not in STRATEGIES:
        raise GsidError(f"unknown collision strategy {strategy!r}; use one of {list(STRATEGIES)}")
    if append_to not in ("colliding", "all"):
        raise GsidError(f"append_to must be 'colliding' or 'all', got {append_to!r}")
    before = collision_stats(ids)
    record: dict = {"strategy": strategy, "before": before}
    out = ids
    if strategy == "reassign":
        if candidates is None:
            raise GsidError(
                "collisions='reassign' needs ranked candidates for the last level, and this "
                "builder gave none; use collisions='append' or a builder that returns them "
                "(rq, rqvae, hkmeans, random)"
            )
        out, n_moved = _reassign(out, candidates, distances)
        record["n_reassigned"] = n_moved
    if strategy in ("append", "reassign"):
        mid = collision_stats(out)
        if mid["n_colliding_items"] or (strategy == "append" and append_to == "all"):
            out, n_app = _append(out, append_to if strategy == "append" else "colliding")
            record["n_appended"] = n_app
        else:
            record["n_appended"] = 0
    record["after"] = collision_stats(out)
    if strategy != "none" and record["after"]["n_colliding_items"]:
        # cannot happen by construction; fail loudly rather than hand out ambiguous IDs
        raise GsidError(f"collision resolution left collisions: {record['after']}")
    prov = {"collisions": record}
    if out is ids:
        out = ids.derive(
            ids.codes, ids.lengths, ids.codebook_sizes, {"op": "collisions", "strategy": strategy}
        )
    out.provenance.update(prov)
    out.config["collisions"] = strategy
    logger.info(
        "collisions (%s): rate %.4f -> %.4f",
        strategy,
        before["collision_rate"],
        record["after"]["collision_rate"],
    )
    return out


def _append(ids: SemanticIDs, append_to: str) -> tuple[SemanticIDs, int]:
    """Give colliding items 0, 1, 2, ... at the position after their ID."""
    n, L = ids.codes.shape
    inverse, counts = ids.groups()
    colliding = counts[inverse] > 1
    full = ids.lengths == L
    need_new_level = bool((colliding & full).any()) or (append_to == "all" and bool(full.any()))
    codes = ids.codes
    sizes = list(ids.codebook_sizes)
    if need_new_level:
        codes = np.concatenate([codes, np.full((n, 1), PAD, np.int32)], axis=1)
        sizes.append(1)
    lengths = ids.lengths.copy()
    codes = codes.copy()

    # rank of each item inside its group, in item order (stable sort keeps item order)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[inverse[order]]

    targets = colliding | (full if append_to == "all" else np.zeros(n, bool))
    n_appended = int(targets.sum())
    at_end = np.flatnonzero(targets & full)
    if len(at_end):
        codes[at_end, L] = rank[at_end]
        lengths[at_end] = L + 1
    if need_new_level:
        sizes[L] = max(1, int(rank[targets & full].max()) + 1) if (targets & full).any() else 1

    # shorter colliding IDs: extend in place with codes the subtree does not use yet, so the
    # new IDs cannot meet an existing longer ID that shares the prefix
    short = colliding & ~full
    if short.any():
        for g in np.unique(inverse[short]):
            members = order[starts[g] : starts[g] + counts[g]]
            ell = int(ids.lengths[members[0]])
            prefix = ids.codes[members[0], :ell]
            lo, hi = ids.prefix_range(prefix)
            sub = ids.order_[lo:hi]
            used = set(ids.codes[sub, ell].tolist()) - {PAD}
            free = (c for c in range(10**9) if c not in used)
            for i in members:
                c = next(free)
                codes[i, ell] = c
                lengths[i] = ell + 1
                sizes[ell] = max(sizes[ell], c + 1)
    step = {"op": "collisions", "strategy": "append", "append_to": append_to}
    return ids.derive(codes, lengths, sizes, step), n_appended


def _reassign(
    ids: SemanticIDs, candidates: np.ndarray, distances: np.ndarray | None
) -> tuple[SemanticIDs, int]:
    """Move colliding full-length items to their next-best last-level code with a free ID."""
    n, L = ids.codes.shape
    candidates, distances = _check_candidates(candidates, distances, n)
    inverse, counts = ids.groups()
    colliding = (counts[inverse] > 1) & (ids.lengths == L)
    if not colliding.any():
        return ids, 0
    codes = ids.codes.copy()
    last = L - 1
    k_last = ids.codebook_sizes[last]
    rows = ids.codes.tolist()  # Python lists: this loop is per item, numpy scalars are slow
    cand = candidates.tolist()
    taken = {tuple(r) for r in rows}
    # distinct last-level codes in use under each prefix: a full subtree is skipped at once
    used_under: dict[tuple, int] = {}
    for key in taken:
        if key[last] != PAD:
            used_under[key[:last]] = used_under.get(key[:last], 0) + 1

    # cost of staying = distance to the current code (its entry among the candidates)
    def stay_cost(i: int) -> float:
        if distances is None:
            return 0.0
        hit = np.flatnonzero(candidates[i] == rows[i][last])
        return float(distances[i, hit[0]]) if len(hit) else float("inf")

    order = np.argsort(inverse, kind="stable")  # members of group g: a slice, in item order
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_moved = 0
    for g in np.unique(inverse[colliding]).tolist():
        members = order[starts[g] : starts[g] + counts[g]].tolist()
        prefix = tuple(rows[members[0]][:last])
        keep = min(members, key=lambda i: (stay_cost(i), i))
        for i in members:
            if used_under.get(prefix, 0) >= k_last:
                break  # every last-level code under this prefix is taken
            if i == keep:
                continue
            c = _free_candidate(cand[i], prefix, rows[i][last], k_last, taken)
            if c is not None:
                taken.add((*prefix, c))
                used_under[prefix] = used_under.get(prefix, 0) + 1
                codes[i, last] = c
                n_moved += 1
    step = {"op": "collisions", "strategy": "reassign", "n_reassigned": n_moved}
    return ids.derive(codes, ids.lengths, ids.codebook_sizes, step), n_moved


def _check_candidates(
    candidates: np.ndarray, distances: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """candidates as (n, C) (a 1-D array: one candidate each), distances as float64 (n, C)."""
    candidates = np.asarray(candidates)
    if candidates.ndim == 1:
        candidates = candidates[:, None]
    if candidates.shape[0] != n:
        raise GsidError(f"candidates has {candidates.shape[0]} rows for {n} items")
    if distances is not None:
        distances = np.asarray(distances, dtype=np.float64)
        if distances.shape != candidates.shape:
            raise GsidError(
                f"distances shape {distances.shape} must match candidates {candidates.shape}"
            )
    return candidates, distances


def _free_candidate(
    cand: list[int], prefix: tuple, current: int, k_last: int, taken: set[tuple]
) -> int | None:
    """The first valid last-level code in `cand`, other than `current`, whose ID under `prefix`
    is not taken; None when there is none."""
    for c in cand:
        if 0 <= c < k_last and c != current and (*prefix, c) not in taken:
            return c
    return None


def ranked_candidates(dist: np.ndarray, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) distances -> the n_candidates nearest codes and their distances, nearest first."""
    k = min(n_candidates, dist.shape[1])
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return idx.astype(np.int32), np.take_along_axis(dist, idx, axis=1)


__all__: Sequence[str] = [
    "STRATEGIES",
    "collision_stats",
    "ranked_candidates",
    "resolve_collisions",
]
