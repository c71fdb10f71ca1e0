"""Importers on the real data sets in ../shared/data (opt in: pytest -m realdata).

Skipped cleanly when the folder is absent (a fresh clone without ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsid.data.importers import import_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.realdata


def _need(folder: str) -> Path:
    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path


def test_homedepot():
    ds = import_dataset("homedepot", _need("homedepot"))
    assert len(ds.items) == 54_667
    assert ds.summary()["queries"] == {"train": 7_793, "dev": 2_000, "test": 0}
    expected = ds.expected("dev")
    assert len(expected) == 2_000  # every dev query has a relevant product
    assert ds.relevance_threshold == 2.5
    assert set(ds.buckets()) == {"head", "torso", "tail"}
    train_q = set(ds.training_pairs("train")["query_id"])
    assert not train_q & set(expected)  # no dev query leaks into training


def test_instacart():
    ds = import_dataset("instacart", _need("instacart"))
    assert len(ds.items) == 49_688
    assert [len(set(level)) for level in ds.category_levels()] == [21, 134]
    dropped = import_dataset("instacart", _need("instacart"), drop_missing=True)
    assert len(dropped.items) == 49_688 - 1_258


def test_bestbuy():
    ds = import_dataset("bestbuy", _need("bestbuy_mobile"))
    assert len(ds.items) == 4_862
    assert [len(set(level)) for level in ds.category_levels()] == [7, 31, 54]
