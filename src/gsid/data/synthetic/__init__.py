"""A seeded synthetic marketplace: catalogue, shopper queries, a click log and graded judgments.

    from gsid.data.synthetic import make_marketplace
    ds = make_marketplace(n_items=5000, seed=0)      # a gsid Dataset named "synthetic-5000"

Every record is drawn from a known generative model (specified in full in docs/synthetic.md),
so relevance is defined exactly and every demo number has a ground truth. The model, in one
breath:

- a fixed "world": 8 departments > 35 categories > 180 product types, each type with its own
  nouns (title synonyms and query-only synonyms), up to 4 typed attributes (colour, size, wattage,
  pack count, ...) and feature words; 115 fictional brands (110 tied to one department, 5 store
  brands sold everywhere);
- items: type ~ lognormal type weights, brand ~ Zipf within its category, attribute values ~ Zipf
  over each attribute's values, latent popularity lognormal; titles written by "sellers" with
  word-order templates, synonyms, unit spellings, omitted attributes, typos, ALL-CAPS,
  marketing words and keyword stuffing;
- queries: intents (type + optional brand + optional attributes) anchored on real items, ranked
  by a popularity weight and given Zipf search counts; each intent is typed as 1..n surface
  strings (synonyms, plural, word order, unit spellings, misspellings);
- judgments: grade 3 = right type and every constraint met, 2 = right type but a constraint
  differs, 1 = same category other type, 0 = unrelated; per query a pool of relevant items,
  near misses, same-category items, lexical look-alikes and random items is judged;
- clicks: the judged pool is ranked by a simple lexical ranker (IDF-weighted query-term
  coverage of the title + popularity), the top `list_length` are shown, a shopper examines rank
  k with probability 1/k**position_bias and clicks with a probability set by grade and
  popularity; log weight = clicks, query frequency = searches.

Hand-written rather than a library: no maintained package generates e-commerce search logs with
graded relevance. Everything is vectorised numpy (strings are assembled with object-array
concatenation); Python loops run only over the few items a rare noise touches and over the query
strings.

Layout: vocabulary.json (every word list, read by vocabulary.py), world.py (the vocabulary
compiled into arrays), config.py (SyntheticConfig, sizes and argument checks), items.py,
queries.py (intents and query strings), typos.py, judgments.py, log.py (clicks), arrays.py
(numpy helpers); this module assembles the Dataset.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from gsid._progress import progress_bar
from gsid.data.dataset import Dataset
from gsid.data.splits import hash_split
from gsid.data.synthetic.config import (
    GENERATOR_VERSION,
    MAX_ITEMS,
    MIN_ITEMS,
    OPTIONS,
    SyntheticConfig,
    auto_judged_relevant,
    default_n_queries,
    resolve,
)
from gsid.data.synthetic.items import make_items
from gsid.data.synthetic.judgments import judge
from gsid.data.synthetic.log import simulate_log
from gsid.data.synthetic.queries import make_intents, make_queries
from gsid.data.synthetic.world import SLOTS, build_world

__all__ = [
    "GENERATOR_VERSION",
    "MAX_ITEMS",
    "MIN_ITEMS",
    "OPTIONS",
    "SyntheticConfig",
    "auto_judged_relevant",
    "default_n_queries",
    "make_marketplace",
    "synthetic_info",
]

logger = logging.getLogger(__name__)


def synthetic_info(
    n_items: int = 5000, n_queries: int | None = None, seed: int = 0, **options: Any
) -> dict[str, Any]:
    """The generator parameters make_marketplace would use (resolved defaults), without generating.
    The same dict is stored as `Dataset.info["generator"]`."""
    n_items, n_queries, cfg = resolve(n_items, n_queries, seed, options)
    world = build_world()
    return {
        "name": "gsid.data.synthetic.make_marketplace",
        "version": GENERATOR_VERSION,
        "n_items": n_items,
        "n_queries": n_queries,
        "seed": int(seed),
        "world": {
            "departments": len(world.dept_names),
            "categories": len(world.cat_names),
            "types": world.n_types,
            "brands": len(world.brands),
            "attributes": len(world.def_key),
        },
        "options": cfg.to_dict(),
    }


def make_marketplace(
    n_items: int = 5000,
    n_queries: int | None = None,
    seed: int = 0,
    show_progress: bool | None = None,
    **options: Any,
) -> Dataset:
    """Generate a synthetic marketplace Dataset (name "synthetic-<n_items>").

    n_items: catalogue size, 100 .. 5,000,000.
    n_queries: distinct query strings (default n_items / 2 within 500 .. 100,000); fewer come
        out (with a warning) when a tiny catalogue cannot support that many distinct intents.
    seed: the same seed gives an identical Dataset.
    options: any field of SyntheticConfig (e.g. split_fractions=(0.8, 0.1, 0.1),
        judged_relevant=30, list_length=10, query_zipf=0.8); unknown names are rejected.

    queries.frequency = number of simulated searches of the string; log.weight = clicks;
    judgments.grade in 0..3 with relevance_threshold 2.5 (only grade 3 is relevant).
    """

    info = synthetic_info(n_items, n_queries, seed, **options)
    n_items, n_queries, cfg = resolve(n_items, n_queries, seed, options)
    rng = np.random.default_rng(seed)
    world = build_world()
    timings: dict[str, float] = {}
    bar = progress_bar(total=5, desc="synthetic", show_progress=show_progress)
    t0 = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        items = make_items(world, cfg, n_items, rng)
        step("items")
        intents = make_intents(world, items, cfg, n_queries, rng)
        queries = make_queries(world, intents, cfg, n_queries, rng)
        step("queries")
        pool = judge(world, items, intents, cfg, rng)
        step("judgments")
        row, item, grade, clicks = simulate_log(items, queries, pool, cfg, rng)
        step("clicks")
        ds = _assemble(
            world, items, intents, queries, row, item, grade, clicks, cfg, n_items, seed, info, rng
        )
        step("dataset")
    finally:
        bar.close()
    # timings are logged, not stored: the same seed must give an identical Dataset, info included
    logger.info("synthetic-%d generated in %.1fs %s", n_items, sum(timings.values()), timings)
    return ds


def _assemble(
    world, items, intents, queries, row, item, grade, clicks, cfg, n_items, seed, info, rng
) -> Dataset:
    n = len(items.type)
    # item ids are a random permutation, so neither ids nor row order reveal the type
    perm = rng.permutation(n)
    width = len(str(n - 1))
    ids = np.asarray([f"i{k:0{width}d}" for k in range(n)], dtype=object)
    item_id = ids[perm]  # internal index -> id
    rows = np.argsort(perm)  # output row k holds the internal item with id k
    paths = np.asarray(world.type_paths, dtype=object)
    items_df = pd.DataFrame({
        "item_id": ids,
        "title": np.asarray(items.titles, dtype=object)[rows],
        "description": np.asarray(items.descriptions, dtype=object)[rows],
        "category": paths[items.type[rows]],
        "attributes": np.asarray(items.attributes, dtype=object)[rows],
    })  # fmt: skip
    # query ids follow search volume: q0000 is the most searched string
    Q = len(queries.text)
    qorder = np.argsort(-queries.searches, kind="stable")
    qwidth = len(str(Q - 1))
    qid = np.empty(Q, dtype=object)
    qid[qorder] = [f"q{k:0{qwidth}d}" for k in range(Q)]
    splits = [hash_split(q, cfg.split_fractions, seed) for q in queries.text]
    queries_df = pd.DataFrame({
        "query_id": qid[qorder],
        "query": np.asarray(queries.text, dtype=object)[qorder],
        "split": np.asarray(splits, dtype=object)[qorder],
        "frequency": queries.searches[qorder],
    })  # fmt: skip
    judg = pd.DataFrame(
        {"query_id": qid[row], "item_id": item_id[item], "grade": grade.astype(np.float64)}
    )
    clicked = clicks > 0
    log = pd.DataFrame({
        "query_id": qid[row[clicked]],
        "item_id": item_id[item[clicked]],
        "weight": clicks[clicked].astype(np.float64),
    })  # fmt: skip
    n_clicked = len(np.unique(item[clicked]))
    g_cons = (intents.cons[queries.intent] >= 0).sum(axis=1)
    stats = {
        "intents": len(np.unique(queries.intent)),
        "searches": int(queries.searches.sum()),
        "clicks": int(clicks.sum()),
        "clicks_per_search": round(float(clicks.sum() / max(queries.searches.sum(), 1)), 4),
        "click_share_by_grade": [round(float(x), 4) for x in np.bincount(grade, weights=clicks, minlength=4) / max(clicks.sum(), 1)],
        "items_never_clicked": round(1 - n_clicked / n, 4),
        "queries_by_constraints": np.bincount(g_cons, minlength=SLOTS + 1).tolist(),
        "judgments_by_grade": np.bincount(grade, minlength=4).tolist(),
        "types_with_items": int((np.diff(items.type_start) > 0).sum()),
    }  # fmt: skip
    info = {**info, "stats": stats}
    return Dataset(
        items=items_df,
        queries=queries_df,
        log=log,
        judgments=judg,
        name=f"synthetic-{n_items}",
        relevance_threshold=cfg.relevance_threshold,
        bucket_rule=cfg.bucket_rule,
        info={
            "source": "synthetic",
            "generator": info,
            "frequency_from": "searches",
            "split_seed": int(seed),
            "split_fractions": list(cfg.split_fractions),
            "relevance": "grade 3: right type, brand and attributes; 2: right type, a constraint differs; 1: same category; 0: unrelated",
        },
    )
