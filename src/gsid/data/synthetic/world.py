"""The fixed world: the vocabulary (vocabulary.json) compiled into arrays, built once. Departments,
categories, product types with their nouns, attribute definitions with every spelling of every
value, brands and the categories they sell in, look-alike types."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from gsid.data.schema import CATEGORY_SEP
from gsid.data.synthetic.vocabulary import Vocabulary, load_vocabulary

SLOTS = 5  # slot 0 = brand, slots 1..4 = the type's attributes
MAX_ATTRS = SLOTS - 1


@dataclass
class World:
    """The vocabulary compiled into arrays. Seed-independent: every catalogue of every seed
    lives in the same world; only the sampling differs."""

    dept_names: list[str]
    cat_names: list[str]  # "Dept > Category"
    type_paths: list[str]  # "Dept > Category > Type"
    type_cat: np.ndarray  # (T,)
    type_dept: np.ndarray  # (T,)
    type_z: np.ndarray  # (T,) standard-normal draw behind the lognormal type size
    title_nouns: list[list[str]]
    query_nouns: list[list[str]]  # lower case; title nouns first, then query-only synonyms
    features: list[list[str]]
    slot_def: np.ndarray  # (T, 4) attribute definition of each slot, -1 where none
    n_slots: np.ndarray  # (T,)
    def_key: list[str]
    def_off: np.ndarray  # (D + 1,) global value index = def_off[d] + local value
    def_zipf_rank: np.ndarray  # (GV,) 1-based rank of a value within its definition
    value_canon: list[str]  # (GV,) canonical spelling (JSON, descriptions)
    value_title_forms: list[tuple[str, ...]]  # (GV,)
    value_query_forms: list[tuple[str, ...]]  # (GV,)
    brands: list[str]
    brand_rank: np.ndarray  # (B,) 1-based popularity rank within its department
    cat_brands: list[np.ndarray]  # per category: brand ids sold there
    confusable: list[np.ndarray]  # per type: types whose nouns share a word with it

    @property
    def n_types(self) -> int:
        return len(self.type_paths)


def _smart_title(value: str) -> str:
    return " ".join(w if w[:1].isdigit() else w[:1].upper() + w[1:] for w in value.split(" "))


_VALUE_WITH_UNIT = re.compile(r"^([\d.]+)([a-z]+)$")


def _value_forms(
    raw: str, unit: str | None, vocab: Vocabulary
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(canonical, title spellings, query spellings) of one attribute value."""
    if unit is not None:
        m = _VALUE_WITH_UNIT.match(raw)
        if m and m.group(2) in vocab.units:  # a value such as "1tb" carries its own unit
            raw, unit = m.group(1), m.group(2)
        v = raw.replace("_", " ")
        canon, title, query = vocab.units[unit]
        return (
            canon.format(v=v),
            tuple(f.format(v=v) for f in title),
            tuple(f.format(v=v) for f in query),
        )
    if raw in vocab.value_forms:
        title, query = vocab.value_forms[raw]
        return raw.replace("_", " "), title, query
    v = raw.replace("_", " ")
    return v, (_smart_title(v),), (v.lower(),)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@functools.lru_cache(maxsize=1)
def build_world() -> World:
    """The world, compiled on the first call and cached."""
    vocab = load_vocabulary()
    wrng = np.random.default_rng(20240611)  # fixed: the world does not depend on the seed
    dept_names: list[str] = []
    cat_names: list[str] = []
    type_paths, type_cat, type_dept = [], [], []
    title_nouns, query_nouns, features, slot_rows = [], [], [], []
    def_key: list[str] = []
    def_off = [0]
    zipf_rank: list[int] = []
    canon: list[str] = []
    tforms: list[tuple[str, ...]] = []
    qforms: list[tuple[str, ...]] = []
    def_index: dict[tuple[str, str | None, str], int] = {}
    noun_owner: dict[str, str] = {}
    for dept, cats in vocab.taxonomy.items():
        dept_names.append(dept)
        for cat, types in cats.items():
            cat_names.append(f"{dept}{CATEGORY_SEP}{cat}")
            for line in types:
                label, nouns, attrs, feats = (p.strip() for p in line.split("|"))
                path = f"{dept}{CATEGORY_SEP}{cat}{CATEGORY_SEP}{label}"
                tn = [n.strip() for n in nouns.split(",") if not n.strip().startswith("?")]
                qo = [n.strip()[1:].strip() for n in nouns.split(",") if n.strip().startswith("?")]
                for n in tn + qo:
                    owner = noun_owner.setdefault(n.lower(), path)
                    if owner != path:  # an ambiguous noun would make relevance ill-defined
                        raise AssertionError(f"noun {n!r} used by {owner} and {path}")
                type_paths.append(path)
                type_cat.append(len(cat_names) - 1)
                type_dept.append(len(dept_names) - 1)
                title_nouns.append(tn)
                query_nouns.append([n.lower() for n in tn + qo])
                features.append([f.strip() for f in feats.split(",") if f.strip()])
                row = []
                for spec in attrs.split():
                    head, _, vals = spec.partition(":")
                    key, _, unit = head.partition("/")
                    unit = unit or vocab.default_units.get(key)
                    vals = vals or vocab.default_values[key]
                    ident = (key, unit, vals)
                    if ident not in def_index:
                        def_index[ident] = len(def_key)
                        def_key.append(key.replace("_", " "))
                        for r, raw in enumerate(vals.split(","), start=1):
                            c, t, q = _value_forms(raw, unit, vocab)
                            canon.append(c)
                            tforms.append(t)
                            qforms.append(q)
                            zipf_rank.append(r)
                        def_off.append(len(canon))
                    row.append(def_index[ident])
                keys = [def_key[d] for d in row]
                if len(row) > MAX_ATTRS or len(set(keys)) != len(keys):
                    raise AssertionError(f"{path}: at most {MAX_ATTRS} distinct attributes")
                slot_rows.append(row + [-1] * (MAX_ATTRS - len(row)))
    T = len(type_paths)
    type_cat_a = np.asarray(type_cat)
    brands, brand_rank, cat_brand_lists = _brands(vocab, dept_names, cat_names, wrng)
    # look-alike types: nouns share a content word ("tv" / "tv mount", "coffee beans" / "coffee table")
    words = [
        {w for n in qn for w in _words(n) if len(w) > 2 and w not in vocab.generic_words}
        for qn in query_nouns
    ]
    confusable = [
        np.asarray([u for u in range(T) if u != t and words[t] & words[u]], dtype=np.int64)
        for t in range(T)
    ]
    return World(
        dept_names=dept_names,
        cat_names=cat_names,
        type_paths=type_paths,
        type_cat=type_cat_a,
        type_dept=np.asarray(type_dept),
        type_z=wrng.standard_normal(T),
        title_nouns=title_nouns,
        query_nouns=query_nouns,
        features=features,
        slot_def=np.asarray(slot_rows, dtype=np.int64).reshape(T, MAX_ATTRS),
        n_slots=np.asarray([sum(1 for d in r if d >= 0) for r in slot_rows]),
        def_key=def_key,
        def_off=np.asarray(def_off),
        def_zipf_rank=np.asarray(zipf_rank, dtype=np.float64),
        value_canon=canon,
        value_title_forms=tforms,
        value_query_forms=qforms,
        brands=brands,
        brand_rank=np.asarray(brand_rank, dtype=np.float64),
        cat_brands=[np.asarray(lst, dtype=np.int64) for lst in cat_brand_lists],
        confusable=confusable,
    )


def _brands(
    vocab: Vocabulary, dept_names: list[str], cat_names: list[str], wrng: np.random.Generator
) -> tuple[list[str], list[int], list[list[int]]]:
    """(brand names, rank of each within its department, brand ids sold in each category).

    Department brands are sold in a fixed random subset of their department's categories (at
    least 2 per category); store brands everywhere."""
    brands: list[str] = []
    brand_rank: list[int] = []
    cat_brand_lists: list[list[int]] = [[] for _ in cat_names]
    cat_dept = np.asarray([dept_names.index(c.split(CATEGORY_SEP)[0]) for c in cat_names])
    for d, dept in enumerate(dept_names):
        cats = np.flatnonzero(cat_dept == d)
        ids = []
        for r, b in enumerate(vocab.brands[dept], start=1):
            ids.append(len(brands))
            brands.append(b)
            brand_rank.append(r)
        active = wrng.random((len(ids), len(cats))) < 0.6
        for j, c in enumerate(cats):
            if active[:, j].sum() < 2:
                active[wrng.choice(len(ids), 2, replace=False), j] = True
            cat_brand_lists[c].extend(ids[i] for i in np.flatnonzero(active[:, j]))
    for j, b in enumerate(vocab.store_brands):
        bid = len(brands)
        brands.append(b)
        brand_rank.append(6 + 3 * j)  # a store brand sells like a department's 6th..18th brand
        for lst in cat_brand_lists:
            lst.append(bid)
    return brands, brand_rank, cat_brand_lists
