"""Domain-adaptive pre-training: task tokens, the three tasks, the encoder actually moves."""

from __future__ import annotations

import numpy as np
import torch
from model_fixtures import ds_fixture, one_torch_thread_fixture, t5_dir_fixture  # noqa: F401 (pytest fixtures)

from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.pretrain import TASK_TOKENS, cloze, make_examples, pretrain
from gsid.models.sampling import TrainData
from gsid.models.train import train_gsid


def test_cloze_masks_spans():
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = cloze("acme cordless drill driver model 7", rng, "[MASK]")
        assert "[MASK]" in out and "[MASK] [MASK]" not in out


def test_examples_per_task(ds):
    data = TrainData.from_dataset(ds, "train", 1)
    rng = np.random.default_rng(0)
    rows = np.arange(5)
    src, tgt = make_examples(data, rows, "qgen", rng, "[MASK]", "[SEP]")
    assert src == [data.item_texts[n] for n in rows]
    assert all(t in data.item_queries[n] for t, n in zip(tgt, rows, strict=True))
    src, tgt = make_examples(data, rows, "suffix", rng, "[MASK]", "[SEP]")
    for s, t, n in zip(src, tgt, rows, strict=True):
        prefix = s.split("[SEP]")[1].strip()
        assert f"{prefix} {t}".strip() == data.item_texts[n]


def test_pretrain_t5_moves_encoder_and_keeps_training(tmp_path, ds, t5_dir):
    cfg = GSIDConfig(
        backbone="t5",
        model_path=t5_dir,
        n_levels=2,
        codebook_size=4,
        batch_size=12,
        pretrain_lr=1e-2,
    )
    model = GSIDModel.build(cfg)
    data = TrainData.from_dataset(ds, "train", 1)
    before = [p.detach().clone() for p in model.encoder_parameters()]
    log = pretrain(model, data, cfg, n_batches=8, show_progress=False)
    assert all(t in model.tokenizer.get_vocab() for t in TASK_TOKENS)
    assert log[-1]["loss"] < log[0]["loss"]
    assert set(log[0]) >= {"qgen", "cloze", "suffix"}
    moved = any(
        not torch.equal(a, b) for a, b in zip(before, model.encoder_parameters(), strict=True)
    )
    assert moved
    # end to end: pre-training then GSID training, saved with the grown tokenizer
    cfg2 = cfg.replace(pretrain_batches=3, epochs_per_level=1, warmup_batches=1)
    _, ids = train_gsid(ds, cfg2, tmp_path / "run", show_progress=False)
    assert ids.provenance["pretrained"] is True
    again = GSIDModel.load(tmp_path / "run" / "model")
    assert "[QGEN]" in again.tokenizer.get_vocab()
