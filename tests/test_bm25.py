"""BM25Retriever: English and Chinese catalogues, unknown words, variants, save/load."""

import numpy as np
import pandas as pd
import pytest

from gsid.data import Dataset
from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.retrieval import load_retriever
from gsid.retrieval.bm25 import METHODS, BM25Retriever

EN_TITLES = {
    "d1": "DeWalt 20V cordless drill with battery",
    "p1": "Behr white interior paint, 1 gal.",
    "h1": "Flexzilla garden hose 50 ft.",
    "d2": "Ryobi corded hammer drill",
    "l1": "LED light bulb 60 watt, daylight",
}
ZH_TITLES = {
    "z1": "华为 Mate 60 智能手机 黑色",
    "z2": "美的 电饭煲 家用 4升",
    "z3": "联想 笔记本电脑 14英寸 轻薄",
    "z4": "九阳 豆浆机 全自动",
}


def _dataset(titles: dict[str, str], descriptions: dict[str, str] | None = None) -> Dataset:
    items = pd.DataFrame({"item_id": list(titles), "title": list(titles.values())})
    if descriptions:
        items["description"] = [descriptions.get(i, "") for i in titles]
    return Dataset(items=items, name="tiny")


@pytest.fixture(scope="module")
def en() -> Dataset:
    return _dataset(EN_TITLES)


def test_english_stemmed_match(en):
    ids, scores = BM25Retriever().index(en).search(["cordless drills", "paint"], k=3)
    assert ids[0, 0] == "d1" and ids[0, 1] == "d2"  # "drills" stems to "drill"
    assert ids[0, 2] is None and scores[0, 2] == -np.inf  # nothing else shares a word
    assert ids[1, 0] == "p1" and ids[1, 1] is None
    assert scores.dtype == np.float32 and scores[0, 0] >= scores[0, 1]


def test_unknown_words_give_empty_rows(en):
    r = BM25Retriever().index(en)
    ids, scores = r.search(["xylophone quux", "the and of", "garden hose"], k=4)
    assert ids.shape == (3, 4)
    assert all(v is None for v in ids[0]) and np.all(scores[0] == -np.inf)
    assert all(v is None for v in ids[1])  # stop words only
    assert ids[2, 0] == "h1"


@pytest.mark.parametrize("method", METHODS)
def test_every_variant_ranks_the_match_first(en, method):
    ids, scores = BM25Retriever(method=method).index(en).search(["hammer drill", "zzz"], k=5)
    assert ids[0, 0] == "d2" and scores[0, 0] == scores[0].max() > 0
    assert all(v is None for v in ids[1]) and np.all(scores[1] == -np.inf)


def test_k_larger_than_catalogue(en):
    ids, _ = BM25Retriever().index(en).search(["drill"], k=50)  # never wider than 5 items
    assert ids.shape == (1, 5) and set(ids[0, :2]) == {"d1", "d2"} and ids[0, 2] is None


def test_chinese_catalogue_with_jieba_and_bigrams():
    ds = _dataset(ZH_TITLES)
    queries = ["电饭煲", "笔记本电脑", "华为手机", "豆浆机"]
    for cjk in ("auto", "bigram"):
        ids, _ = BM25Retriever(cjk=cjk).index(ds).search(queries, k=2)
        assert ids[:, 0].tolist() == ["z2", "z3", "z1", "z4"], cjk


def test_description_field():
    ds = _dataset(
        {"a": "Model X100", "b": "Model Y200"}, {"a": "a quiet dishwasher", "b": "a fridge"}
    )
    assert BM25Retriever().index(ds).search(["dishwasher"], k=1).ids[0, 0] is None
    r = BM25Retriever(fields=["title", "description"]).index(ds)
    assert r.search(["dishwasher"], k=1).ids[0, 0] == "a"


def test_save_load_round_trip(en, tmp_path):
    r = BM25Retriever(k1=1.2, b=0.6, method="bm25+").index(en)
    queries = ["cordless drill", "white paint", "nothing matches this", "light"]
    before = r.search(queries, k=5)
    r.save(tmp_path / "bm25")
    for loaded in (BM25Retriever.load(tmp_path / "bm25"), load_retriever(tmp_path / "bm25")):
        assert isinstance(loaded, BM25Retriever) and loaded.config() == r.config()
        after = loaded.search(queries, k=5)
        assert (after.ids == before.ids).all()
        np.testing.assert_array_equal(after.scores, before.scores)
        assert loaded.index_bytes() == r.index_bytes() > 0


def test_corrupt_artifact(en, tmp_path):
    BM25Retriever().index(en).save(tmp_path / "bm25")
    (tmp_path / "bm25" / "bm25s" / "data.csc.index.npy").unlink()
    with pytest.raises(ArtifactError):
        BM25Retriever.load(tmp_path / "bm25")


def test_errors(en):
    with pytest.raises(NotFittedError):
        BM25Retriever().search(["drill"])
    with pytest.raises(GsidError, match="method"):
        BM25Retriever(method="bm26")
    with pytest.raises(GsidError, match="fields"):
        BM25Retriever(fields=["brand"])
    with pytest.raises(GsidError, match="indexable"):
        BM25Retriever().index(_dataset({"a": "!!", "b": "--"}))
