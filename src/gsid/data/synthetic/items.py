"""The catalogue: latent items (type, brand, attribute values, popularity) and what sellers write
about them (titles, attributes JSON, descriptions)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gsid.data.synthetic.arrays import fill, flat, ojoin, pick, zipf_p
from gsid.data.synthetic.config import SyntheticConfig
from gsid.data.synthetic.typos import typo_in_text
from gsid.data.synthetic.vocabulary import Vocabulary, load_vocabulary
from gsid.data.synthetic.world import MAX_ATTRS, SLOTS, World


@dataclass
class Items:
    """Latent truth of the catalogue. Internal item index j is sorted by type, so a type (and a
    category, and a department) is a contiguous range."""

    type: np.ndarray  # (N,)
    values: np.ndarray  # (N, 5) brand id, then the value of each attribute slot (-1: none)
    log_pop: np.ndarray  # (N,)
    type_start: np.ndarray  # (T + 1,)
    cat_start: np.ndarray  # (C + 1,)
    titles: np.ndarray  # (N,) object
    descriptions: np.ndarray  # (N,) object
    attributes: np.ndarray  # (N,) object, JSON text
    cat_brand_p: list[np.ndarray]


def make_items(world: World, cfg: SyntheticConfig, n: int, rng: np.random.Generator) -> Items:
    """Draw n items of the world and write their titles, attributes JSON and descriptions."""
    vocab = load_vocabulary()
    T = world.n_types
    type_p = np.exp(cfg.type_sigma * world.type_z)
    t = np.sort(rng.choice(T, size=n, p=type_p / type_p.sum()))
    type_start = np.searchsorted(t, np.arange(T + 1))
    cat = world.type_cat[t]
    cat_start = np.searchsorted(cat, np.arange(len(world.cat_names) + 1))
    values, cat_brand_p = _draw_values(world, cfg, n, type_start, cat_start, rng)
    b = values[:, 0].astype(np.int64)
    # latent popularity: brand pull + lognormal item effect
    log_pop = -0.35 * np.log(world.brand_rank[b]) + cfg.popularity_sigma * rng.standard_normal(n)

    # ---- every random choice of the sellers, drawn at once
    has_slot = np.arange(MAX_ATTRS)[None, :] < world.n_slots[t][:, None]  # (N, 4)
    gv = np.where(has_slot, world.def_off[np.maximum(world.slot_def[t], 0)] + values[:, 1:], 0)
    n_tforms = np.asarray([len(f) for f in world.value_title_forms])
    form = pick(rng.random((n, MAX_ATTRS)), n_tforms[gv], 0.5)
    in_title = has_slot & (rng.random((n, MAX_ATTRS)) >= cfg.title_attr_omit)
    in_json = has_slot & (rng.random((n, MAX_ATTRS)) >= cfg.json_attr_omit)
    noun_flat, noun_off = flat(world.title_nouns)
    noun = noun_off[t] + pick(rng.random(n), np.diff(noun_off)[t], cfg.title_noun_canonical)
    feat_flat, feat_off = flat(world.features)
    n_feat_t = np.diff(feat_off)[t]
    feats = feat_off[t][:, None] + (rng.random((n, 2)) * n_feat_t[:, None]).astype(np.int64)
    n_feat = np.where(n_feat_t > 0, rng.choice(3, size=n, p=[0.35, 0.45, 0.2]), 0)
    template = rng.choice(6, size=n, p=[0.38, 0.2, 0.12, 0.12, 0.1, 0.08])
    attr_order = rng.integers(0, 3, size=n)
    u_brand = rng.random(n)
    brand_style = np.select(
        [
            u_brand < cfg.brand_omit,
            u_brand < cfg.brand_omit + 0.08,
            u_brand < cfg.brand_omit + 0.11,
        ],
        [-1, 1, 2],
        0,
    )  # -1 omitted, 1 UPPER, 2 lower, 0 as registered
    has_model = rng.random(n) < cfg.model_code_rate
    model_no = rng.integers(100, 10000, size=n)
    u_mkt = rng.random(n)
    mkt = (rng.random(n) * len(vocab.marketing_prefix)).astype(np.int64)
    u_case = rng.random(n)
    stuffed = rng.random(n) < cfg.stuffing_rate
    typo = rng.random(n) < cfg.title_typo_rate
    typo_u = rng.random((n, 3))
    desc_u = rng.random((n, 4))

    # ---- titles
    obj = functools.partial(np.asarray, dtype=object)
    names = obj(world.brands)
    B = np.select(
        [brand_style < 0, brand_style == 1, brand_style == 2],
        [
            obj(""),
            obj([x.upper() for x in world.brands])[b],
            obj([x.lower() for x in world.brands])[b],
        ],
        names[b],
    )
    N = noun_flat[noun]
    f1, f2 = feat_flat[feats[:, 0]], feat_flat[feats[:, 1]]
    F = np.where(
        n_feat == 0, "", np.where((n_feat == 1) | (feats[:, 0] == feats[:, 1]), f1, f1 + " " + f2)
    )
    M = np.where(has_model, obj([x[:2].upper() + "-" for x in world.brands])[b] + model_no.astype(str).astype(object), "")  # fmt: skip
    form_flat, form_off = flat([list(f) for f in world.value_title_forms])
    A = np.where(in_title, form_flat[form_off[gv] + np.minimum(form, n_tforms[gv] - 1)], "")
    # seller's attribute order: as listed, reversed or rotated; then non-empty phrases first
    perm = np.asarray([[0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0]])[attr_order]
    A = np.take_along_axis(A, perm, axis=1)
    A = np.take_along_axis(A, np.argsort(A == "", axis=1, kind="stable"), axis=1)
    title = _template_titles(template, B, M, N, F, A)
    p_pre = cfg.marketing_rate * 0.55
    pre = u_mkt < p_pre
    suf = ~pre & (u_mkt < cfg.marketing_rate)
    title[pre] = obj(vocab.marketing_prefix)[mkt[pre]] + " " + title[pre]
    title[suf] = (
        title[suf] + " " + obj(vocab.marketing_suffix)[mkt[suf] % len(vocab.marketing_suffix)]
    )
    # the rarer noises, one Python pass over the few items they touch
    for i in np.flatnonzero(stuffed).tolist():  # SEO stuffing: synonyms, neighbours' nouns, filler
        tt, tu = int(t[i]), typo_u[i]
        pool, conf = world.query_nouns[tt], world.confusable[tt]
        extra = [pool[int(tu[0] * 977) % len(pool)], pool[int(tu[1] * 983) % len(pool)]]
        if len(conf):
            extra.append(world.query_nouns[conf[int(tu[2] * 991) % len(conf)]][0])
        extra.append(vocab.stuffing_extra[int(tu[0] * 997) % len(vocab.stuffing_extra)])
        title[i] = f"{title[i]} {' '.join(dict.fromkeys(extra))}"
    for i in np.flatnonzero(typo).tolist():
        title[i] = typo_in_text(title[i], *typo_u[i].tolist())
    for i in np.flatnonzero(u_case < cfg.caps_rate).tolist():
        title[i] = title[i].upper()
    for i in np.flatnonzero((u_case >= cfg.caps_rate) & (u_case < cfg.caps_rate + 0.02)).tolist():
        title[i] = title[i].lower()

    # ---- attributes JSON: what the seller filled in (sellers who drop the brand from the
    # title mostly drop it here too)
    brand_json = obj([f'"brand": {_json_str(x)}' for x in world.brands])
    value_json = obj([f"{_json_str(world.def_key[d])}: {_json_str(world.value_canon[g])}"
                      for d in range(len(world.def_key)) for g in range(world.def_off[d], world.def_off[d + 1])])  # fmt: skip
    J = np.where(in_json, value_json[gv], "")
    Jb = np.where((brand_style >= 0) | (u_case > 0.5), brand_json[b], "")
    attributes = "{" + ojoin([Jb, *(J[:, j] for j in range(MAX_ATTRS))], ", ") + "}"

    if cfg.with_descriptions:
        n_low = obj([x.lower() for x in noun_flat])[noun]
        desc = _descriptions(world, vocab, t, names[b], n_low, in_json, gv, desc_u)
    else:
        desc = np.full(n, "", dtype=object)
    return Items(t, values, log_pop, type_start, cat_start, title, desc, attributes, cat_brand_p)


def _draw_values(
    world: World,
    cfg: SyntheticConfig,
    n: int,
    type_start: np.ndarray,
    cat_start: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(N, SLOTS) brand id and attribute value indices of items sorted by type (the ranges
    `type_start` / `cat_start`), and the brand distribution of each category."""
    values = np.full((n, SLOTS), -1, dtype=np.int16)  # brand ids and value indices are < 255
    cat_brand_p = []
    for c, ids in enumerate(world.cat_brands):
        p = zipf_p(world.brand_rank[ids], cfg.brand_zipf)
        cat_brand_p.append(p)
        s, e = cat_start[c], cat_start[c + 1]
        values[s:e, 0] = ids[rng.choice(len(ids), size=e - s, p=p)]
    for tt in range(world.n_types):
        s, e = type_start[tt], type_start[tt + 1]
        for j in range(world.n_slots[tt]):
            d = world.slot_def[tt, j]
            lo, hi = world.def_off[d], world.def_off[d + 1]
            p = zipf_p(world.def_zipf_rank[lo:hi], cfg.value_zipf)
            values[s:e, 1 + j] = rng.choice(hi - lo, size=e - s, p=p)
    return values, cat_brand_p


def _template_titles(
    template: np.ndarray,
    B: np.ndarray,
    M: np.ndarray,
    N: np.ndarray,
    F: np.ndarray,
    A: np.ndarray,
) -> np.ndarray:
    """Titles from brand B, model code M, noun N, features F and attribute phrases A (N, 4)
    laid out by each item's template (0..5)."""
    title = np.empty(len(template), dtype=object)
    for k in range(6):
        ix = np.flatnonzero(template == k)
        b_, m_, n_, f_ = B[ix], M[ix], N[ix], F[ix]
        a = [A[ix, j] for j in range(MAX_ATTRS)]
        if k == 0:  # "Voltara Smart 55 Inch TV, 4K UHD, Black"
            head, rest = ojoin([b_, m_, f_, a[0], n_], " "), ojoin(a[1:], ", ")
            title[ix] = np.where(rest == "", head, head + ", " + rest)
        elif k == 1:  # "Voltara TV Smart, 55 Inch, 4K UHD"
            title[ix] = ojoin([ojoin([b_, n_, f_], " "), *a], ", ")
        elif k == 2:  # "55 Inch 4K UHD Smart TV by Voltara"
            body = ojoin([*a, f_, n_], " ")
            title[ix] = np.where(b_ == "", body, body + " by " + b_)
        elif k == 3:  # "TV 55 Inch 4K UHD Smart Voltara"
            title[ix] = ojoin([n_, *a, f_, b_], " ")
        elif k == 4:  # "Voltara VO-2041 - 55 Inch 4K UHD Smart TV"
            title[ix] = ojoin([ojoin([b_, m_], " "), ojoin([*a, f_, n_], " ")], " - ")
        else:  # "Voltara TV | 55 Inch | 4K UHD | Smart"
            title[ix] = ojoin([ojoin([b_, n_], " "), *a, f_], " | ")
    return title


def _descriptions(
    world: World,
    vocab: Vocabulary,
    t: np.ndarray,
    brand: np.ndarray,
    n_low: np.ndarray,
    in_json: np.ndarray,
    gv: np.ndarray,
    desc_u: np.ndarray,
) -> np.ndarray:
    """Descriptions: opener, the seller's specification list, features, department closer.
    brand: each item's registered brand name; n_low: its title noun in lower case."""
    obj = functools.partial(np.asarray, dtype=object)
    op = (desc_u[:, 1] * len(vocab.desc_openers)).astype(np.int64)
    desc = np.empty(len(t), dtype=object)
    for k, fmt in enumerate(vocab.desc_openers):
        ix = np.flatnonzero(op == k)
        desc[ix] = fill(fmt, {"b": brand[ix], "n": n_low[ix]})
    value_desc = obj([f"{world.def_key[d]}: {world.value_canon[g]}"
                      for d in range(len(world.def_key)) for g in range(world.def_off[d], world.def_off[d + 1])])  # fmt: skip
    spec = ojoin(
        [np.where(in_json[:, j], value_desc[gv[:, j]], "") for j in range(MAX_ATTRS)], "; "
    )
    desc = np.where(spec == "", desc, desc + " Specifications: " + spec + ".")
    sent = obj([f" Features: {', '.join(fl[:c]).lower()}." if fl else "" for fl in world.features for c in (2, 3, 4)])  # fmt: skip
    desc = desc + sent[3 * t + (desc_u[:, 2] * 3).astype(np.int64)]
    closers, close_off = flat(
        [vocab.desc_closers[world.dept_names[world.type_dept[x]]] for x in range(world.n_types)]
    )
    n_close = np.diff(close_off)[t]
    desc = desc + " " + closers[close_off[t] + (desc_u[:, 3] * n_close).astype(np.int64)]
    return np.where(desc_u[:, 0] < 0.1, "", desc)


def _json_str(s: str) -> str:
    # json.dumps for the few characters our vocabulary has (no control characters)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
