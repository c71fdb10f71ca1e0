"""What shoppers want and type: intents (a type plus constraints on brand and attributes) with
their search volumes, and the query strings that spell them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gsid.data.normalize import normalize_text
from gsid.data.synthetic.config import SyntheticConfig
from gsid.data.synthetic.items import Items
from gsid.data.synthetic.typos import typo_in_text
from gsid.data.synthetic.world import MAX_ATTRS, SLOTS, World

logger = logging.getLogger("gsid.data.synthetic")  # the package's logger, as before the split


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith("s"):
        return noun
    if last.endswith(("x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _join(parts: list[str], sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


@dataclass
class Intents:
    """What shoppers want: a type and constraints (-1 = any) on brand and attribute slots."""

    type: np.ndarray  # (G,)
    cons: np.ndarray  # (G, 5)
    anchor: np.ndarray  # (G,) an item that satisfies the intent
    searches: np.ndarray  # (G,) searches of the intent over all its spellings


def _intent_keys(types: np.ndarray, cons: np.ndarray) -> np.ndarray:
    # 8 bits per slot (values and brand ids < 255), type above: one int64 per intent
    key = types.astype(np.int64) << 40
    for s in range(SLOTS):
        key |= (cons[:, s].astype(np.int64) + 1) << (8 * s)
    return key


def make_intents(
    world: World, items: Items, cfg: SyntheticConfig, n_target: int, rng: np.random.Generator
) -> Intents:
    """About n_target distinct intents (generic ones first, then specific ones anchored on
    items), each with its number of searches."""
    n = len(items.type)
    counts = np.diff(items.type_start)
    present = np.flatnonzero(counts)
    # generic intents ("tv", "drill"): every type that has items, anchored on its top item
    g_type = present
    g_anchor = np.asarray([items.type_start[t] + int(np.argmax(items.log_pop[items.type_start[t]:items.type_start[t + 1]])) for t in present])  # fmt: skip
    types, cons, anchors = [g_type], [np.full((len(present), SLOTS), -1)], [g_anchor]
    seen = set(_intent_keys(g_type, cons[0]).tolist())
    have = len(present)
    # specific intents: constraints copied from an anchor item, so each has a relevant item
    p_anchor = np.exp(0.5 * (items.log_pop - items.log_pop.max()))
    p_anchor /= p_anchor.sum()
    n_valid = 1 + world.n_slots[items.type]  # brand + attribute slots
    grow = 1.5
    for _ in range(40):  # rounds until enough distinct intents, or the catalogue runs dry
        if have >= n_target:
            break
        m = int((n_target - have) * grow) + 64
        a = rng.choice(n, size=m, p=p_anchor)
        k = np.minimum(rng.choice([1, 2, 3, 4], size=m, p=[0.35, 0.3, 0.22, 0.13]), n_valid[a])
        score = rng.random((m, SLOTS))
        score[:, 0] -= 0.3  # shoppers name the brand more often than any one attribute
        score[np.arange(SLOTS)[None, :] >= n_valid[a][:, None]] = np.inf
        rank = np.argsort(np.argsort(score, axis=1), axis=1)
        c = np.where(rank < k[:, None], items.values[a], -1)
        keys = _intent_keys(items.type[a], c)
        _, first = np.unique(keys, return_index=True)
        first = np.sort(first)
        new = [i for i in first.tolist() if keys[i] not in seen]
        new = new[: n_target - have]
        seen.update(keys[new].tolist())
        types.append(items.type[a][new])
        cons.append(c[new])
        anchors.append(a[new])
        have += len(new)
        if len(new) < 0.002 * m:  # the catalogue is running dry
            break
        grow = min(grow * 1.5, 20.0)
    t = np.concatenate(types)
    c = np.concatenate(cons)
    anchor = np.concatenate(anchors)
    # appeal of an intent: big types, popular brands and common values, broad over specific
    type_share = counts[t] / n
    share = type_share**0.7
    brand_ok = c[:, 0] >= 0
    bshare = np.ones(len(t))
    if brand_ok.any():
        rank_b = world.brand_rank[np.maximum(c[:, 0], 0)]
        bshare = np.where(brand_ok, np.sqrt(rank_b**-cfg.brand_zipf), 1.0)
    vshare = np.ones(len(t))
    for j in range(MAX_ATTRS):
        on = c[:, 1 + j] >= 0
        gv = world.def_off[np.maximum(world.slot_def[t, j], 0)] + np.maximum(c[:, 1 + j], 0)
        vshare *= np.where(on, np.sqrt(world.def_zipf_rank[gv] ** -cfg.value_zipf), 1.0)
    k_cons = (c >= 0).sum(axis=1)
    appeal = share * bshare * vshare * 0.35**k_cons * np.exp(0.8 * rng.standard_normal(len(t)))
    order = np.argsort(-appeal, kind="stable")
    rank = np.empty(len(t), dtype=np.int64)
    rank[order] = np.arange(1, len(t) + 1)
    lam = rank.astype(np.float64) ** -cfg.query_zipf
    lam *= cfg.searches_per_query * len(t) / lam.sum()
    searches = np.maximum(1, rng.poisson(lam))
    return Intents(t, c, anchor, searches)


@dataclass
class Queries:
    """The distinct query strings, the intent each spells and its searches."""

    text: list[str]
    intent: np.ndarray  # (Q,)
    searches: np.ndarray  # (Q,)


def make_queries(
    world: World, intents: Intents, cfg: SyntheticConfig, n_target: int, rng: np.random.Generator
) -> Queries:
    """Type each intent as one or more strings, intents in turn (generic ones first), until
    n_target distinct strings exist."""
    G = len(intents.type)
    f = intents.searches
    n_var = 1 + np.minimum(6, rng.poisson(0.2 + 0.4 * np.log10(1 + f)))
    U = rng.random((int(n_var.sum()), 17)).tolist()  # one row of uniforms per spelling
    vstart = np.concatenate([[0], np.cumsum(n_var)]).tolist()
    n_generic = int(((intents.cons >= 0).sum(axis=1) == 0).sum())
    order = np.concatenate([np.arange(n_generic), n_generic + rng.permutation(G - n_generic)])
    share_u = rng.random((G, 7))
    by_norm: dict[str, int] = {}
    texts: list[str] = []
    q_intent: list[int] = []
    q_searches: list[int] = []
    for g in order.tolist():
        if len(texts) >= n_target:
            break
        t = int(intents.type[g])
        c = intents.cons[g].tolist()
        nv = int(n_var[g])
        # split the intent's searches: the main spelling gets one search, then shares 1, .35/j
        w = np.asarray([1.0] + [0.35 / j for j in range(1, nv)])
        split = np.floor(w / w.sum() * (int(f[g]) - 1) + share_u[g, :nv]).astype(int)
        split[0] += 1
        strings: dict[str, int] = {}
        for j in range(nv):
            if split[j] <= 0:
                continue
            text = _spell(world, cfg, t, c, U[vstart[g] + j], main=j == 0)
            strings[text] = strings.get(text, 0) + int(split[j])
        for text, s in strings.items():
            if len(texts) >= n_target:
                break
            key = normalize_text(text)
            if key in by_norm:  # another intent typed the same string first: it keeps it
                q_searches[by_norm[key]] += s
                continue
            by_norm[key] = len(texts)
            texts.append(text)
            q_intent.append(g)
            q_searches.append(s)
    if len(texts) < n_target:
        logger.warning(
            "synthetic: asked for %d queries but the catalogue supports only %d distinct ones; "
            "use more items or fewer queries",
            n_target,
            len(texts),
        )
    return Queries(
        texts, np.asarray(q_intent, dtype=np.int64), np.asarray(q_searches, dtype=np.float64)
    )


def _spell(
    world: World, cfg: SyntheticConfig, t: int, c: list[int], u: list[float], main: bool
) -> str:
    """One spelling of the intent (type t, constraints c: brand, then the value of each slot)
    from its 17 uniforms u; `main`: the intent's main spelling (its own typo rate)."""
    nouns = world.query_nouns[t]
    noun = (
        nouns[0]
        if u[0] < cfg.query_noun_canonical or len(nouns) == 1
        else nouns[1 + int(u[1] * (len(nouns) - 1))]
    )
    if u[2] < 0.2:
        noun = _plural(noun)
    brand = world.brands[c[0]].lower() if c[0] >= 0 else ""
    attrs = []
    for s in range(1, SLOTS):
        if c[s] >= 0:
            forms = world.value_query_forms[world.def_off[world.slot_def[t, s - 1]] + c[s]]
            k = 0 if u[3 + s] < 0.6 or len(forms) == 1 else 1 + int(u[11 + s] * (len(forms) - 1))
            attrs.append(forms[k])
    if u[3] < 0.5:
        attrs.reverse()
    p = u[8]
    if p < 0.55:
        parts = [brand, *attrs, noun]
    elif p < 0.8:
        parts = [brand, noun, *attrs]
    elif p < 0.93:
        parts = [*attrs, noun, brand]
    else:
        parts = [noun, *attrs, brand]
    text = _join(parts)
    if u[9] < (cfg.query_typo_rate if main else cfg.variant_typo_rate):
        text = typo_in_text(text, u[10], u[11], u[16])
    return text
