"""GSID model parts: config, codebooks, losses, sampling, model save/load (tiny T5)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from model_fixtures import TINY_T5, ds_fixture, one_torch_thread_fixture, t5_dir_fixture  # noqa: F401 (pytest fixtures)

from gsid.errors import ArtifactError, GsidError
from gsid.models.codebooks import Codebooks
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.objective import code_kl, commitment
from gsid.models.sampling import TrainData, batches, positive_mask, pseudo_query
from gsid.text.contrastive import multi_positive_info_nce as info_nce


def test_config_roundtrip_and_errors():
    cfg = GSIDConfig(n_levels=3, codebook_size=16)
    assert GSIDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(GsidError, match="valid options"):
        GSIDConfig.from_dict({"n_level": 3})
    with pytest.raises(GsidError, match="backbone"):
        GSIDConfig(backbone="gpt")
    with pytest.raises(GsidError, match="model_path"):
        GSIDConfig(backbone="t5")
    with pytest.raises(GsidError, match="batch_size"):
        GSIDConfig(batch_size=1)


def test_codebook_ema_moves_towards_assigned_mean():
    torch.manual_seed(0)
    cb = Codebooks(1, 4, 8, ema=True, decay=0.5)
    x = torch.nn.functional.normalize(torch.randn(1, 8), dim=-1).repeat(10, 1)
    codes = torch.zeros(10, dtype=torch.long)
    before = torch.dot(cb.table(0)[0], x[0])
    for _ in range(10):
        cb.ema_update(0, x, codes)
    after = torch.dot(cb.table(0)[0], x[0])
    assert after > before and after > 0.99
    assert not cb.weight.requires_grad


def test_dead_codes_are_reseeded():
    cb = Codebooks(1, 4, 8, ema=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8)
    for _ in range(3):
        cb.track(0, torch.zeros(6, dtype=torch.long))
    assert cb.reseed_dead(0, x, window=5, threshold=0, generator=g) == 0  # window not over
    for _ in range(2):
        cb.track(0, torch.zeros(6, dtype=torch.long))
    assert cb.reseed_dead(0, x, window=5, threshold=0, generator=g) == 3
    # a re-seeded code sits next to one of the batch representations
    sims = cb.table(0)[1:] @ torch.nn.functional.normalize(x, dim=-1).T
    assert (sims.max(1).values > 0.99).all()


def test_gradient_codebooks_are_parameters():
    cb = Codebooks(2, 4, 8, ema=False)
    assert cb.weight.requires_grad and cb.weight.shape == (2, 4, 8)
    assert [n for n, p in cb.named_parameters() if p.requires_grad] == ["weight"]
    # the code logits pull gradient into the scored level's codebook only
    cb.logits(torch.randn(3, 8), 1).logsumexp(-1).sum().backward()
    assert cb.weight.grad[1].abs().sum() > 0 and torch.equal(cb.weight.grad[0], torch.zeros(4, 8))
    ema = Codebooks(2, 4, 8, ema=True)
    assert not any(p.requires_grad for p in ema.parameters())  # moved by EMA updates only


def test_info_nce_multi_positive():
    q = torch.eye(4)[[0, 0, 1, 2]]
    i = torch.eye(4)[:3]
    pos = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    good = info_nce(q, i, pos, 0.1)
    bad = info_nce(q, i, pos[:, [1, 2, 0]], 0.1)
    assert good < 0.01 < bad
    # a query positive for two items is not punished for either
    pos2 = pos.clone()
    pos2[0, 1] = True
    assert torch.isfinite(info_nce(q, i, pos2, 0.1))


def test_kl_and_commitment():
    lg = torch.randn(5, 7)
    assert code_kl(lg, lg).abs() < 1e-6
    # KL(p_item || p_query), averaged over rows
    p_item, p_query = lg.neg().softmax(-1), lg.softmax(-1)
    expected = (p_item * (p_item.log() - p_query.log())).sum(-1).mean()
    torch.testing.assert_close(code_kl(lg, -lg), expected)
    assert expected > 0
    codes = torch.tensor([[1], [2], [3], [4], [5]])
    sharp = torch.full((5, 7), -10.0)
    sharp[torch.arange(5), codes[:, 0]] = 10.0
    assert commitment([sharp], codes) < 1e-3
    assert commitment([], codes) == 0


def test_sampling_multi_query_and_prefix_batches(ds):
    data = TrainData.from_dataset(ds, "train", pseudo_per_item=1)
    assert all(data.item_queries)  # logged queries or one pseudo-query each
    cfg = GSIDConfig(batch_size=8, queries_per_item=3)
    items, queries, q_item = next(batches(data, cfg, 0, 0))
    assert len(queries) == 3 * len(items)
    assert np.bincount(q_item).tolist() == [3] * len(items)
    pos = positive_mask(items, queries, q_item, data.query_sets())
    assert pos[np.arange(len(queries)), q_item].all()
    # prefix-grouped: with 2 prefixes, batches hold one prefix each until a group runs out
    codes = np.repeat(np.array([[0], [1]]), data.n_items // 2, axis=0)
    mixed = 0
    for items, _, _ in batches(data, cfg, 1, 0, codes):
        mixed += len(np.unique(codes[items, 0])) > 1
    assert mixed <= 1
    single = GSIDConfig(batch_size=8, multi_query=False)
    items, queries, _ = next(batches(data, single, 0, 0))
    assert len(queries) == len(items)
    # same seed/level/epoch -> the same schedule (what resuming relies on)
    a = [b[0].tolist() for b in batches(data, cfg, 1, 2, codes)]
    assert a == [b[0].tolist() for b in batches(data, cfg, 1, 2, codes)]


def test_pseudo_query_is_a_title_span():
    rng = np.random.default_rng(0)
    t = "acme cordless drill model 7"
    for _ in range(10):
        assert pseudo_query(t, rng) in t


def test_t5_model_shapes_and_save_load(tmp_path, t5_dir):
    cfg = GSIDConfig(backbone="t5", model_path=t5_dir, n_levels=3, codebook_size=8)
    model = GSIDModel.build(cfg).eval()
    mem, mask = model.encode_texts(["cordless drill", "garden hose nozzle"])
    assert mem.shape[:2] == mask.shape and mem.shape[2] == 32
    d = model.decode(mem, mask, torch.tensor([[1, 2], [3, 4]]))
    assert d.shape == (2, 3, 32)
    codes, states = model.generate(mem, mask)
    assert codes.shape == (2, 3) and states.shape == (2, 3, 32)
    assert int(codes.max()) < 8
    model.save(tmp_path / "m")
    again = GSIDModel.load(tmp_path / "m").eval()
    c2, s2 = again.generate(*again.encode_texts(["cordless drill", "garden hose nozzle"]))
    assert torch.equal(codes, c2) and torch.allclose(states, s2, atol=1e-6)
    assert again.config == cfg


def test_random_t5_from_config_dict():
    cfg = GSIDConfig(backbone="t5", t5_config=TINY_T5, n_levels=2, codebook_size=4)
    model = GSIDModel.build(cfg).eval()
    codes, _ = model.generate(*model.encode_texts(["a b c"]))
    assert codes.shape == (1, 2)


def test_pooled_memory(t5_dir):
    cfg = GSIDConfig(backbone="t5", model_path=t5_dir, n_levels=2, codebook_size=4, memory="pooled")
    model = GSIDModel.build(cfg).eval()
    mem, mask = model.encode_texts(["cordless drill", "hose"])
    assert mem.shape == (2, 1, 32) and mask.all()
    x = model.pooled_features(["cordless drill", "hose"])
    assert torch.allclose(x * 32**0.5, mem[:, 0], atol=1e-4)  # pooled memory is scaled by sqrt(H)


def test_load_missing_model_is_artifact_error(tmp_path):
    with pytest.raises(ArtifactError):
        GSIDModel.load(tmp_path / "nothing")


def test_wordpieces_are_bpe_merges_with_ties_broken_by_text():
    from gsid.text.catalogue_tokenizer import learn_wordpieces

    words = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
    pieces = learn_wordpieces(words, 30)
    alphabet = ["##e", "##w", "##s", "##t", "##o", "l", "n", "##d", "##i", "w", "##r"]
    assert pieces[:11] == alphabet  # most frequent first, ties by text
    # (##e, ##s) and (##s, ##t) both occur 9 times: the pair that sorts first is merged first
    assert pieces[11:] == ["##es", "##est", "##ow", "low", "##ew", "##ewest", "newest",
                           "##dest", "##idest", "widest", "##er", "lower"]  # fmt: skip
    assert learn_wordpieces(words, 13) == pieces[:13]
    assert learn_wordpieces(words, 30, min_frequency=4) == pieces[:18]  # no pair of 3: stop


def test_catalogue_tokenizer_is_the_same_in_every_process(tmp_path):
    # tokenizers' own trainer broke ties in hash order, which changes from process to process
    import subprocess
    import sys

    code = (
        "import sys; from gsid.text.catalogue_tokenizer import train_catalogue_tokenizer as t;"
        "t([f'{a} {b} kit' for a in 'red blue green steel oak' for b in "
        "['drill', 'drills', 'driver', 'hose', 'hoses']] * 3, 60, sys.argv[1])"
    )
    vocab = []
    for seed in ("1", "2"):
        out = tmp_path / f"tok{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env)
        vocab.append((out / "tokenizer.json").read_text())
    assert vocab[0] == vocab[1]


def test_t5_from_scratch_with_a_catalogue_tokenizer(tmp_path, ds):
    from model_fixtures import TINY_T5

    from gsid.models.train import train_gsid
    from gsid.text.catalogue_tokenizer import train_catalogue_tokenizer

    cfg = GSIDConfig(
        backbone="t5",
        t5_config=TINY_T5,
        tokenizer_vocab=300,
        n_levels=2,
        codebook_size=4,
        batch_size=16,
        epochs_per_level=1,
        warmup_batches=1,
    )
    model, _ = train_gsid(ds, cfg, tmp_path / "run", show_progress=False)
    tok = model.tokenizer
    assert len(tok) <= 300 and tok.pad_token_id == 0 and "cordless" in tok.get_vocab()
    assert model.backbone.get_input_embeddings().num_embeddings == len(tok)
    again = GSIDModel.load(tmp_path / "run" / "model")
    assert again.tokenizer.get_vocab() == tok.get_vocab()
    a = model.eval().generate(*model.encode_texts(["cordless drill"]))[0]
    assert torch.equal(a, again.generate(*again.encode_texts(["cordless drill"]))[0])
    no_dir, _ = train_gsid(ds, cfg, None, show_progress=False)  # the tokenizer lives in a temp dir
    assert no_dir.tokenizer.get_vocab() == tok.get_vocab()  # the same texts, the same pieces
    with pytest.raises(GsidError, match="tokenizer_vocab"):
        GSIDConfig(tokenizer_vocab=100)  # MiniLM keeps its own tokenizer
    with pytest.raises(GsidError, match="non-empty"):
        train_catalogue_tokenizer(["", " "], 100, tmp_path / "tok")
    with pytest.raises(GsidError, match="vocab_size"):
        train_catalogue_tokenizer(["a b"], 3, tmp_path / "tok")
