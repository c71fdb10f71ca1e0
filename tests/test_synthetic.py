"""The synthetic marketplace: determinism, sizes, schema and integrity, splits, frequencies,
judgments, the click log, and the round trip through Dataset.save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gsid.data import BucketRule, Dataset
from gsid.data.normalize import normalize_text
from gsid.data.synthetic import (
    OPTIONS,
    SyntheticConfig,
    auto_judged_relevant,
    default_n_queries,
    make_marketplace,
    synthetic_info,
)
from gsid.errors import GsidError


def _frames_equal(a: Dataset, b: Dataset) -> bool:
    return all(
        getattr(a, t).equals(getattr(b, t)) for t in ("items", "queries", "log", "judgments")
    )


# ---------------------------------------------------------------- determinism
def test_same_seed_same_data(small_market):
    again = make_marketplace(n_items=1000, seed=0)
    assert _frames_equal(small_market, again)
    assert again.name == small_market.name == "synthetic-1000"


def test_different_seed_different_data(small_market):
    other = make_marketplace(n_items=1000, seed=1)
    assert not small_market.items["title"].equals(other.items["title"])
    assert not small_market.queries["query"].equals(other.queries["query"])


# ---------------------------------------------------------------- sizes
def test_sizes_small(small_market):
    ds = small_market
    assert len(ds.items) == 1000
    assert len(ds.queries) == default_n_queries(1000) == 500
    assert len(ds.log) > 0 and len(ds.judgments) > len(ds.queries)


def test_explicit_query_count():
    ds = make_marketplace(n_items=300, n_queries=120, seed=3)
    assert len(ds.items) == 300
    assert len(ds.queries) == 120


def test_sizes_20k():
    ds = make_marketplace(n_items=20_000, seed=0)
    assert len(ds.items) == 20_000
    assert len(ds.queries) == 10_000
    assert ds.items["item_id"].is_unique
    # a bigger catalogue makes longer-tail intents possible: some queries carry 3+ constraints
    stats = ds.info["generator"]["stats"]
    assert sum(stats["queries_by_constraints"][3:]) > 1000


@pytest.mark.slow
def test_sizes_1m():
    ds = make_marketplace(n_items=1_000_000, seed=0)
    assert len(ds.items) == 1_000_000
    assert len(ds.queries) == default_n_queries(1_000_000)
    assert set(ds.log["item_id"]) <= set(ds.items["item_id"])


# ---------------------------------------------------------------- schema and integrity
def test_schema_and_integrity(small_market):
    ds = small_market
    items, queries = set(ds.items["item_id"]), set(ds.queries["query_id"])
    for table in (ds.log, ds.judgments):
        assert set(table["item_id"]) <= items
        assert set(table["query_id"]) <= queries
    ds.check()  # the Dataset's own referential checks
    assert (ds.items["title"].str.len() > 0).all()
    assert ds.queries["query_id"].is_unique and ds.queries["query"].map(normalize_text).is_unique
    for a in ds.items["attributes"]:
        assert isinstance(json.loads(a), dict)
    assert (ds.log["weight"] >= 1).all()
    assert set(ds.judgments["grade"].unique()) <= {0.0, 1.0, 2.0, 3.0}
    assert not ds.judgments.duplicated(["query_id", "item_id"]).any()


def test_category_tree(small_market):
    levels = small_market.category_levels()
    assert len(levels) >= 3
    assert all(len(c.split(" > ")) == 3 for c in small_market.items["category"])
    assert len(set(levels[0])) >= 6  # departments
    assert len(set(levels[2])) >= 100  # product types


def test_brands_and_attributes(small_market):
    attrs = [json.loads(a) for a in small_market.items["attributes"]]
    brands = pd.Series([a.get("brand") for a in attrs]).dropna()
    counts = brands.value_counts()
    assert len(counts) >= 50
    assert counts.iloc[0] >= 5 * counts.iloc[-1]  # Zipf-popular brands
    keys = {k for a in attrs for k in a}
    assert {"color", "size", "material", "pack"} <= keys


def test_title_noise_present():
    ds = make_marketplace(n_items=5000, seed=0)
    titles = ds.items["title"]
    upper = titles[titles.str.len() > 15].map(
        lambda t: t == t.upper() and any(c.isalpha() for c in t)
    )
    assert 0 < upper.mean() < 0.2  # some ALL-CAPS sellers
    assert titles.str.contains(r"\bNEW\b|Best Seller|Top Rated", regex=True).mean() > 0.02
    # one attribute, several spellings: units are written differently by different sellers
    inch = titles.str.extract(r"\d+(\.\d+)?\s?(Inch|in\.|\"|-Inch|in\b|Inches)")[1].dropna()
    assert inch.nunique() >= 4


# ---------------------------------------------------------------- splits, frequencies, expected
def test_splits(small_market):
    ds = small_market
    q = ds.queries
    assert set(q["split"]) == {"train", "dev", "test"}
    norm = q["query"].map(normalize_text)
    assert norm.groupby(norm).size().max() == 1  # a query string is in exactly one split
    for split in ("dev", "test"):
        exp = ds.expected(split)
        assert set(exp) == set(ds.split_queries(split)["query_id"])  # each has >= 1 item
        assert all(len(v) >= 1 for v in exp.values())


def test_zipf_frequencies(small_market):
    f = np.sort(small_market.queries["frequency"].to_numpy())[::-1]
    assert (f >= 1).all()
    top = f[: len(f) // 100 or 1].sum()
    assert top / f.sum() > 0.1  # the top 1% of query strings carry > 10% of searches
    b = small_market.buckets().value_counts()
    assert b["head"] < b["torso"] < b["tail"]


def test_relevance_threshold_and_grades(small_market):
    ds = small_market
    assert ds.relevance_threshold == 2.5
    g = ds.judgments["grade"].value_counts()
    assert all(g.get(x, 0) > 0 for x in (0.0, 1.0, 2.0, 3.0))  # hard negatives included


def test_grades_follow_the_intent(small_market):
    ds = small_market
    j = ds.judgments.merge(ds.items[["item_id", "category", "attributes"]], on="item_id")
    j = j.merge(ds.queries[["query_id", "query"]], on="query_id")
    rel = j[j["grade"] == 3]
    # every relevant item of a query is of one product type ...
    assert (rel.groupby("query_id")["category"].nunique() == 1).all()
    typ = rel.groupby("query_id")["category"].first()
    # ... grade 2 is that type too, grade 1 its category but another type, grade 0 neither
    g2 = j[j["grade"] == 2]
    assert (g2["category"].to_numpy() == typ.reindex(g2["query_id"]).to_numpy()).all()
    for grade, same_cat in ((1, True), (0, False)):
        g = j[j["grade"] == grade]
        g = g[g["query_id"].isin(typ.index)]
        want = typ.reindex(g["query_id"]).to_numpy()
        parent = [c.rsplit(" > ", 1)[0] for c in g["category"]]
        assert all(
            (p == w.rsplit(" > ", 1)[0]) == same_cat for p, w in zip(parent, want, strict=True)
        )
        assert (g["category"].to_numpy() != want).all()
    # a brand named in the query is the brand of every relevant item that states one
    brands = {json.loads(a).get("brand", "") for a in ds.items["attributes"]} - {""}
    checked = 0
    for q, items in rel.groupby("query")["attributes"]:
        named = [b for b in brands if f" {b.lower()} " in f" {q.lower()} "]
        if len(named) == 1:
            stated = {json.loads(a).get("brand") for a in items} - {None}
            assert stated <= {named[0]}, (q, stated)
            checked += 1
    assert checked > 20


def test_click_log(small_market):
    ds = small_market
    j = ds.judgments.merge(ds.log, on=["query_id", "item_id"], how="left").fillna({"weight": 0})
    share = j.groupby("grade")["weight"].sum() / j["weight"].sum()
    assert share[3.0] > 0.6  # clicks follow relevance ...
    assert share[[0.0, 1.0, 2.0]].sum() > 0  # ... but not only
    clicked = set(ds.log["item_id"])
    assert 0 < len(clicked) < len(ds.items)  # cold-start items exist
    # every log row is a judged pair (the simulated engine only shows judged candidates)
    assert len(ds.log.merge(ds.judgments, on=["query_id", "item_id"])) == len(ds.log)
    pairs = ds.training_pairs("train")
    assert len(pairs) > 0 and set(pairs["query_id"]) <= set(ds.split_queries("train")["query_id"])


# ---------------------------------------------------------------- options and info
def test_info_records_parameters(small_market):
    gen = small_market.info["generator"]
    assert gen["n_items"] == 1000 and gen["seed"] == 0
    assert gen["options"]["judged_relevant"] == auto_judged_relevant(1000) == 100
    info = synthetic_info(1000)
    assert info["options"] == gen["options"] and info["world"]["types"] >= 150
    json.dumps(small_market.info)  # manifest-serialisable


def test_options(tmp_path):
    ds = make_marketplace(n_items=300, n_queries=60, seed=1, split_fractions=(0.6, 0.2, 0.2),
                          bucket_rule="rank:0.1,0.5", judged_relevant=5, with_descriptions=False)  # fmt: skip
    assert ds.bucket_rule == BucketRule("rank", (0.1, 0.5))
    assert (ds.items["description"] == "").all()
    n_rel = ds.judgments[ds.judgments["grade"] == 3].groupby("query_id").size()
    assert n_rel.max() <= 6  # judged_relevant plus the intent's anchor item
    assert set(OPTIONS) >= {"split_fractions", "judged_relevant", "list_length", "query_zipf"}


def test_bad_arguments():
    with pytest.raises(GsidError, match="valid options"):
        make_marketplace(n_items=300, colour_noise=0.5)
    with pytest.raises(ValueError, match="n_items"):
        make_marketplace(n_items=10)
    with pytest.raises(ValueError, match="n_queries"):
        make_marketplace(n_items=300, n_queries=0)
    with pytest.raises(ValueError, match="probability"):
        make_marketplace(n_items=300, caps_rate=2.0)
    with pytest.raises(ValueError, match="list_length"):
        SyntheticConfig(list_length=0)


# ---------------------------------------------------------------- persistence
def test_save_load_round_trip(small_market, tmp_path):
    path = small_market.save(tmp_path / "synthetic")
    back = Dataset.load(path)
    assert _frames_equal(small_market, back)
    assert back.name == small_market.name
    assert back.relevance_threshold == small_market.relevance_threshold
    assert back.bucket_rule == small_market.bucket_rule
    assert back.info["generator"]["options"] == small_market.info["generator"]["options"]
