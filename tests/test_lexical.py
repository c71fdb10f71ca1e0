"""Lexical generative retrieval on a tiny catalogue: span targets, constrained beam search
(never a span of count 0; a wide beam equals brute-force enumeration), SEAL scoring, the
lexical and seal retrievers (train, search, save/load, hybrid with BM25), bad input."""

import copy
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from gsid.data import Dataset
from gsid.errors import ArtifactError, DataValidationError, GsidError
from gsid.models.lexical.targets import TitleSpans, multi_span_rule, seal_rule
from gsid.retrieval.base import load_retriever
from gsid.retrieval.fusion import HybridRetriever
from gsid.retrieval.lexical import LexicalRetriever, SEALRetriever, generate_spans, seal_rank
from gsid.retrieval.lexical.span_beam import start_tokens
from gsid.text.span_index import SpanIndex

NOUNS = ["drill", "hose", "paint", "hammer", "flooring", "bulb", "pipe", "bin"]
ADJS = ["red", "blue", "white", "steel"]
TINY = {"epochs": 30, "batch_size": 16, "d_model": 32, "d_ff": 64, "n_heads": 2,
        "dropout": 0.0, "vocab_size": 200, "lr": 5e-3, "num_threads": 1, "dpo_epochs": 2}  # fmt: skip


def _dataset(extra_items=()):
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
    items.append({"item_id": "cold", "title": "garden gnome statue"})
    items += list(extra_items)
    return Dataset(items=pd.DataFrame(items), queries=pd.DataFrame(queries),
                   log=pd.DataFrame(log), name="tiny")  # fmt: skip


@pytest.fixture(scope="module")
def dataset():
    return _dataset()


@pytest.fixture(scope="module")
def lexical(dataset):
    # top-2: on 33 items a top-10 holds a relevant item for every beam (no rejected spans)
    return LexicalRetriever(beam_width=8, dpo_retrieve_k=2, model=TINY).index(
        dataset, show_progress=False
    )


def test_multi_span_rule_intent_first_then_rarest():
    # titles: 0 "1 2 3 4", 1 "1 2 5", 2 "1 6": token 1 is common, 3 and 4 are unique
    index = SpanIndex.build([[1, 2, 3, 4], [1, 2, 5], [1, 6]], vocab_size=8)
    spans = TitleSpans(index, max_len=2)
    # the query names tokens 1 and 2: the span "1 2" covers both; then the rarest spans
    got = multi_span_rule(spans, 0, [1, 2, 7], n_spans=3, max_len=2)
    assert got[0] == [1, 2]
    assert got[1:] == [[3], [4]]  # count 1 each, shorter first, earlier first
    assert multi_span_rule(spans, 0, None, n_spans=1, max_len=2) == [[3]]
    seal = seal_rule(spans, 0, [3], n_spans=2, max_len=2, rng=np.random.default_rng(0))
    assert len(seal) == 2 and 3 in seal[0]


def test_search_finds_items_and_only_catalogue_items(lexical, dataset):
    train = dataset.split_queries("train")
    res = lexical.search(train["query"].tolist(), k=5)
    exp = dataset.expected("train")
    hits = [bool(set(r) & exp[q]) for q, r in zip(train["query_id"], res.ids.tolist(), strict=True)]
    assert np.mean(hits) > 0.5
    ids = {i for row in res.ids.tolist() for i in row if i is not None}
    assert ids <= set(dataset.item_ids)
    assert lexical.n_preference_pairs_ >= 0
    assert any(h["stage"] == "dpo" for h in lexical.model_.history_)


@pytest.mark.parametrize(
    "mode, k", [("target", 0), ("policy", 0), ("policy", 2), ("policy-only", 2)]
)
def test_preference_pairs_chosen_retrieves_relevant_rejected_does_not(lexical, dataset, mode, k):
    lx = LexicalRetriever(**{**lexical.config(), "dpo_chosen": mode, "dpo_retrieve_k": k})
    lx.model_, lx.index_, lx.row_item_ = lexical.model_, lexical.index_, lexical.row_item_
    lx.item_ids_ = lexical.item_ids_
    src, chosen, rejected = lx.preference_pairs(dataset)
    assert len(src) == len(chosen) == len(rejected) > 0
    pos = {s: i for i, s in enumerate(dataset.item_ids)}
    pairs = dataset.training_pairs("train")
    rel = pairs.groupby("query")["item_id"].agg(lambda s: {pos[i] for i in s}).to_dict()
    sep, end = lx.model_.sep_id, lx.model_.end_id

    queries = sorted(set(src))  # the mined beams again (decoding is deterministic)
    beams = dict(zip(queries, lx._generate(queries, lx.dpo_beam), strict=True))

    def mined(q, seq):
        return next((b for b in beams[q] if lx.model_.join(b.spans) == seq), None)

    def holds_all(seq):  # the items whose title holds every span of a joined sequence
        spans, cur = [], []
        for t in seq:
            if t in (sep, end):
                spans, cur = ([*spans, tuple(cur)] if cur else spans), []
            else:
                cur.append(t)
        found = [set(lx.row_item_[lx.index_.locate(list(x))[0]].tolist()) for x in spans]
        return set.intersection(*found)

    def retrieves(beam, seq):  # k = 0: all spans held; else the top k of the beam's ranking
        if k == 0:
            return holds_all(seq)
        top, _ = seal_rank(lx.index_, list(beam.spans), list(beam.span_logp), k, lx.row_item_,
                           lx.alpha, lx.coverage, lx.depth, lx.max_locate)  # fmt: skip
        assert len(top) <= k
        return set(top.tolist())

    for q, c, r in zip(src, chosen, rejected, strict=True):
        assert c != r
        # a mined chosen retrieves a relevant item; the span rule's target ("target", and
        # "policy" where no beam does) has every span in a relevant title
        b = mined(q, c)
        hit = retrieves(b, c) & rel[q] if mode != "target" and b else holds_all(c) & rel[q]
        assert hit, "a chosen sequence retrieves a relevant item"
        b = mined(q, r)
        assert b is not None, "a rejected sequence is one the model wrote"
        got = retrieves(b, r)
        assert got and not got & rel[q], "a rejected one retrieves only others"
    with pytest.raises(GsidError, match="dpo_chosen"):
        LexicalRetriever(dpo_chosen="best")
    with pytest.raises(GsidError, match="dpo_retrieve_k"):
        LexicalRetriever(dpo_retrieve_k=-1)


def test_dpo_rounds_mine_again_with_the_new_model(lexical, dataset):
    lx = copy.deepcopy(lexical)
    lx.dpo_chosen, lx.dpo_rounds = "policy", 2
    before = sum(h["stage"] == "dpo" for h in lx.model_.history_)
    first = len(lx.preference_pairs(dataset)[0])
    lx.optimise_preferences(dataset)
    # two rounds of dpo_epochs (2) each; the second round's pairs come from the first's model
    assert sum(h["stage"] == "dpo" for h in lx.model_.history_) == before + 4
    assert lx.n_preference_pairs_ > first > 0
    assert LexicalRetriever(**lx.config()).dpo_rounds == 2
    with pytest.raises(GsidError, match="dpo_rounds must be an integer >= 1"):
        LexicalRetriever(dpo_rounds=0)


def test_generated_spans_always_occur(lexical):
    rng = np.random.default_rng(0)
    words = NOUNS + ADJS + ["pro", "gnome", "zebra", "cordless", "kit", "garden"]
    queries = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(300)]
    n_spans = 0
    for spans in lexical.generated_spans(queries):
        counts = lexical.index_.count([list(s) for s in spans])
        assert (counts > 0).all()
        n_spans += len(spans)
    assert n_spans > 300


def test_wide_beam_equals_brute_force(lexical):
    model, index = lexical.model_, lexical.index_
    start = start_tokens(index, model.continuation_mask(), model.punctuation_mask())
    punct = model.punctuation_mask()
    # every span of 1..2 tokens that the constraint allows (S = 1: span SEP END)
    spans = set()
    for r in range(index.n_items):
        t = index.title(r).tolist()
        for s in range(len(t)):
            for n in (1, 2):
                span = tuple(t[s : s + n])
                if len(span) == n and start[span[0]] and not punct[span[-1]]:
                    spans.add(span)
    spans = sorted(spans)
    query = "blue hose"
    seqs = [[*s, model.sep_id, model.end_id] for s in spans]
    mask = np.ones((len(seqs), 4), np.float32)
    with torch.no_grad():
        brute = model.sequence_logprobs([query] * len(seqs), seqs, mask)
    order = np.argsort(-brute)[:10]
    beams = generate_spans(model, index, [query], beam_width=len(spans) + 5, n_spans=1,
                           max_len=2, start_ok=start, punctuation=punct)[0]  # fmt: skip
    assert len(beams) == len(spans)
    got = [(b.spans[0], b.score) for b in beams[:10]]
    assert [g[0] for g in got] == [spans[i] for i in order]
    np.testing.assert_allclose([g[1] for g in got], brute[order], rtol=1e-4, atol=1e-4)
    # each beam carries its span's suffix-array interval (seal_rank reads it, not re-walking)
    for b in beams:
        assert b.span_interval == (index.interval(list(b.spans[0])),)


def test_seal_rank_formula():
    index = SpanIndex.build([[1, 2, 3], [1, 4], [5]], vocab_size=6)
    # span (2, 3) is rarer than (1,): item 0 ranks first; item 2 matches nothing
    items, scores = seal_rank(index, [(1,), (2, 3)], [np.log(0.5), np.log(0.5)], k=3)
    assert items.tolist() == [0, 1]
    # by hand: P(n) = count / 6 tokens; w = log(p/(1-p)) - log(P/(1-P)), score = w^2 * cover
    w1 = np.log(1.0) - np.log((2 / 6) / (4 / 6))
    w23 = np.log(1.0) - np.log((1 / 6) / (5 / 6))
    assert scores[1] == pytest.approx(w1**2, rel=1e-5)
    assert scores[0] == pytest.approx(w23**2 + w1**2, rel=1e-5)  # disjoint tokens: full cover


def test_seal_rank_skips_nested_spans_and_discounts_covered_tokens():
    index = SpanIndex.build([[1, 2, 3], [2, 9], [2, 8], [1, 2, 7]], vocab_size=10)
    spans = [(1, 2), (2,), (2, 3)]  # counts 2, 4, 1; all three in item 0
    items, scores = seal_rank(index, spans, [np.log(0.5)] * 3, k=1)
    T = index.n_tokens

    def w(count):
        return -np.log((count / T) / (1 - count / T))

    # (2, 3) first (rarest: the largest w), then (1, 2) with token 2 already matched
    # (cover 1 - 0.8 + 0.8 * 1/2), and (2,) lies inside both: skipped
    assert items.tolist() == [0]
    assert scores[0] == pytest.approx(w(1) ** 2 + w(2) ** 2 * 0.6, rel=1e-5)


@pytest.mark.parametrize("segments", [1, 2])
def test_seal_rank_frequent_spans_checked_in_candidate_titles(segments):
    # a span over max_locate occurrences, once depth candidates exist, is looked for in the
    # candidates' titles (every segment of an item) instead of located: the same scores
    rng = np.random.default_rng(0)
    n = 60
    titles = [rng.integers(1, 9, rng.integers(3, 7)).tolist() for _ in range(n * segments)]
    index = SpanIndex.build(titles, vocab_size=9)
    row_item = np.tile(np.arange(n), segments) if segments > 1 else None
    spans = [(1, 2), (3, 4), (5, 6), (2,), (3,), (7, 8)]
    logp = np.log([0.3, 0.2, 0.4, 0.1, 0.25, 0.3])
    lo, hi = index.intervals([list(s) for s in spans])
    assert (hi - lo)[[3, 4]].min() > 10 and (hi - lo)[[0, 1, 2, 5]].max() <= 10
    ref = seal_rank(index, spans, logp, n, row_item, depth=n)  # every item fully scored
    got = seal_rank(index, spans, logp, 5, row_item, depth=5, max_locate=10, intervals=(lo, hi))
    ref_score = dict(zip(ref[0].tolist(), ref[1].tolist(), strict=True))
    assert len(got[0]) == 5
    for item, score in zip(got[0].tolist(), got[1].tolist(), strict=True):
        assert score == pytest.approx(ref_score[item], rel=1e-6)


def test_save_load_same_results(lexical, dataset, tmp_path):
    qs = ["red drill", "steel pipe", "garden gnome"]
    before = lexical.search(qs, k=5)
    lexical.save(tmp_path / "lx")
    back = load_retriever(tmp_path / "lx")
    after = back.search(qs, k=5)
    assert before.ids.tolist() == after.ids.tolist()
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)
    sa = tmp_path / "lx" / "spans" / "sa.npy"
    sa.write_bytes(sa.read_bytes()[:-4])
    with pytest.raises(ArtifactError):
        load_retriever(tmp_path / "lx")


def test_unknown_query_returns_empty_with_warning(lexical, caplog):
    with caplog.at_level(logging.WARNING):
        res = lexical.search(["\u4e00\u4e01", "red drill"], k=3)
    assert res.ids[0].tolist() == [None, None, None]
    assert res.ids[1][0] is not None
    assert "no known token" in caplog.text


def test_seal_and_hybrid(dataset):
    seal = SEALRetriever(beam_width=10, model={**TINY, "epochs": 15}).index(
        dataset, show_progress=False
    )
    res = seal.search(["red drill"], k=5)
    assert res.ids[0][0] is not None
    hy = HybridRetriever(
        parts=["seal", "bm25"], part_options={"seal": {"model": {**TINY, "epochs": 2}}}
    )
    hy.index(dataset, show_progress=False)
    assert hy.search(["blue hose"], k=5).ids[0][0] is not None


def test_gsid_pretraining_before_sft(dataset, tmp_path):
    plain = LexicalRetriever(beam_width=4, dpo=False, model={**TINY, "epochs": 1})
    plain.index(dataset, show_progress=False)
    lx = LexicalRetriever(beam_width=4, dpo=False,
                          model={**TINY, "epochs": 1, "pretrain_batches": 4})  # fmt: skip
    lx.index(dataset, show_progress=False)
    stages = [h["stage"] for h in lx.model_.history_]
    assert stages.count("pretrain") >= 1 and stages[-1] == "sft"
    assert lx.model_.vocab_size == plain.model_.vocab_size + 3  # [QGEN] [CLOZE] [SUFFIX]
    res = lx.search(["red drill"], k=3)
    lx.save(tmp_path / "lx")
    back = load_retriever(tmp_path / "lx")
    assert back.search(["red drill"], k=3).ids.tolist() == res.ids.tolist()
    with pytest.raises(GsidError, match="pretrain_batches"):
        LexicalRetriever(model={"pretrain_batches": -1})


def test_a_second_field_is_indexed_as_segments(tmp_path):
    ds = _dataset()
    ds.items["brand"] = ["acme" if i % 2 else "zenith" for i in range(len(ds.items))]
    lx = LexicalRetriever(beam_width=4, dpo=False, fields=["title", "brand"],
                          model={**TINY, "epochs": 1})  # fmt: skip
    lx.index(ds, show_progress=False)
    n = len(ds.items)
    assert lx.index_.n_items == 2 * n and lx.row_item_.tolist() == list(range(n)) * 2
    # the brand's rows belong to the items: a span located there maps back to an item
    rows, _ = lx.index_.locate(lx.model_.tokenize(["zenith"])[0])
    assert rows.min() >= n and set(lx.row_item_[rows].tolist()) == set(range(0, n, 2))
    res = lx.search(["zenith drill"], k=5)
    assert {i for i in res.ids[0] if i is not None} <= set(ds.item_ids)
    lx.save(tmp_path / "lx")
    assert load_retriever(tmp_path / "lx").search(["zenith drill"], k=5).ids.tolist() == (
        res.ids.tolist()
    )


def test_the_tokengrams_backend_builds_the_same_span_index(lexical, dataset):
    pytest.importorskip("tokengrams")
    other = copy.copy(lexical)
    other.index_backend = "tokengrams"
    other._build_index(other._segments(dataset), len(dataset.items))
    np.testing.assert_array_equal(other.index_.sa, lexical.index_.sa)
    assert other.config()["index_backend"] == "tokengrams"


def test_bad_input(dataset):
    for bad in ({"n_spans": 0}, {"max_span_tokens": 0}, {"beam_width": 0}):
        with pytest.raises(GsidError, match=">= 1"):
            LexicalRetriever(**bad)
    with pytest.raises(GsidError, match="span_rule"):
        LexicalRetriever(span_rule="nope")
    with pytest.raises(GsidError, match="unknown span model option"):
        LexicalRetriever(model={"nope": 1})
    with pytest.raises(GsidError, match="index_backend 'sais' is unknown"):
        SEALRetriever(index_backend="sais")
    with pytest.raises(DataValidationError, match="fields"):
        LexicalRetriever(fields=["colour"], model={**TINY, "epochs": 1}).index(dataset)


def test_titles_that_tokenise_to_nothing(tmp_path):
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["\u200b", "\u200b\u200b"]})
    queries = pd.DataFrame({"query_id": ["q"], "query": ["x"], "split": ["train"]})
    log = pd.DataFrame({"query_id": ["q"], "item_id": ["a"]})
    ds = Dataset(items=items, queries=queries, log=log, name="blank")
    lx = LexicalRetriever(model={**TINY, "epochs": 1})
    with pytest.raises((DataValidationError, GsidError), match=r"nothing|non-empty"):
        lx.index(ds)
    with pytest.raises(Exception, match="index it first"):
        lx.save(tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _tiny_t5(vocab: int, seed: int):
    """A random 2 + 2-layer T5 in eval mode, and the T5Stepper class."""
    from transformers import T5Config, T5ForConditionalGeneration

    from gsid.models.lexical.t5_step import T5Stepper

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=2, decoder_start_token_id=0, pad_token_id=0,
                   eos_token_id=2, dropout_rate=0.0)  # fmt: skip
    return T5ForConditionalGeneration(cfg).eval(), T5Stepper


def test_t5_stepper_matches_the_full_forward():
    net, T5Stepper = _tiny_t5(300, seed=0)
    x = torch.randint(5, 300, (2, 7))
    mask = torch.ones_like(x)
    mask[1, 5:] = 0
    dec_in = torch.cat([torch.zeros(2, 1, dtype=torch.long), torch.randint(5, 300, (2, 4))], 1)
    with torch.no_grad():
        full = net(input_ids=x, attention_mask=mask, decoder_input_ids=dec_in).logits
        enc = net.encoder(input_ids=x, attention_mask=mask).last_hidden_state
        stepper = T5Stepper(net)
        state = stepper.start(enc, mask)
        steps = torch.stack([stepper.step(state, dec_in[:, t]) for t in range(5)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)


def test_t5_stepper_decodes_only_the_rows_asked_for():
    # beams that finish leave the decoded rows (reorder names the rows that go on): the rest
    # score as in the full forward of their own sequences
    net, T5Stepper = _tiny_t5(200, seed=1)
    W = 3
    x = torch.randint(5, 200, (2, 6))
    mask = torch.ones_like(x)
    mask[0, 4:] = 0
    dec_in = torch.cat([torch.zeros(2 * W, 1, dtype=torch.long),
                        torch.randint(5, 200, (2 * W, 3))], 1)  # fmt: skip
    with torch.no_grad():
        full = net(input_ids=x.repeat_interleave(W, 0), attention_mask=mask.repeat_interleave(W, 0),
                   decoder_input_ids=dec_in).logits  # fmt: skip
        stepper = T5Stepper(net)
        state = stepper.start(net.encoder(input_ids=x, attention_mask=mask).last_hidden_state,
                              mask, beams=W)  # fmt: skip
        rows = torch.arange(2 * W)
        for t, keep in enumerate([None, [0, 2, 4, 5], [1, 2], [0]]):
            if keep is not None:
                stepper.reorder(state, torch.tensor(keep))
                rows = rows[keep]
            got = stepper.step(state, dec_in[rows, t], None if t == 0 else rows)
            torch.testing.assert_close(got, full[rows, t], rtol=1e-4, atol=1e-4)
