"""Two-tower fine-tuning: batches without false negatives, one tiny epoch, save/reload, dense-ft."""

import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gsid.data import Dataset
from gsid.errors import ArtifactError, GsidError
from gsid.retrieval import load_retriever
from gsid.retrieval.dense import FineTunedDenseRetriever
from gsid.text.finetune import FineTuneConfig, FineTunedEncoder, finetune_encoder
from gsid.text.finetune_batches import (
    batches_without_duplicates,
    grouped_order,
    known_positives,
    training_examples,
)

TITLES = {
    "drill": "DeWalt 20V cordless drill",
    "paint": "Behr white interior paint 1 gal",
    "hose": "Flexzilla garden hose 50 ft",
    "bulb": "LED light bulb 60 watt",
    "mower": "Honda gas lawn mower",
    "toilet": "American Standard toilet",
}
PAIRS = [  # (query, item, split)
    ("power drill", "drill", "train"),
    ("drill driver", "drill", "train"),
    ("wall paint", "paint", "train"),
    ("water hose", "hose", "train"),
    ("light bulbs", "bulb", "train"),
    ("lawn mower", "mower", "train"),
    ("lawn mower", "hose", "train"),
    ("toilets", "toilet", "train"),
    ("cordless drill", "drill", "dev"),
]
TINY = {"epochs": 1, "batch_size": 4, "max_seq_length": 16, "lr": 5e-5}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    qtext = list(dict.fromkeys((q, s) for q, _, s in PAIRS))
    qid = {q: f"q{i}" for i, (q, _) in enumerate(qtext)}
    return Dataset(
        items=pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())}),
        queries=pd.DataFrame(
            {
                "query_id": [qid[q] for q, _ in qtext],
                "query": [q for q, _ in qtext],
                "split": [s for _, s in qtext],
            }
        ),
        judgments=pd.DataFrame(
            {
                "query_id": [qid[q] for q, _, _ in PAIRS],
                "item_id": [i for _, i, _ in PAIRS],
                "grade": 1.0,
            }
        ),
        name="tiny-ft",
    )


@pytest.fixture(scope="module")
def tuned(ds, tmp_path_factory) -> FineTunedEncoder:
    return finetune_encoder(
        ds, tmp_path_factory.mktemp("ft") / "m", FineTuneConfig(**TINY), show_progress=False
    )


def test_batches_hold_no_duplicates():
    q = ["a", "a", "b", "c", "d", "e", "f", "A "]
    t = ["t1", "t2", "t3", "t3", "t4", "t5", "t6", "t7"]
    ids = ["i1", "i2", "i3", "i4", "i5", "i6", "i6", "i8"]
    batches = list(batches_without_duplicates(q, t, ids, 3, random.Random(0)))
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) >= 6
    for b in batches:
        assert 2 <= len(b) <= 3
        assert len({q[i].strip().lower() for i in b}) == len(b)  # "a" and "A " are one query
        assert len({t[i] for i in b}) == len(b) and len({ids[i] for i in b}) == len(b)
    again = list(batches_without_duplicates(q, t, ids, 3, random.Random(0)))
    assert again == batches  # seeded


def test_grouped_batches_draw_runs_of_one_group():
    """grouped_order cuts each group into runs and shuffles the runs: every pair once, each run
    from one group, seeded; batches over it keep the no-duplicate rule."""
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    order = grouped_order(groups, 4, random.Random(0))  # every group fits one run
    assert sorted(order) == list(range(10))
    for g in range(3):  # so each group's pairs are adjacent
        at = [n for n, i in enumerate(order) if groups[i] == g]
        assert at == list(range(at[0], at[0] + len(at)))
    assert grouped_order(groups, 4, random.Random(0)) == order
    small = grouped_order(groups, 1, random.Random(0))  # runs of one: a plain shuffle
    assert sorted(small) == list(range(10))
    q = [f"q{i}" for i in range(10)]
    t = [f"t{i}" for i in range(10)]
    batches = list(batches_without_duplicates(q, t, t, 4, random.Random(0), groups, 2))
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) and all(2 <= len(b) <= 4 for b in batches)


def test_known_positives_mask_other_relevant_items():
    queries = ["lawn mower", "Lawn Mower ", "drill"]
    ids = ["mower", "hose", "drill"]
    relevant = {"lawn mower": {"mower", "hose"}, "drill": {"drill"}}
    mask = known_positives([0, 1, 2], queries, ids, relevant)
    assert mask.tolist() == [[False, True, False], [True, False, False], [False] * 3]


def test_grouped_negatives_fine_tune(ds, tmp_path):
    """group_negatives clusters the items (faiss k-means), draws batches from the cells and
    masks known positives; it trains, and its options are checked."""
    cfg = FineTuneConfig(**TINY, group_negatives=2, group_cells=3)
    out = finetune_encoder(ds, tmp_path / "grouped", cfg, show_progress=False)
    assert out.info["steps"] >= 2 and out.info["config"]["group_negatives"] == 2
    sym = FineTuneConfig(**{**TINY, "max_pairs": 4}, group_negatives=2, symmetric=True)
    assert finetune_encoder(ds, tmp_path / "sym", sym, show_progress=False).info["steps"] >= 1
    with pytest.raises(GsidError, match="group_negatives"):
        FineTuneConfig(group_negatives=-1)
    with pytest.raises(GsidError, match="catalogue_negatives"):
        FineTuneConfig(group_negatives=2, towers="frozen-items", catalogue_negatives=True)


def test_group_cells_per_epoch(ds, tmp_path, monkeypatch):
    """A list of group_cells gives each epoch its own k-means cells (the last one repeats):
    each distinct cell count is clustered once, and every epoch's batches are trained."""
    import gsid.text.finetune_batches as ft

    cfg = FineTuneConfig(**{**TINY, "epochs": 3}, group_negatives=2, group_cells=[2, 3])
    assert cfg.cells_per_epoch() == [2, 3, 3]
    assert FineTuneConfig(epochs=2, group_cells=5).cells_per_epoch() == [5, 5]
    clustered = []
    real_item_cells = ft.item_cells

    def recording_item_cells(texts, base_model, cells, *rest):
        clustered.append(cells)
        return real_item_cells(texts, base_model, cells, *rest)

    monkeypatch.setattr(ft, "item_cells", recording_item_cells)
    out = finetune_encoder(ds, tmp_path / "curriculum", cfg, show_progress=False)
    assert clustered == [2, 3]
    assert out.info["config"]["group_cells"] == [2, 3] and out.info["steps"] >= 3
    assert FineTuneConfig.from_dict(out.info["config"]).cells_per_epoch() == [2, 3, 3]
    for bad in ([], [4, 0]):
        with pytest.raises(GsidError, match="group_cells"):
            FineTuneConfig(group_negatives=2, group_cells=bad)


def test_training_examples_use_train_split_only(ds):
    queries, texts, items = training_examples(ds, FineTuneConfig())
    assert "cordless drill" not in queries and len(queries) == 8
    assert texts[items.index("toilet")] == TITLES["toilet"]
    assert len(training_examples(ds, FineTuneConfig(max_pairs=3))[0]) == 3
    with pytest.raises(GsidError, match="towers"):
        FineTuneConfig(towers="siamese")
    with pytest.raises(GsidError, match="frozen-items"):
        FineTuneConfig(catalogue_negatives=True)


def test_one_tiny_epoch_changes_weights_and_reloads(ds, tuned):
    from sentence_transformers import SentenceTransformer

    from gsid.text.encoders import SentenceEncoder

    assert tuned.query_model == tuned.item_model
    assert (Path(tuned.item_model) / "model.safetensors").is_file()
    assert tuned.info["steps"] >= 2 and tuned.info["config"]["batch_size"] == 4
    reloaded = FineTunedEncoder.load(tuned.path)
    assert reloaded.info == tuned.info
    texts = list(TITLES.values())
    base = SentenceEncoder().encode(texts)
    new = SentenceEncoder(reloaded.item_model).encode(texts)
    assert new.shape == base.shape and not np.allclose(new, base, atol=1e-4)
    st = SentenceTransformer(reloaded.item_model, device="cpu")
    np.testing.assert_allclose(st.encode(texts, normalize_embeddings=True), new, atol=1e-5)


def test_same_seed_same_weights(ds, tuned, tmp_path):
    from gsid.text.encoders import SentenceEncoder

    again = finetune_encoder(ds, tmp_path / "m2", FineTuneConfig(**TINY), show_progress=False)
    texts = ["garden hose", "paint"]
    np.testing.assert_allclose(
        SentenceEncoder(again.item_model).encode(texts),
        SentenceEncoder(tuned.item_model).encode(texts),
        atol=1e-5,
    )


def test_separate_towers(ds, tmp_path):
    cfg = FineTuneConfig(**TINY, towers="separate", max_pairs=4)
    out = finetune_encoder(ds, tmp_path / "two", cfg, show_progress=False)
    assert Path(out.query_model).name == "query" and Path(out.item_model).name == "item"
    assert (Path(out.query_model) / "modules.json").is_file()
    assert (Path(out.item_model) / "modules.json").is_file()


def test_frozen_item_tower_dense_ft(ds, tmp_path):
    """Only the query tower trains; items are indexed with the base model (from the cache)."""
    from gsid.text.encoders import SentenceEncoder

    r = FineTunedDenseRetriever(
        finetune={
            **TINY,
            "freeze_embeddings": True,
            "train_layers": 2,
            "catalogue_negatives": True,
        },
        towers="frozen-items",
        cache_dir=str(tmp_path / "cache"),
    )
    r.index(ds, show_progress=False)
    assert r.model == "minilm" and r.query_model is not None
    assert len(list((tmp_path / "cache").glob("rows-*/*.npz"))) == 1
    X = SentenceEncoder().encode(ds.item_texts())
    np.testing.assert_allclose(r.index_.reconstruct_n(0, len(X)), X, atol=1e-5)
    before = r.search(["garden hose"], k=2)
    r.save(tmp_path / "ft")
    assert (tmp_path / "ft" / "query_encoder").is_dir()
    assert not (tmp_path / "ft" / "encoder").exists()
    after = load_retriever(tmp_path / "ft").search(["garden hose"], k=2)
    assert (after.ids == before.ids).all()


def test_dense_ft_retriever_round_trip(ds, tmp_path):
    r = FineTunedDenseRetriever(finetune=TINY, epochs=1, work_dir=str(tmp_path / "work"))
    r.index(ds, show_progress=False)
    assert r.finetune_info_["pairs"] == 8
    queries = ["cordless drill", "garden hose"]
    before = r.search(queries, k=3)
    r.save(tmp_path / "ft")
    shutil.rmtree(tmp_path / "work")  # the saved retriever carries its own model
    loaded = load_retriever(tmp_path / "ft")
    assert isinstance(loaded, FineTunedDenseRetriever) and loaded.name == "dense-ft"
    after = loaded.search(queries, k=3)
    assert (after.ids == before.ids).all()
    np.testing.assert_allclose(after.scores, before.scores, atol=1e-5)
    assert loaded.finetune_info_ == r.finetune_info_


def test_errors(ds, tmp_path):
    with pytest.raises(GsidError, match="unknown"):
        FineTuneConfig.from_dict({"epoch": 2})
    with pytest.raises(GsidError, match="batch_size"):
        FineTuneConfig(batch_size=1)
    with pytest.raises(GsidError, match="unknown"):
        FineTunedDenseRetriever(finetune={"learning_rate": 1e-3})
    empty = Dataset(items=ds.items, name="no-pairs")
    with pytest.raises(GsidError, match="training pair"):
        finetune_encoder(empty, tmp_path / "x", FineTuneConfig(**TINY))
    with pytest.raises(ArtifactError):
        FineTunedEncoder.load(tmp_path)
