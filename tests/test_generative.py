"""GenerativeRetriever on a tiny catalogue: trains, finds, only returns catalogue items,
save/load gives identical results; RRF fusion."""

import numpy as np
import pandas as pd
import pytest

from gsid.data import Dataset
from gsid.errors import GsidError, NotFittedError
from gsid.ids.semantic_ids import SemanticIDs
from gsid.retrieval.base import SearchResults, load_retriever
from gsid.retrieval.fusion import HybridRetriever, reciprocal_rank_fusion
from gsid.retrieval.generative import GenerativeRetriever, generate_ids

NOUNS = ["drill", "hose", "paint", "hammer", "flooring", "bulb", "pipe", "bin"]
ADJS = ["red", "blue", "white", "steel"]
SMALL_MODEL = {
    "epochs": 40,
    "batch_size": 16,
    "d_model": 64,
    "n_heads": 2,
    "dim_feedforward": 128,
    "dropout": 0.0,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def dataset():
    items, queries, log = [], [], []
    for i, noun in enumerate(NOUNS):
        for j, adj in enumerate(ADJS):
            items.append(
                {
                    "item_id": f"i{i}-{j}",
                    "title": f"{adj} {noun} {['pro', 'max', 'mini', 'kit'][j]}",
                }
            )
            qid = f"q{i}-{j}"
            queries.append(
                {"query_id": qid, "query": f"{adj} {noun}", "split": "train" if j < 3 else "dev"}
            )
            log.append({"query_id": qid, "item_id": f"i{i}-{j}"})
    # one item no query touches: only the indexing examples make it reachable
    items.append({"item_id": "cold", "title": "garden gnome statue"})
    return Dataset(
        items=pd.DataFrame(items), queries=pd.DataFrame(queries), log=pd.DataFrame(log), name="tiny"
    )


@pytest.fixture(scope="module")
def gr(dataset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return GenerativeRetriever(
        levels=2, codebook_size=4, beam_width=6, model=SMALL_MODEL, cache_dir=str(cache)
    ).index(dataset)


def test_search_finds_relevant_items(gr, dataset):
    dev = dataset.split_queries("dev")
    ids, scores = gr.search(dev["query"].tolist(), k=3)
    assert ids.shape == scores.shape == (len(dev), 3)
    expected = dataset.expected("dev")
    recall = np.mean(
        [bool(expected[q] & set(r)) for q, r in zip(dev["query_id"], ids, strict=True)]
    )
    assert recall >= 0.5  # the toy catalogue is easy; a broken decoder scores ~0.1
    catalogue = set(dataset.item_ids)
    for row, srow in zip(ids, scores, strict=True):
        found = [x for x in row if x is not None]
        assert set(found) <= catalogue and len(set(found)) == len(found)
        s = srow[np.isfinite(srow)]
        assert (s[:-1] >= s[1:]).all()


def test_cold_item_reachable_by_its_title(gr):
    ids, _ = gr.search(["garden gnome statue"], k=3)
    assert "cold" in set(ids[0])


def test_every_generated_id_exists(gr):
    res = generate_ids(
        gr.model_, ["red drill", "gnome", "white paint pipe"], gr.trie_, beam_width=5
    )
    known = {gr.ids_.code_of(i) for i in gr.ids_.item_ids}
    for b in range(3):
        for r in range(5):
            if res.nodes[b, r] >= 0:
                assert tuple(int(c) for c in res.codes[b, r] if c >= 0) in known


def test_cached_decoding_equals_full_recompute(gr):
    import torch

    qs = ["red drill", "garden gnome", "steel pipe", "white paint"]
    a = generate_ids(gr.model_, qs, gr.trie_, beam_width=7, use_cache=True)
    b = generate_ids(gr.model_, qs, gr.trie_, beam_width=7, use_cache=False)
    assert torch.equal(a.nodes, b.nodes)
    assert torch.allclose(a.scores, b.scores, atol=1e-5)


def test_save_load_identical(gr, dataset, tmp_path):
    qs = ["red drill", "steel hammer", "blue hose"]
    before = gr.search(qs, k=4)
    gr.save(tmp_path / "gr")
    again = load_retriever(tmp_path / "gr")
    assert isinstance(again, GenerativeRetriever)
    after = again.search(qs, k=4)
    assert (before.ids == after.ids).all()
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)
    assert again.index_bytes() == gr.index_bytes() > 0


def test_given_ids_and_cosine_rescore(dataset, tmp_path):
    rng = np.random.default_rng(0)
    n = len(dataset.items)
    codes = np.stack([rng.integers(0, 3, n), np.arange(n) % 12], 1)
    ids = SemanticIDs.from_codes(dataset.item_ids, codes, codebook_sizes=[3, 12])
    ids.save(tmp_path / "ids")
    gr = GenerativeRetriever(
        semantic_ids=str(tmp_path / "ids"),
        rescore="cosine",
        beam_width=8,
        model={**SMALL_MODEL, "epochs": 5},
        cache_dir=str(tmp_path),
    )
    gr.index(dataset)
    assert gr.ids_.codes.tolist() == ids.codes.tolist()
    out = gr.search(["red drill"], k=5)
    s = out.scores[0][np.isfinite(out.scores[0])]
    assert len(s) and (s <= 1.0001).all() and (s[:-1] >= s[1:]).all()  # cosine, sorted
    gr.save(tmp_path / "gr")
    again = load_retriever(tmp_path / "gr").search(["red drill"], k=5)
    assert (again.ids == out.ids).all()


def test_options_and_unfitted():
    with pytest.raises(GsidError, match="rescore"):
        GenerativeRetriever(rescore="bm25")
    with pytest.raises(GsidError, match="unknown"):
        GenerativeRetriever(model={"epochz": 3})
    with pytest.raises(NotFittedError):
        GenerativeRetriever().search(["drill"], k=3)


def test_reciprocal_rank_fusion():
    a = SearchResults(
        np.array([["x", "y", None]], dtype=object), np.array([[3, 2, -np.inf]], np.float32)
    )
    b = SearchResults(np.array([["y", "z", "x"]], dtype=object), np.array([[9, 8, 7]], np.float32))
    ids, scores = reciprocal_rank_fusion([a, b], k=4, c=0)
    # y: 1/2 + 1/1, x: 1/1 + 1/3, z: 1/2
    assert ids[0].tolist() == ["y", "x", "z", None]
    np.testing.assert_allclose(scores[0][:3], [1.5, 4 / 3, 0.5], rtol=1e-6)
    ids, _ = reciprocal_rank_fusion([a, b], k=2, c=0, weights=[1.0, 0.0])
    assert ids[0].tolist() == ["x", "y"]


def test_hybrid_save_load(dataset, tmp_path):
    from gsid.retrieval.bm25 import BM25Retriever

    # two cheap parts: the fusion logic is what is tested here, not the generative model
    hybrid = HybridRetriever([BM25Retriever(), BM25Retriever(k1=0.9, b=0.3)], depth=10).index(
        dataset
    )
    out = hybrid.search(["red drill"], k=5)
    assert out.ids[0, 0] is not None
    hybrid.save(tmp_path / "hy")
    again = load_retriever(tmp_path / "hy").search(["red drill"], k=5)
    assert (again.ids == out.ids).all()


def test_hybrid_by_method_names(dataset, tmp_path):
    """The CLI's form: parts by method name, options per part; it saves and loads like any."""
    from gsid.retrieval.bm25 import BM25Retriever
    from gsid.retrieval.registry import make_retriever

    gr_opts = {"levels": 2, "codebook_size": 4, "beam_width": 6, "model": SMALL_MODEL}
    hybrid = make_retriever(
        "hybrid",
        {"parts": ["gr", "bm25"], "part_options": {"gr": gr_opts}, "depth": 10},
        cache_dir=str(tmp_path / "cache"),
        seed=3,
    )
    assert [type(r).__name__ for r in hybrid.retrievers] == ["GenerativeRetriever", "BM25Retriever"]
    assert hybrid.retrievers[0].seed == 3 and hybrid.retrievers[0].beam_width == 6
    hybrid.index(dataset)
    parts = [r.search(["red drill", "steel bin"], k=10) for r in hybrid.retrievers]
    out = hybrid.search(["red drill", "steel bin"], k=5)
    expect = reciprocal_rank_fusion(parts, k=5)  # c = 10, equal weights
    assert (out.ids == expect.ids).all()
    hybrid.save(tmp_path / "hy")
    again = load_retriever(tmp_path / "hy")
    assert [type(r).__name__ for r in again.retrievers] == ["GenerativeRetriever", "BM25Retriever"]
    assert (again.search(["red drill", "steel bin"], k=5).ids == out.ids).all()
    # config() names the parts with their options: an unfitted copy, and what reports show
    cfg = hybrid.config()
    assert cfg["parts"] == ["gr", "bm25"] and cfg["part_options"][0]["beam_width"] == 6
    copy = HybridRetriever(**cfg)
    assert [r.config() for r in copy.retrievers] == [r.config() for r in hybrid.retrievers]
    custom = HybridRetriever([type("MyBM25", (BM25Retriever,), {})()])  # not a registered method
    assert custom.config()["parts"] == []
    assert [type(r).__name__ for r in HybridRetriever().retrievers] == [
        "GSIDGenerativeRetriever",
        "BM25Retriever",
    ]  # the default parts
    with pytest.raises(GsidError, match="not both"):
        HybridRetriever([hybrid], parts=["bm25"])
    with pytest.raises(GsidError, match="another hybrid"):
        HybridRetriever(parts=["bm25", "hybrid"])
    with pytest.raises(GsidError, match="not in parts"):
        HybridRetriever(parts=["bm25"], part_options={"gr": {}})
    with pytest.raises(GsidError, match="2 parts"):
        HybridRetriever(parts=["bm25", "bm25"], part_options=[{}])
    with pytest.raises(GsidError, match="no option"):
        HybridRetriever(parts=["bm25"], part_options={"bm25": {"beam_width": 3}})


@pytest.mark.slow
def test_token_memory_mode_trains_and_reloads(tmp_path):
    import torch

    from gsid.models.query_to_id import QueryToID
    from gsid.retrieval.trie import CodeTrie

    texts = ["red cordless drill", "blue garden hose", "white ceiling paint", "steel hammer"]
    codes = np.array([[0, 1], [0, -1], [1, 0], [1, 1]])  # (0,) is an ID and a prefix
    model = QueryToID(
        memory="tokens",
        epochs=2,
        batch_size=4,
        d_model=32,
        n_heads=2,
        dim_feedforward=64,
        num_threads=1,
    ).fit(texts, codes, n_codes=2)
    trie = CodeTrie.from_codes(codes, vocab_size=2)
    res = generate_ids(model, ["drill", "hose"], trie, beam_width=4)
    model.save(tmp_path / "m")
    again = generate_ids(QueryToID.load(tmp_path / "m"), ["drill", "hose"], trie, beam_width=4)
    assert torch.equal(res.nodes, again.nodes)
    assert torch.allclose(res.scores, again.scores, atol=1e-5)


def test_token_memory_mode_reads_a_t5_checkpoint(tmp_path):
    """encoder= a local T5 checkpoint (encoder-decoder): its encoder stack feeds the code
    decoder; saved and reloaded with the model."""
    import torch
    from model_fixtures import save_tiny_t5

    from gsid.models.query_to_id import QueryToID
    from gsid.retrieval.trie import CodeTrie

    texts = ["red cordless drill", "blue garden hose", "white ceiling paint", "steel hammer"]
    t5 = save_tiny_t5(tmp_path / "t5", texts)
    codes = np.array([[0, 1], [0, 0], [1, 0], [1, 1]])
    kw = dict(memory="tokens", epochs=2, batch_size=4, d_model=32, n_heads=2, num_threads=1)
    model = QueryToID(encoder=t5, dim_feedforward=64, **kw).fit(texts, codes, n_codes=2)
    assert type(model._hf[1]).__name__ == "T5EncoderModel"
    trie = CodeTrie.from_codes(codes, vocab_size=2)
    res = generate_ids(model, ["drill", "hose"], trie, beam_width=4)
    assert (res.nodes >= 0).all()
    model.save(tmp_path / "m")
    again = QueryToID.load(tmp_path / "m")
    assert type(again._hf[1]).__name__ == "T5EncoderModel"
    out = generate_ids(again, ["drill", "hose"], trie, beam_width=4)
    assert torch.equal(res.nodes, out.nodes) and torch.allclose(res.scores, out.scores, atol=1e-5)
