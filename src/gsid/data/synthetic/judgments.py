"""Graded judgments: the pool of items judged for each intent (relevant items, near misses,
same-category items, lexical look-alikes, random items) and their grades 0..3."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gsid.data.synthetic.arrays import ranges, rank_in_group, sorted_unique
from gsid.data.synthetic.config import SyntheticConfig
from gsid.data.synthetic.items import Items
from gsid.data.synthetic.queries import Intents
from gsid.data.synthetic.world import SLOTS, World


@dataclass
class Pool:
    """Judged (intent, item, grade) triples, sorted by intent then item; ptr is the CSR index."""

    item: np.ndarray  # (P,)
    grade: np.ndarray  # (P,)
    ptr: np.ndarray  # (G + 1,)


def _grades(
    world: World, items: Items, intents: Intents, g: np.ndarray, i: np.ndarray
) -> np.ndarray:
    """3: right type, all constraints met; 2: right type, a constraint differs;
    1: same category, other type; 0: unrelated."""
    same_type = items.type[i] == intents.type[g]
    c = intents.cons[g]
    ok = ((c < 0) | (c == items.values[i])).all(axis=1)
    same_cat = world.type_cat[items.type[i]] == world.type_cat[intents.type[g]]
    return np.where(same_type, np.where(ok, 3, 2), np.where(same_cat, 1, 0)).astype(np.int8)


def judge(
    world: World, items: Items, intents: Intents, cfg: SyntheticConfig, rng: np.random.Generator
) -> Pool:
    """The judged pool of every intent, graded."""
    G = len(intents.type)
    N = len(items.type)
    counts = np.diff(items.type_start)
    gs_parts: list[np.ndarray] = [np.arange(G)]
    is_parts: list[np.ndarray] = [intents.anchor]
    # 1. relevant items: the exact match set of each intent, found by sorting items on the
    # intent's constrained slots (one sort per constraint pattern); broad intents keep the
    # most popular half of `judged_relevant` plus a uniform sample of the rest (pooling)
    R = cfg.judged_relevant
    pattern = ((intents.cons >= 0) * (1 << np.arange(SLOTS))).sum(axis=1)
    by_pop = np.argsort(-items.log_pop, kind="stable")
    for pat in np.unique(pattern).tolist():
        gs = np.flatnonzero(pattern == pat)
        ikey = items.type.astype(np.int64) << 40
        qkey = intents.type[gs].astype(np.int64) << 40
        for s in range(SLOTS):
            if pat >> s & 1:
                ikey |= (items.values[:, s].astype(np.int64) + 1) << (8 * s)
                qkey |= (intents.cons[gs, s].astype(np.int64) + 1) << (8 * s)
        order = by_pop[np.argsort(ikey[by_pop], kind="stable")]  # by key, then popularity
        skey = ikey[order]
        lo = np.searchsorted(skey, qkey, side="left")
        cnt = np.searchsorted(skey, qkey, side="right") - lo
        k_top = np.where(cnt <= R, cnt, R // 2)
        owner, pos = ranges(lo, k_top)
        gs_parts.append(gs[owner])
        is_parts.append(order[pos])
        k_rand = np.where(cnt > R, R - R // 2, 0)
        owner = np.repeat(np.arange(len(gs)), k_rand)
        rest = cnt[owner] - R // 2
        pos = lo[owner] + R // 2 + (rng.random(len(owner)) * rest).astype(np.int64)
        gs_parts.append(gs[owner])
        is_parts.append(order[pos])
    t = intents.type
    # 2. near misses: same type with the fewest broken constraints
    spec = np.flatnonzero((intents.cons >= 0).any(axis=1))
    if cfg.judged_near and len(spec):
        m = 3 * cfg.judged_near
        owner = np.repeat(spec, m)
        i = items.type_start[t[owner]] + (rng.random(len(owner)) * counts[t[owner]]).astype(
            np.int64
        )
        c = intents.cons[owner]
        broken = ((c >= 0) & (c != items.values[i])).sum(axis=1)
        keep = broken > 0
        owner, i, broken = owner[keep], i[keep], broken[keep]
        o = np.lexsort((rng.random(len(owner)), broken, owner))
        owner, i = owner[o], i[o]
        sel = rank_in_group(owner) < cfg.judged_near
        gs_parts.append(owner[sel])
        is_parts.append(i[sel])
    # 3. same category, another type
    if cfg.judged_category:
        cat = world.type_cat[t]
        n_other = (items.cat_start[cat + 1] - items.cat_start[cat]) - counts[t]
        owner = np.repeat(np.flatnonzero(n_other > 0), cfg.judged_category)
        u = (rng.random(len(owner)) * n_other[owner]).astype(np.int64)
        pos = items.cat_start[cat[owner]] + u
        ts = items.type_start[t[owner]]
        pos = np.where(pos >= ts, pos + counts[t[owner]], pos)
        gs_parts.append(owner)
        is_parts.append(pos)
    # 4. lexical look-alikes: items of types whose nouns share a word ("tv" -> "tv mount")
    if cfg.judged_lexical:
        n_conf = np.asarray([len(world.confusable[x]) for x in range(world.n_types)])
        conf_ptr = np.concatenate([[0], np.cumsum(n_conf)])
        conf_flat = np.concatenate([world.confusable[x] for x in range(world.n_types)])
        owner = np.repeat(np.flatnonzero(n_conf[t] > 0), cfg.judged_lexical)
        ct = conf_flat[
            conf_ptr[t[owner]] + (rng.random(len(owner)) * n_conf[t[owner]]).astype(np.int64)
        ]
        ok = counts[ct] > 0
        owner, ct = owner[ok], ct[ok]
        gs_parts.append(owner)
        is_parts.append(
            items.type_start[ct] + (rng.random(len(owner)) * counts[ct]).astype(np.int64)
        )
    # 5. random items
    if cfg.judged_random:
        owner = np.repeat(np.arange(G), cfg.judged_random)
        gs_parts.append(owner)
        is_parts.append(rng.integers(0, N, size=len(owner)))
    key = sorted_unique(np.concatenate(gs_parts).astype(np.int64) * N + np.concatenate(is_parts))
    g, i = key // N, key % N
    ptr = np.searchsorted(g, np.arange(G + 1))
    return Pool(i, _grades(world, items, intents, g, i), ptr)
