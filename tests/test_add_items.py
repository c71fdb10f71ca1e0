"""Retriever.add: new products searchable at once without retraining, for every method that
can; a clear refusal for the others; nothing changed when the new items are wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_fixtures import tiny_dataset

import gsid
from gsid.data import Dataset
from gsid.errors import DataValidationError, GsidError, NotFittedError
from gsid.ids import SemanticIDs
from gsid.retrieval.registry import make_retriever

N_NEW = 5


@pytest.fixture(scope="module")
def split():
    ds = tiny_dataset()
    new = ds.items.iloc[-N_NEW:].reset_index(drop=True)
    keep = ~ds.log["item_id"].isin(new["item_id"])
    old = Dataset(items=ds.items.iloc[:-N_NEW], queries=ds.queries, log=ds.log[keep], name="t")
    return old, new


def test_hybrid_of_bm25_and_dense_grows_and_persists(split, tmp_path):
    old, new = split
    r = make_retriever("hybrid", {"parts": ["bm25", "dense"]}).index(old)
    assert r.catalogue_ is not None and all(p.catalogue_ is None for p in r.retrievers)
    r.save(tmp_path / "h")
    r = gsid.load(tmp_path / "h")
    assert r.titles([new["item_id"].iloc[0]]) == [None]  # not in the catalogue yet
    r.add(new)
    assert r.titles([new["item_id"].iloc[0]]) == [new["title"].iloc[0]]  # the grown table
    title = new["title"].iloc[2]
    ids, _ = r.search([title], 3)
    assert ids[0, 0] == new["item_id"].iloc[2]
    assert [len(p.item_ids_) for p in r.retrievers] == [len(old.items) + N_NEW] * 2
    r.save(tmp_path / "h")
    again = gsid.load(tmp_path / "h")
    assert len(again.catalogue_) == len(old.items) + N_NEW
    assert again.provenance_["n_added"] == N_NEW
    assert again.titles([new["item_id"].iloc[0], "nope"]) == [new["title"].iloc[0], None]


def test_wrong_new_items_change_nothing(split):
    old, new = split
    r = make_retriever("bm25").index(old)
    n = len(r.item_ids_)
    bad = [
        ([{"item_id": "i0", "title": "again"}], "already in the index"),
        ([{"item_id": "z", "title": "  "}], "empty title"),
        ([{"item_id": "z", "title": "x", "price": "3"}], "unknown field"),
        ([{"item_id": "z"}], "missing ['title']"),
        ([{"item_id": "z", "title": 3}], "must be a string"),
        ([{"item_id": "z", "title": "x" * 3000}], "more than 2000"),
        ([], "non-empty list"),
        (pd.DataFrame(new).assign(item_id="dup"), "duplicate item_id"),
    ]
    for items, says in bad:
        with pytest.raises(DataValidationError) as e:
            r.add(items)
        assert says in str(e.value), (says, str(e.value))
        assert len(r.item_ids_) == n and len(r.catalogue_) == n
    with pytest.raises(NotFittedError):
        make_retriever("bm25").add(new)


def test_methods_that_cannot_grow_say_so(split):
    old, new = split
    r = make_retriever("gr", {"levels": 2, "codebook_size": 4, "model": {"epochs": 1}})
    r.index(old)
    with pytest.raises(GsidError, match=r"cannot add items.*rebuild"):
        r.add(new)
    assert len(r.item_ids_) == len(old.items)


def test_extend_keeps_every_old_id():
    ids = SemanticIDs.from_codes(["a", "b", "c"], np.array([[0, 1, -1], [0, 1, 0], [2, 3, -1]]))
    grown = ids.extend(["d", "e", "f", "g"], np.array([[0, 1], [2, 3], [5, 5], [5, 5]]))
    for item in ("a", "b", "c"):
        assert grown.code_of(item) == ids.code_of(item)
    assert grown.code_of("d") == (0, 1, 1)  # the next free suffix after b's 0
    assert grown.code_of("e") == (2, 3, 1)
    assert grown.code_of("f") == (5, 5) and grown.code_of("g") == (5, 5, 1)
    shared = ids.extend(["d"], np.array([[0, 1]]), unique=False)
    assert shared.code_of("d") == (0, 1)
