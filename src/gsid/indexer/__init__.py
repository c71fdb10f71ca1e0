"""GSID: the generative semantic indexer (encoder-decoder + progressive codebooks).

    from gsid.indexer import GSIDConfig, train_gsid
    model, ids = train_gsid(dataset, GSIDConfig(n_levels=4, codebook_size=128), "runs/gsid")

Heavy modules (torch, transformers) load on first use of a name, never at import of gsid.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GSIDConfig": "gsid.indexer.config",
    "GSIDModel": "gsid.indexer.model",
    "GSIDTrainer": "gsid.indexer.train",
    "train_gsid": "gsid.indexer.train",
    "assign": "gsid.indexer.assign",
    "encode": "gsid.indexer.assign",
    "evaluate_gsid": "gsid.indexer.assign",
    "ami_with_categories": "gsid.indexer.assign",
    "GSIDRetriever": "gsid.indexer.retriever",
    "pretrain": "gsid.indexer.pretrain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gsid.indexer' has no attribute {name!r}")
