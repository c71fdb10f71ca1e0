"""Starting a GSID run from a trained model (fine-tuning, e.g. on a grown catalogue): which
config fields may change, and the copy of the model the run trains."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from gsid.errors import GsidError
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel

# GSIDConfig fields a fine-tuning run may change: they set how long and how fast it trains, not
# the shape or the meaning of the model it starts from (everything else must match). The dead-code
# knobs are here because re-seeding a code moves the items that still use it (reseed_dead=False
# keeps every old code in place during a short fine-tune).
FINE_TUNE_FIELDS = frozenset(
    {
        "reseed_dead",
        "dead_window",
        "dead_threshold",
        "epochs_per_level",
        "max_batches_per_level",
        "warmup_batches",
        "lr",
        "encoder_lr",
        "weight_decay",
        "grad_clip",
        "batch_size",
        "seed",
        "device",
        "encode_batch_size",
        "checkpoint_every",
    }
)


def fine_tune_start(
    init_model: GSIDModel | str | os.PathLike, config: GSIDConfig, device
) -> GSIDModel:
    """A copy of `init_model` (weights, codebooks, EMA buffers) carrying `config`, which may
    differ from the model's own config only in FINE_TUNE_FIELDS; the caller's model is left
    untouched."""
    if isinstance(init_model, (str, os.PathLike)):
        init = GSIDModel.load(init_model, device=device)
    elif isinstance(init_model, GSIDModel):
        init = init_model
    else:
        raise GsidError(
            f"init_model must be a GSIDModel or the directory of a saved one, got "
            f"{type(init_model).__name__}"
        )
    old, new = init.config.to_dict(), config.to_dict()
    diff = sorted(k for k in new if k not in FINE_TUNE_FIELDS and old.get(k) != new[k])
    if diff:
        detail = ", ".join(f"{k}: model {old.get(k)!r} vs config {new[k]!r}" for k in diff)
        raise GsidError(
            f"init_model was trained with another model configuration ({detail}); a fine-tuning "
            f"config may change only {sorted(FINE_TUNE_FIELDS)}: start from "
            f"model.config.replace(...) or train a fresh model without init_model"
        )
    model = GSIDModel(config, copy.deepcopy(init.backbone), init.tokenizer)
    model.load_state_dict(init.state_dict(), strict=True)  # codebooks + EMA buffers included
    source = getattr(init, "encoder_source_", None)
    if source is not None and Path(source).exists():  # its pooled outputs stay cacheable
        model.encoder_source_ = source
    return model.to(device)
