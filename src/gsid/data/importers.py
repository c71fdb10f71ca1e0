"""Importers for the public benchmark data sets in ../shared/data (never copied into gsid).

    ds = import_dataset("homedepot", "../shared/data/homedepot")
    ds.save("runs/data/homedepot")          # CLI: gsid data import homedepot PATH --out DIR

Each importer is only a documented column mapping onto `build_dataset`, so users with their own
files can see exactly how to map theirs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gsid.data.dataset import Dataset
from gsid.data.loading import Source, build_dataset
from gsid.data.schema import CATEGORY_SEP
from gsid.errors import DataValidationError


def import_homedepot(path: str | os.PathLike) -> Dataset:
    """Home Depot search relevance: real queries with human judgments (1.0-3.0).

    relevant = relevance >= 2.5 (the project convention); splits come from queries.tsv (train/dev);
    query frequency = number of judged products of the query (the Kaggle rows were sampled from
    search traffic, so it is the only frequency signal the set has). There is no click log: training
    pairs are the relevant judged pairs of train queries.
    """
    p = Path(path)
    return build_dataset(
        items=Source(
            p / "products.tsv", {"item_id": "product_uid", "title": "product_title"}, quoting="none"
        ),
        queries=Source(p / "queries.tsv", quoting="none"),
        judgments=Source(
            p / "qrels.tsv", {"item_id": "product_uid", "grade": "relevance"}, quoting="none"
        ),
        name="homedepot",
        relevance_threshold=2.5,
        frequency_from="judgments",
        info={"source": "Kaggle Home Depot Product Search Relevance (2016), train file"},
    )


def import_instacart(path: str | os.PathLike, drop_missing: bool = False) -> Dataset:
    """Instacart products: a 2-level category (department > aisle), no queries.

    The 1,258 products of department "missing" are kept as one class by default (their aisle is
    also "missing"); drop_missing=True removes them.
    """
    p = Path(path)
    ds = build_dataset(
        items=Source(
            p / "products.csv",
            {"item_id": "product_id", "title": "product_name", "category": "category_path"},
        ),
        name="instacart",
        info={
            "source": "Instacart Online Grocery Shopping Dataset 2017",
            "missing_department": "dropped" if drop_missing else "kept as one class",
        },
    )
    if drop_missing:
        keep = ~ds.items["category"].str.startswith("missing")
        ds = Dataset(items=ds.items[keep], name=ds.name, info=ds.info)
    return ds


def import_bestbuy(path: str | os.PathLike) -> Dataset:
    """Best Buy mobile department: 3-5 level category paths. Title = name, description = short description,
    attributes = type, manufacturer, regular price. The two levels every product shares
    ("Best Buy > Mobile Phones") are dropped, leaving 3 levels of 7 / 31 / 54 labels."""
    p = Path(path)
    ds = build_dataset(
        items=Source(
            p / "products.tsv",
            {
                "item_id": "sku",
                "title": "name",
                "description": "short_description",
                "category": "category_path_names",
            },
            attribute_columns=["type", "manufacturer", "regular_price"],
        ),
        name="bestbuy_mobile",
        info={"source": "Best Buy product dump, Kaggle Data Mining Hackathon (2012)"},
    )
    ds.items["category"] = strip_constant_levels(ds.items["category"].tolist())
    return ds


def strip_constant_levels(paths: list[str]) -> list[str]:
    """Drop leading category levels that every item shares (Best Buy's "Best Buy > Mobile
    Phones"): a level with one label carries no information and would make level-1 AMI 0/0."""
    split = [p.split(CATEGORY_SEP) for p in paths]
    cut = 0
    while all(len(s) > cut + 1 for s in split) and len({s[cut] for s in split}) == 1:
        cut += 1
    return [CATEGORY_SEP.join(s[cut:]) for s in split]


IMPORTERS: dict[str, Callable[..., Dataset]] = {
    "homedepot": import_homedepot,
    "instacart": import_instacart,
    "bestbuy": import_bestbuy,
}


def import_dataset(name: str, path: str | os.PathLike, **options) -> Dataset:
    if name not in IMPORTERS:
        raise DataValidationError(f"unknown data set {name!r}; known: {sorted(IMPORTERS)}")
    if not Path(path).is_dir():
        raise DataValidationError(
            f"{path} is not a directory; pass the folder that holds the {name} files "
            f"(e.g. ../shared/data/{'bestbuy_mobile' if name == 'bestbuy' else name})"
        )
    return IMPORTERS[name](path, **options)
