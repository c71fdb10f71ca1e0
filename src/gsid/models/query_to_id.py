"""Query -> semantic ID generator (TIGER / DSI style): a text encoder plus a small transformer
decoder over code tokens, trained with teacher forcing on (text -> code) pairs.

    model = QueryToID(Seq2SeqIDConfig(epochs=5)).fit(texts, codes)   # codes (M, L), -1 padded
    # constrained decoding under a trie: gsid.retrieval.generative.generate_ids(model, ...)
    model.save("runs/q2id"); QueryToID.load("runs/q2id")

Training pairs are search queries -> the code of a relevant item, plus *indexing examples*
(item text -> its own code) so that items no training query touched stay reachable (DSI).

Encoder ("memory" option):
  * "pooled" (default, CPU friendly): the packaged MiniLM sentence embedding (the same vectors
    the ID builders read, memoised on disk by `encode_cached`) is frozen and projected into
    `n_memory` slots the decoder cross-attends to. Training touches only the decoder, so a few
    epochs over tens of thousands of pairs take minutes on 2 cores.
  * "tokens": the token states of MiniLM (transformers AutoModel) or of a local T5-family
    checkpoint's encoder stack (`encoder="path/to/t5"`, the GSID issue's other backbone),
    fine-tuned end to end with the decoder (what TIGER/DSI do; for GPUs). The fine-tuned
    encoder is saved with the model.

Decoder input at step t is BOS + the first t codes; each (level, code) pair has its own token
embedding (code 5 of level 0 and code 5 of level 1 mean different things), plus a level
position embedding; each level has its own output head over K codes + EOS.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsid._device import pick_device, torch_threads
from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._optim import decay_groups, one_cycle
from gsid._progress import progress
from gsid.errors import ArtifactError, DataValidationError, GsidError, NotFittedError
from gsid.models.code_decoder import CodeDecoder

logger = logging.getLogger(__name__)

KIND = "gsid-query-to-id"
FORMAT_VERSION = 1
MEMORY_MODES = ("pooled", "tokens")
# encoder-decoder checkpoints whose encoder stack "tokens" mode reads (transformers class names)
T5_FAMILY = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


def _load_encoder(src: str):
    """The text encoder of a local checkpoint: an encoder-only model (MiniLM, BERT, ...) as
    AutoModel loads it, or the encoder stack of a T5-family encoder-decoder (T5EncoderModel
    reads a T5ForConditionalGeneration checkpoint and drops its decoder: the code decoder here
    does the generating, the way GSID's MiniLM backbone does)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(src)
    if config.model_type in T5_FAMILY:
        import transformers

        return getattr(transformers, T5_FAMILY[config.model_type]).from_pretrained(src)
    if getattr(config, "is_encoder_decoder", False):
        raise GsidError(
            f"{src}: a {config.model_type!r} encoder-decoder checkpoint; memory='tokens' reads "
            f"encoder-only models or T5-family checkpoints ({sorted(T5_FAMILY)})"
        )
    return AutoModel.from_pretrained(src)


@dataclass
class Seq2SeqIDConfig:
    """Everything needed to rebuild and retrain the model; saved next to the weights.
    n_levels / n_codes are filled in by `fit` from the codes (0 = not yet known)."""

    encoder: str = "minilm"
    memory: str = "pooled"
    n_memory: int = 4  # memory slots made from a pooled embedding
    max_seq_length: int = 32  # "tokens" mode truncation ("pooled" keeps the encoder's own)
    d_model: int = 256
    n_layers: int = 2
    n_heads: int = 4
    dim_feedforward: int = 512
    dropout: float = 0.1
    n_levels: int = 0
    n_codes: int = 0
    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    encoder_lr: float = 2e-5  # "tokens" mode: learning rate of the fine-tuned encoder
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    encode_batch_size: int = 128
    seed: int = 0
    # torch intra-op threads while training / decoding (0 = leave torch's setting). The decoder
    # is small: on a busy CPU, OpenMP threads spin-waiting on each other made a training step
    # ~80x slower with 2 threads than with 1 (measured on a shared 2-core machine).
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.memory not in MEMORY_MODES:
            raise GsidError(
                f"memory {self.memory!r} is unknown; choose one of {list(MEMORY_MODES)}"
            )
        for name in (
            "n_memory",
            "max_seq_length",
            "d_model",
            "n_layers",
            "n_heads",
            "dim_feedforward",
            "epochs",
            "batch_size",
            "encode_batch_size",
        ):
            if int(getattr(self, name)) < 1:
                raise GsidError(f"Seq2SeqIDConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise GsidError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.num_threads < 0:
            raise GsidError(
                f"num_threads must be >= 0 (0 = torch's default), got {self.num_threads}"
            )
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise GsidError("dropout and label_smoothing must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Seq2SeqIDConfig:
        unknown = sorted(set(d) - set(cls.fields()))
        if unknown:
            raise GsidError(
                f"unknown query->ID model option(s) {unknown}; valid options are {cls.fields()}"
            )
        return cls(**d)


class QueryToID:
    """Text -> semantic ID seq2seq model with constrained generation. `fit` returns self."""

    def __init__(
        self,
        config: Seq2SeqIDConfig | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        **options: Any,
    ) -> None:
        base = (config or Seq2SeqIDConfig()).to_dict()
        base.update(options)
        self.config = Seq2SeqIDConfig.from_dict(base)
        self.device = device
        self.cache_dir = cache_dir
        self.decoder_: CodeDecoder | None = None
        self.history_: list[dict[str, float]] = []
        self._sentence = None  # SentenceEncoder ("pooled")
        self._hf = None  # (tokenizer, AutoModel) ("tokens")

    # ------------------------------------------------------------------ encoders
    @property
    def _device(self) -> torch.device:

        return torch.device(pick_device(self.device))

    def _sentence_encoder(self):
        if self._sentence is None:
            from gsid.text.encoders import SentenceEncoder

            # the encoder's own max_seq_length (not config.max_seq_length), so the memoised item
            # embeddings are the very ones the ID builders and the dense retriever cache
            self._sentence = SentenceEncoder(
                self.config.encoder,
                device=str(self._device),
                batch_size=self.config.encode_batch_size,
            )
        return self._sentence

    def _hf_encoder(self, path: str | None = None):
        if self._hf is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from transformers import AutoTokenizer

            from gsid.text.encoders import resolve_model_path

            src = path or resolve_model_path(self.config.encoder)
            self._hf = (AutoTokenizer.from_pretrained(src), _load_encoder(src).to(self._device))
        return self._hf

    def input_dim(self) -> int:
        if self.config.memory == "pooled":
            return self._sentence_encoder().dim
        return int(self._hf_encoder()[1].config.hidden_size)

    def embed(
        self, texts: Sequence[str], cache: bool = False, show_progress: bool | None = None
    ) -> np.ndarray:
        """Pooled mode: (N, D) frozen sentence embeddings (memoised when `cache`)."""
        enc = self._sentence_encoder()
        if cache and self.cache_dir is not None:
            return enc.encode_cached(list(texts), self.cache_dir, show_progress)
        return enc.encode(list(texts), show_progress)

    def _token_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens mode: (B, S, D) encoder states and (B, S) padding mask (True = pad)."""
        tok, enc = self._hf_encoder()
        batch = tok(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_seq_length,
            return_tensors="pt",
        ).to(self._device)
        states = enc(**batch).last_hidden_state
        return states, batch["attention_mask"] == 0

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: Sequence[str],
        codes: np.ndarray,
        n_codes: int | None = None,
        weights: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        show_progress: bool | None = None,
    ) -> QueryToID:
        """Train on texts[i] -> codes[i] ((M, L) int, -1 past each ID's end).

        n_codes: vocabulary K (default max code + 1). weights: (M,) per-example loss weights
        (default 1). embeddings: precomputed (M, D) pooled embeddings of `texts` (pooled mode)."""
        with torch_threads(self.config.num_threads):
            return self._fit(texts, codes, n_codes, weights, embeddings, show_progress)

    def _fit(self, texts, codes, n_codes, weights, embeddings, show_progress) -> QueryToID:
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or len(codes) != len(texts) or len(texts) == 0:
            raise DataValidationError(
                f"fit needs texts (M,) and codes (M, L) of the same non-zero length; got "
                f"{len(texts)} texts and codes of shape {codes.shape}"
            )
        lengths = (codes >= 0).sum(1)
        if lengths.min() < 1:
            raise DataValidationError("every training example needs a code of length >= 1")
        cfg = self.config
        cfg.n_levels = int(codes.shape[1])
        cfg.n_codes = int(n_codes if n_codes is not None else codes.max() + 1)
        if codes.max() >= cfg.n_codes:
            raise DataValidationError(f"code {int(codes.max())} >= n_codes={cfg.n_codes}")
        w = np.ones(len(texts), np.float32) if weights is None else np.asarray(weights, np.float32)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        dev = self._device
        pooled = cfg.memory == "pooled"
        if pooled:
            X = (
                embeddings
                if embeddings is not None
                else self.embed(texts, cache=True, show_progress=show_progress)
            )
            X = torch.as_tensor(np.asarray(X, np.float32))
            input_dim = X.shape[1]
        else:
            input_dim = self.input_dim()
        self.decoder_ = CodeDecoder(cfg, input_dim).to(dev)
        # weight decay on weight matrices only: not on norms or biases
        params = decay_groups(self.decoder_.parameters(), cfg.weight_decay, lr=cfg.lr)
        if not pooled:
            enc = self._hf_encoder()[1]
            params += decay_groups(enc.parameters(), cfg.weight_decay, lr=cfg.encoder_lr)
            enc.train()
        opt = torch.optim.AdamW(params)
        steps = cfg.epochs * int(np.ceil(len(texts) / cfg.batch_size))
        sched = one_cycle(opt, [g["lr"] for g in params], steps)
        # targets: codes then EOS at position length, ignored (-100) beyond
        L, K = cfg.n_levels, cfg.n_codes
        target = np.full((len(texts), L + 1), -100, np.int64)
        target[:, :L] = np.where(codes >= 0, codes, -100)
        target[np.arange(len(texts)), lengths] = K
        target_t = torch.as_tensor(target)
        prefix_t = torch.as_tensor(np.maximum(codes, 0))
        w_t = torch.as_tensor(w)
        loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing)
        self.decoder_.train()
        self.history_ = []
        for epoch in progress(range(cfg.epochs), show_progress, desc="query->ID epochs"):
            perm = rng.permutation(len(texts))
            total, n = 0.0, 0
            for s in range(0, len(perm), cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                if pooled:
                    mem, pad = self.decoder_.memory(X[idx].to(dev)), None
                else:
                    states, pad = self._token_states([texts[i] for i in idx])
                    mem = self.decoder_.memory(states)
                logits = self.decoder_(mem, prefix_t[idx].to(dev), pad)  # (b, L + 1, K + 1)
                tgt = target_t[idx].to(dev)
                per = loss_fn(logits.reshape(-1, K + 1), tgt.reshape(-1)).view(tgt.shape)
                valid = (tgt >= 0).float()
                per_ex = (per * valid).sum(1) / valid.sum(1)
                wb = w_t[idx].to(dev)
                loss = (per_ex * wb).sum() / wb.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.decoder_.parameters(), 1.0)
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                n += len(idx)
            self.history_.append({"epoch": epoch, "loss": total / max(n, 1)})
            logger.info("query->ID epoch %d: loss %.4f", epoch, total / max(n, 1))
        self.decoder_.eval()
        if not pooled:
            self._hf_encoder()[1].eval()
        return self

    # ------------------------------------------------------------------ generation
    def _check(self) -> None:
        if self.decoder_ is None:
            raise NotFittedError(
                "QueryToID is not trained yet: call .fit(texts, codes) or load one"
            )

    @torch.no_grad()
    def encode_memory(
        self, texts: Sequence[str], embeddings: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, S, d) decoder memory and its padding mask (None in pooled mode)."""
        self._check()
        dev = self._device
        if self.config.memory == "pooled":
            X = embeddings if embeddings is not None else self.embed(texts)
            return self.decoder_.memory(torch.as_tensor(np.asarray(X, np.float32)).to(dev)), None
        states, pad = self._token_states(texts)
        return self.decoder_.memory(states), pad

    def logits_fn(
        self, state: tuple[torch.Tensor, torch.Tensor | None], tokens: torch.Tensor
    ) -> torch.Tensor:
        """Step function for constrained_beam_search: tokens (B, W, t) -> (B, W, K + 1) log-probs."""
        mem, pad = state
        B, W, t = tokens.shape
        mem_w = mem.repeat_interleave(W, 0)  # (B*W, S, d): beam r of query b is row b*W + r
        pad_w = None if pad is None else pad.repeat_interleave(W, 0)
        prefix = tokens.reshape(B * W, t).to(mem.device)
        logits = self.decoder_(mem_w, prefix, pad_w, last_only=True)  # (B*W, K + 1)
        return torch.log_softmax(logits.float(), -1).view(B, W, -1)

    def cached_logits_fn(self, state: dict[str, Any], tokens: torch.Tensor) -> torch.Tensor:
        """Like `logits_fn` but with a per-beam key/value cache of the earlier positions in
        `state["cache"]`, kept aligned with the beams by `reorder_cache`."""
        mem, pad, cache = state["mem"], state["pad"], state["cache"]
        B, w, t = tokens.shape
        prev = tokens[:, :, -1].to(mem.device) if t else None
        past = None if t == 0 else [c[:, :w] for c in cache]
        logits, state["cache"] = self.decoder_.step(mem, prev, t, past, pad)
        return torch.log_softmax(logits.float(), -1)

    @staticmethod
    def reorder_cache(state: dict[str, Any], src: torch.Tensor) -> dict[str, Any]:
        """New beam j of query b continues old beam src[b, j] (an index into the cached beams)."""
        cache = state["cache"]
        if cache:
            w = cache[0].shape[1]
            idx = src.clamp(max=w - 1).to(cache[0].device)
            state["cache"] = [
                c.gather(1, idx[:, :, None, None].expand(-1, -1, *c.shape[2:])) for c in cache
            ]
        return state

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        self._check()
        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            state = {
                k: v.detach().cpu().contiguous() for k, v in self.decoder_.state_dict().items()
            }
            save_file(state, str(tmp / "decoder.safetensors"))
            input_dim = int(self.decoder_.mem_proj.in_features)
            if self.config.memory == "tokens":
                tok, enc = self._hf_encoder()
                enc.save_pretrained(tmp / "encoder")
                tok.save_pretrained(tmp / "encoder")
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                config=self.config.to_dict(),
                input_dim=input_dim,
                history=self.history_,
            )
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> QueryToID:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        obj = cls(Seq2SeqIDConfig.from_dict(m["config"]), device=device, cache_dir=cache_dir)
        try:
            if obj.config.memory == "tokens":
                obj._hf_encoder(str(path / "encoder"))
                obj._hf[1].eval()
            dec = CodeDecoder(obj.config, int(m["input_dim"]))
            dec.load_state_dict(load_file(str(path / "decoder.safetensors")))
        except (OSError, RuntimeError, SafetensorError, json.JSONDecodeError) as e:
            raise ArtifactError(
                f"{path}: query->ID weights unreadable or of another shape ({e}); retrain the model"
            ) from e
        obj.decoder_ = dec.to(obj._device).eval()
        obj.history_ = m.get("history", [])
        return obj
