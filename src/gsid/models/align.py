"""Step 0 of GSID training: align the encoder with the query-item contrastive loss alone, before
the code steps.

    encoder_dir = align_encoder(model, dataset, cfg, work_dir)   # cfg.align_encoder = {"epochs": 1}

The paper trains the encoder jointly with every code step. On a CPU budget that is out of reach
(every batch would run MiniLM forward and backward over items and queries at each of the T
steps), so gsid spends the encoder's share of the alignment loss once, up front: the encoder is
fine-tuned on the train split's (query, relevant item) pairs with in-batch InfoNCE (the same loss
as the code steps' contrastive term, through gsid.text.finetune and sentence-transformers), then
the code steps run on top of it (frozen and cached when `freeze_encoder`). Domain-adaptive
pre-training, when enabled, runs first and its encoder is the starting point.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gsid.errors import GsidError
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel

logger = logging.getLogger(__name__)


def alignment_config(cfg: GSIDConfig):
    """The FineTuneConfig of step 0: cfg.align_encoder's fields over the GSID run's seed,
    device and sequence length. One shared tower: queries and items share GSID's encoder."""
    from gsid.text.finetune import FineTuneConfig

    d = {"seed": cfg.seed, "device": cfg.device, "max_seq_length": cfg.max_seq_length}
    d.update(cfg.align_encoder or {})
    ft = FineTuneConfig.from_dict(d)
    if ft.towers != "shared":
        raise GsidError(
            f"align_encoder towers must be 'shared' (GSID reads queries and items with one "
            f"encoder), got {ft.towers!r}"
        )
    return ft


def align_encoder(
    model: GSIDModel,
    dataset,
    cfg: GSIDConfig,
    work_dir: str | os.PathLike,
    split: str = "train",
    show_progress: bool | None = None,
    cache_dir: str | None = None,
) -> str:
    """Fine-tune the model's encoder in place on `split`'s pairs; returns the sentence-transformers
    directory of the aligned encoder (used to read its pooled outputs through the shared cache)."""
    if model.is_t5:
        raise GsidError(
            "align_encoder works with the MiniLM backbone only (a sentence-transformers encoder); "
            "for a T5 backbone train the encoder jointly (freeze_encoder=False)"
        )
    from transformers import AutoModel

    from gsid.text.encoders import resolve_model_path
    from gsid.text.finetune import finetune_encoder

    work = Path(work_dir)
    if cfg.pretrain_batches > 0 or cfg.model_path is not None:
        # start from the encoder as it is now (pre-trained): a plain HF directory, which
        # sentence-transformers reads with mean pooling (MiniLM's own pooling)
        base = work / "pretrained-encoder"
        model.backbone.save_pretrained(str(base))
        model.tokenizer.save_pretrained(str(base))
        base_ref = str(base)
    else:
        base_ref = resolve_model_path("minilm")
    ft = finetune_encoder(
        dataset,
        work / "aligned-encoder",
        alignment_config(cfg),
        base_ref,
        split=split,
        show_progress=show_progress,
        cache_dir=cache_dir,  # grouped batches embed the items with the starting encoder
    )
    aligned = AutoModel.from_pretrained(ft.item_model, add_pooling_layer=False)
    model.backbone.load_state_dict(aligned.state_dict())
    logger.info("encoder aligned on %s pairs: %s", split, ft.info.get("stats", ft.info))
    return ft.item_model
