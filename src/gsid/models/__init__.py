"""Models that produce semantic IDs: GSID (the generative semantic indexer: encoder-decoder +
progressive codebooks, its training, pre-training and code assignment) and the query -> ID
seq2seq model of `gr`. Below retrieval: nothing here imports a retriever.

    from gsid.models import GSIDConfig, train_gsid
    model, ids = train_gsid(dataset, GSIDConfig(n_levels=4, codebook_size=128), "runs/gsid")

Heavy modules (torch, transformers) load on first use of a name, never at import of gsid.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GSIDConfig": "gsid.models.config",
    "GSIDModel": "gsid.models.model",
    "GSIDTrainer": "gsid.models.trainer",
    "train_gsid": "gsid.models.train",
    "assign": "gsid.models.assign",
    "encode": "gsid.models.assign",
    "ami_with_categories": "gsid.models.assign",
    "pretrain": "gsid.models.pretrain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gsid.models' has no attribute {name!r}")
