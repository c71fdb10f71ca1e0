"""A static (bag-of-tokens) query encoder distilled from a sentence encoder.

    student = StaticEncoder.distill(teacher, tokenizer, texts)   # teacher(texts) -> (N, D)
    x = student.encode(["cordless drill 18v"])                   # (B, D) unit vectors, ~0.1 ms

Encoding a query with MiniLM costs 7-15 ms on a CPU core, more than the rest of a generative
search. Short queries are mostly bags of words, so a table of one vector per token of the
teacher's own vocabulary, mean-pooled and normalised, gets close to the teacher's embedding at a
hundredth of the cost (the model2vec / static-embedding idea). The table starts from the teacher's
embedding of every token on its own and is then fitted to the teacher's embeddings of real
texts (queries, titles, query-like spans of titles) with a cosine loss.

Hand-written rather than sentence-transformers' StaticEmbedding: the model is one
`nn.EmbeddingBag`, and the part worth having, fitting it to a teacher on our own texts, is not
in that class (its distillation path needs model2vec and replaces the teacher's space by PCA).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._progress import progress
from gsid.errors import ArtifactError, GsidError, check_options

logger = logging.getLogger(__name__)

KIND = "gsid-static-encoder"
FORMAT_VERSION = 1


@dataclass
class StaticDistillConfig:
    """epochs over the distillation texts; batch_size texts per step; lr of SparseAdam;
    max_tokens per text; init_tokens: which rows of the table start from the teacher's embedding
    of the token alone, "all" of the vocabulary or only those "seen" in the texts (faster; the
    others start at zero and so drop out of the normalised mean until trained);
    init_batch_size: tokens per teacher call when seeding the table (the default sends a whole
    BERT-size vocabulary in one call: one cache entry, one model load)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 0.01
    max_tokens: int = 32
    init_tokens: str = "all"
    init_batch_size: int = 65536
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StaticDistillConfig:
        d = dict(d or {})
        check_options(d, set(cls.__dataclass_fields__), "static encoder config")
        cfg = cls(**d)
        for name in ("epochs", "batch_size", "max_tokens", "init_batch_size"):
            if int(getattr(cfg, name)) < 1:
                raise GsidError(f"static encoder {name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.init_tokens not in ("all", "seen"):
            raise GsidError(f"init_tokens must be 'all' or 'seen', got {cfg.init_tokens!r}")
        return cfg


class StaticEncoder(nn.Module):
    """Mean of per-token vectors (V, D) over the teacher tokenizer's word pieces, normalised."""

    def __init__(self, tokenizer, weights: torch.Tensor, max_tokens: int = 32) -> None:
        super().__init__()
        self.tokenizer = tokenizer  # a Hugging Face fast tokenizer (the teacher's)
        self.max_tokens = int(max_tokens)
        self.bag = nn.EmbeddingBag.from_pretrained(
            torch.as_tensor(weights, dtype=torch.float32), freeze=False, mode="mean", sparse=True
        )

    @property
    def dim(self) -> int:
        return self.bag.embedding_dim

    def token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat word-piece ids and per-text offsets (EmbeddingBag's input). A text with no
        token keeps the unknown token, so every bag is non-empty."""
        enc = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=self.max_tokens
        )["input_ids"]
        unk = self.tokenizer.unk_token_id or 0
        enc = [ids or [unk] for ids in enc]
        offsets = np.zeros(len(enc), np.int64)
        np.cumsum([len(x) for x in enc[:-1]], out=offsets[1:])
        flat = np.fromiter((t for ids in enc for t in ids), np.int64)
        return torch.from_numpy(flat), torch.from_numpy(offsets)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bag(ids, offsets), dim=-1)  # (B, D)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, D) unit vectors (zero for a text none of whose tokens has a vector)."""
        return self(*self.token_ids(texts))

    # ------------------------------------------------------------------ distillation
    @classmethod
    def distill(
        cls,
        teacher: Callable[[list[str]], np.ndarray],
        tokenizer,
        texts: list[str],
        targets: np.ndarray | None = None,
        config: StaticDistillConfig | dict | None = None,
        show_progress: bool | None = None,
    ) -> StaticEncoder:
        """Fit a student to `teacher` (texts -> (N, D) unit vectors). `targets` are the
        teacher's vectors of `texts` when already at hand (e.g. read from the embedding cache);
        otherwise the teacher is called on them."""
        cfg = (
            config
            if isinstance(config, StaticDistillConfig)
            else StaticDistillConfig.from_dict(config)
        )
        if targets is not None and len(targets) != len(texts):
            raise GsidError(f"{len(texts)} texts but {len(targets)} teacher vectors")
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        if not keep:
            raise GsidError("static encoder distillation needs at least one non-empty text")
        texts = [texts[i] for i in keep]
        y = np.asarray(teacher(texts) if targets is None else targets, dtype=np.float32)
        if targets is not None:
            y = y[keep]
        seen = None
        if cfg.init_tokens == "seen":
            ids = tokenizer(
                texts, add_special_tokens=False, truncation=True, max_length=cfg.max_tokens
            )
            seen = {t for row in ids["input_ids"] for t in row}
        table = cls._token_table(teacher, tokenizer, cfg.init_batch_size, seen)
        student = cls(tokenizer, table, cfg.max_tokens)
        opt = torch.optim.SparseAdam(student.parameters(), lr=cfg.lr)
        g = torch.Generator().manual_seed(cfg.seed)
        yt = F.normalize(torch.from_numpy(y), dim=-1)  # (N, D)
        N, bs = len(texts), cfg.batch_size
        batches = (
            perm[s : s + bs]
            for _ in range(cfg.epochs)
            for perm in [torch.randperm(N, generator=g)]
            for s in range(0, N, bs)
        )
        losses = []
        total = cfg.epochs * ((N + bs - 1) // bs)
        for b in progress(batches, show_progress, desc="static encoder", unit="batch", total=total):
            ids, offs = student.token_ids([texts[i] for i in b.tolist()])
            loss = (1 - (student(ids, offs) * yt[b]).sum(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        student.history_ = losses
        with torch.no_grad():  # stored in float16 (see save): use the table as it will be loaded
            student.bag.weight.copy_(student.bag.weight.half().float())
        logger.info(
            "static encoder: %d texts, cosine loss %.4f -> %.4f",
            len(texts),
            losses[0],
            float(np.mean(losses[-20:])),
        )
        return student.eval()

    @staticmethod
    @torch.no_grad()
    def _token_table(
        teacher, tokenizer, batch_size: int, only: set[int] | None = None
    ) -> torch.Tensor:
        """(V, D): the teacher's embedding of every token on its own (continuation pieces
        without their '##'), so a token no text taught still means something; zero for special
        tokens and for tokens outside `only` (when given)."""
        vocab = tokenizer.get_vocab()
        V = max(vocab.values()) + 1
        tokens = [""] * V
        for tok, i in vocab.items():
            tokens[i] = tok[2:] if tok.startswith("##") and len(tok) > 2 else tok
        special = set(getattr(tokenizer, "all_special_ids", []))
        keep = [
            i
            for i in range(V)
            if i not in special and tokens[i].strip() and (only is None or i in only)
        ]
        table = torch.zeros(V, 0)
        for s in range(0, len(keep), batch_size):
            rows = keep[s : s + batch_size]
            vec = torch.as_tensor(np.asarray(teacher([tokens[i] for i in rows]), np.float32))
            if table.shape[1] == 0:
                table = torch.zeros(V, vec.shape[1])
            table[rows] = vec
        if table.shape[1] == 0:  # nothing to seed from: ask the teacher for its dimension
            table = torch.zeros(V, np.asarray(teacher(["a"])).shape[1])
        return table

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            # float16 on disk halves the table (47 -> 23 MB for MiniLM's vocabulary); distill
            # already rounds the weights in memory, so a loaded encoder scores the same
            weights = self.bag.weight.detach().half().contiguous()
            save_file({"weights": weights}, tmp / "model.safetensors")
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            write_manifest(tmp, KIND, FORMAT_VERSION, max_tokens=self.max_tokens, dim=self.dim)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StaticEncoder:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        try:
            w = load_file(path / "model.safetensors")["weights"].float()
            tok = AutoTokenizer.from_pretrained(path / "tokenizer")
        except Exception as e:  # safetensors / tokenizers raise their own types
            raise ArtifactError(
                f"{path}: the static encoder is missing or corrupted ({type(e).__name__}: {e}); "
                f"re-index to distill it again"
            ) from e
        if w.ndim != 2 or w.shape[1] != m["dim"]:
            raise ArtifactError(f"{path}: weights {tuple(w.shape)} do not match dim {m['dim']}")
        return cls(tok, w, m["max_tokens"]).eval()
