"""What the GSID decoder reads: the pooled encoder outputs of items and queries, read once
through the shared embedding cache when the encoder is frozen (or a live encoder pass)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData


class Features:
    """Decoder memory for item rows and query texts: cached pooled vectors (frozen encoder,
    pooled memory) or a live encoder pass (trainable encoder / token memory)."""

    def __init__(
        self,
        model: GSIDModel,
        data: TrainData,
        cache_dir: str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self.model, self.data = model, data
        self.item_x: torch.Tensor | None = None
        self.query_row: dict[str, int] = {}
        self.query_x: torch.Tensor | None = None
        if model.config.cached_features:
            queries = data.all_queries()
            self.query_row = {q: i for i, q in enumerate(queries)}
            self.item_x = pooled_features(model, data.item_texts, cache_dir, show_progress)
            self.query_x = pooled_features(model, queries, cache_dir, show_progress)

    def items(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.item_x is not None:
            return self.model.memory_from_features(self.item_x[torch.as_tensor(rows)])
        return self.model.encode_texts([self.data.item_texts[int(n)] for n in rows])

    def queries(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.query_x is not None:
            idx = torch.as_tensor([self.query_row[q] for q in texts], dtype=torch.long)
            return self.model.memory_from_features(self.query_x[idx])
        return self.model.encode_texts(texts)


def pooled_features(
    model: GSIDModel, texts: list[str], cache_dir: str | None, show_progress: bool | None = None
) -> torch.Tensor:
    """(N, H) pooled encoder outputs. A frozen encoder that is a sentence-transformers directory
    (the packaged MiniLM, `model_path`, or the aligned encoder of step 0) is read through the
    on-disk embedding cache shared with the other gsid tools (same mean-pool + normalise)."""
    from gsid.text.encoders import DEFAULT_MODEL, SentenceEncoder

    cfg = model.config
    source = getattr(model, "encoder_source_", None)
    untouched = cfg.backbone == "minilm" and cfg.pretrain_batches == 0 and cfg.align_encoder is None
    if source is None and untouched:  # the starting encoder, untouched
        source = cfg.model_path or DEFAULT_MODEL
    if source is not None:
        enc = SentenceEncoder(
            source,
            device=str(model.device),
            batch_size=cfg.encode_batch_size,
            max_seq_length=cfg.max_seq_length,
        )
        return torch.from_numpy(enc.encode_cached(list(texts), cache_dir, show_progress))
    if not cfg.cached_features:  # the encoder trains: its outputs are not worth keeping
        return model.pooled_features(list(texts), cfg.encode_batch_size)
    # a frozen encoder inside a loaded model: cached under a fingerprint of its weights
    from gsid.text.embedding_cache import cached_rows

    texts = list(texts)
    return torch.from_numpy(
        cached_rows(
            encoder_fingerprint(model),
            texts,
            cache_dir,
            lambda todo: model.pooled_features(todo, cfg.encode_batch_size).numpy(),
        )
    )


def encoder_fingerprint(model: GSIDModel) -> str:
    """A hash of the encoder's weights and sequence length (computed once per model object)."""
    fp = getattr(model, "_encoder_fp", None)
    if fp is None:
        h = hashlib.sha256(f"gsid-encoder|{model.config.max_seq_length}".encode())
        for name, t in sorted(model.encoder_module().state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        fp = model._encoder_fp = h.hexdigest()
    return fp
