"""The GSID encoder-decoder: reads a product text or a query, emits one code per decoder step.

    model = GSIDModel.build(GSIDConfig())           # MiniLM encoder + small transformer decoder
    mem, mask = model.encode_texts(["cordless drill"])             # (B, S, H), (B, S)
    d = model.decode(mem, mask, codes)              # teacher forced: (B, t+1, H) for codes (B, t)
    codes, d_all = model.generate(mem, mask)        # greedy: (B, L) codes, (B, L, H)
    model.save("runs/gsid/model"); GSIDModel.load("runs/gsid/model")

Decoder step t sees BOS then the embeddings of the codes chosen at steps < t; its hidden state
d_t (B, H) is scored against codebook E_t (K, H): code_t = argmax softmax(d_t . E_t).
Backbones: "minilm" (the packaged all-MiniLM-L6-v2 BERT encoder + a 1-2 layer transformer
decoder, no download) or "t5" (any local T5-family checkpoint, or a random T5 built from a
config dict for tests), whose own decoder is driven with inputs_embeds.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.errors import ArtifactError, GsidError
from gsid.models.codebooks import Codebooks
from gsid.models.config import GSIDConfig

logger = logging.getLogger(__name__)

KIND = "gsid-indexer-model"
FORMAT_VERSION = 1


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _minilm_path() -> str:
    from gsid.text.encoders import resolve_model_path

    return resolve_model_path("minilm")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, S, H), (B, S) -> (B, H) mean over real tokens (how all-MiniLM pools)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class GSIDModel(nn.Module):
    """Encoder (HF) + code decoder + codebooks. Build with `GSIDModel.build(config)`."""

    def __init__(self, config: GSIDConfig, backbone: nn.Module, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.is_t5 = config.backbone == "t5"
        self.backbone = backbone  # BertModel-like (minilm) or T5ForConditionalGeneration (t5)
        H = self.hidden_size
        L = config.n_levels
        self.bos = nn.Parameter(torch.randn(H) * 0.02)  # (H,) decoder start embedding
        # code embeddings are unit vectors (normalised codebooks); project them to the
        # decoder's input scale and let the model learn how to read them
        self.code_in = nn.Linear(H, H)
        if not self.is_t5:
            self.pos = nn.Parameter(torch.randn(L, H) * 0.02)  # (L, H) step positions
            layer = nn.TransformerDecoderLayer(
                H,
                config.decoder_heads,
                config.decoder_ff_mult * H,
                dropout=0.1,
                batch_first=True,
                norm_first=True,
            )
            self.decoder = nn.TransformerDecoder(layer, config.decoder_layers)
            self.dec_norm = nn.LayerNorm(H)
            if config.memory_skip and config.skip_gate:
                self.skip_gate = nn.Parameter(torch.zeros(()))
        self.codebooks = Codebooks(
            L,
            config.codebook_size,
            H,
            ema=config.ema,
            decay=config.ema_decay,
            normalize=config.normalize,
            temperature=config.code_temperature,
        )
        if config.freeze_encoder:
            for p in self.encoder_parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        config: GSIDConfig,
        backbone_config: dict | None = None,
        tokenizer_dir: str | None = None,
    ) -> GSIDModel:
        """A fresh model. `backbone_config` (an HF config dict) builds an untrained backbone of
        that shape (used by `load`, which then restores the weights)."""
        _offline()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        torch.manual_seed(config.seed)
        if config.backbone == "minilm":
            path = config.model_path or _minilm_path()
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or path)
            if backbone_config is not None:
                backbone = AutoModel.from_config(
                    AutoConfig.for_model(**backbone_config), add_pooling_layer=False
                )
            else:
                backbone = AutoModel.from_pretrained(path, add_pooling_layer=False)
        else:
            from transformers import T5Config, T5ForConditionalGeneration

            tok_src = tokenizer_dir or _t5_tokenizer_dir(config.model_path)
            tokenizer = AutoTokenizer.from_pretrained(tok_src)
            if backbone_config is not None:
                backbone = T5ForConditionalGeneration(T5Config.from_dict(backbone_config))
            elif config.model_path is not None:
                backbone = T5ForConditionalGeneration.from_pretrained(config.model_path)
            else:
                d = dict(config.t5_config or {})
                d["vocab_size"] = max(int(d.get("vocab_size", 0)), len(tokenizer))
                d.setdefault("decoder_start_token_id", tokenizer.pad_token_id or 0)
                d.setdefault("pad_token_id", tokenizer.pad_token_id or 0)
                backbone = T5ForConditionalGeneration(T5Config(**d))
        model = cls(config, backbone, tokenizer)
        if model.tokenizer.pad_token_id is None:
            raise GsidError("the tokenizer has no padding token; use a tokenizer with [PAD]/<pad>")
        return model

    @property
    def hidden_size(self) -> int:
        c = self.backbone.config
        return int(c.d_model if self.is_t5 else c.hidden_size)

    @property
    def device(self) -> torch.device:
        return self.bos.device

    def encoder_module(self) -> nn.Module:
        return self.backbone.encoder if self.is_t5 else self.backbone

    def encoder_parameters(self) -> list[nn.Parameter]:
        if self.is_t5:  # the shared token embedding counts as encoder (the decoder never uses it)
            return list(self.backbone.encoder.parameters())
        return list(self.backbone.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        enc = {id(p) for p in self.encoder_parameters()}
        cb = {id(p) for p in self.codebooks.parameters()}
        return [p for p in self.parameters() if id(p) not in enc and id(p) not in cb]

    # ------------------------------------------------------------------ encoder
    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=max_length or self.config.max_seq_length,
            return_tensors="pt",
        )
        return {
            "input_ids": enc["input_ids"].to(self.device),
            "attention_mask": enc["attention_mask"].to(self.device),
        }

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, S) -> decoder memory (B, S, H) or (B, 1, H) pooled, and its mask."""
        hidden = self.encoder_module()(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # (B, S, H)
        if self.config.memory == "pooled":
            pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)  # (B, H)
            return self.memory_from_features(pooled)
        return hidden, attention_mask.bool()

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tokenize(texts)
        return self.encode(t["input_ids"], t["attention_mask"])

    def memory_from_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached pooled features (B, H) -> memory (B, 1, H) and mask (B, 1).

        Unit vectors have entries of ~1/sqrt(H), far below the scale of the decoder's own
        inputs; scaling by sqrt(H) gives entries of ~1 (as token states have), else the
        cross-attended signal drowns under the constant BOS path and training stalls."""
        x = x.to(self.device, self.bos.dtype) * self.hidden_size**0.5
        return x[:, None, :], torch.ones(len(x), 1, dtype=torch.bool, device=x.device)

    @torch.no_grad()
    def pooled_features(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """(N, H) normalised mean-pooled encoder outputs (for the cached-feature mode)."""
        was = self.training
        self.eval()
        out = []
        for i in range(0, len(texts), batch_size):
            t = self.tokenize(texts[i : i + batch_size])
            h = self.encoder_module()(**t).last_hidden_state
            out.append(F.normalize(mean_pool(h, t["attention_mask"]), dim=-1).cpu())
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.hidden_size)

    # ------------------------------------------------------------------ decoder
    def decoder_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t) -> inputs (B, t+1, H): BOS, then code_in(E_s[c_s]) for s < t."""
        B = codes.shape[0]
        parts = [self.bos.expand(B, 1, -1)]
        for s in range(codes.shape[1]):
            parts.append(self.code_in(self.codebooks.embed(codes[:, s], s))[:, None])
        return torch.cat(parts, 1)

    def decode(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, codes: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced decoder states d_0..d_t (B, t+1, H) given codes (B, t) of steps < t."""
        x = self.decoder_inputs(codes)  # (B, T, H)
        T = x.shape[1]
        if self.is_t5:
            out = self.backbone.decoder(
                inputs_embeds=x,
                encoder_hidden_states=memory,
                encoder_attention_mask=memory_mask.long(),
            ).last_hidden_state
            return out
        x = x + self.pos[:T]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        out = self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=~memory_mask)
        return self.with_skip(self.dec_norm(out), mean_pool(memory, memory_mask)[:, None, :])

    def with_skip(self, out: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """memory_skip: a residual path from the (pretrained) encoder, so every d_t starts near
        the text's own embedding and a small decoder trained on few queries refines rather than
        replaces it; with skip_gate the decoder's share starts at 0 and is learned."""
        if not self.config.memory_skip:
            return out
        if self.config.skip_gate:
            out = self.skip_gate * out
        return out + mem

    def step_logits(self, d: torch.Tensor, t: int) -> torch.Tensor:
        """(B, H) -> (B, K)."""
        return self.codebooks.logits(d, t)

    @torch.no_grad()
    def generate(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, n_levels: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy codes (B, n) and the decoder states that chose them (B, n, H)."""
        n = n_levels or self.config.n_levels
        B = memory.shape[0]
        codes = torch.zeros(B, 0, dtype=torch.long, device=memory.device)
        for t in range(n):
            d = self.decode(memory, memory_mask, codes)  # (B, t+1, H)
            c = self.step_logits(d[:, -1], t).argmax(-1)
            codes = torch.cat([codes, c[:, None]], 1)
        return codes, d

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """config.json-style manifest + model.safetensors + backbone config + tokenizer."""
        from safetensors.torch import save_model

        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            save_model(self, str(tmp / "model.safetensors"))
            (tmp / "backbone_config.json").write_text(
                json.dumps(self.backbone.config.to_dict(), default=str), encoding="utf-8"
            )
            self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
            write_manifest(tmp, KIND, FORMAT_VERSION, config=self.config.to_dict(), **(extra or {}))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> GSIDModel:
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        path = Path(path)
        manifest = read_manifest(path, KIND, FORMAT_VERSION)
        for part in ("tokenizer", "model.safetensors", "backbone_config.json"):
            if not (path / part).exists():  # else transformers would look for it on a model hub
                raise ArtifactError(
                    f"{path}: {part} is missing; the GSID model directory is incomplete: "
                    f"retrain it or restore the directory"
                )
        try:
            config = GSIDConfig.from_dict(manifest["config"])
            bconf = json.loads((path / "backbone_config.json").read_text(encoding="utf-8"))
            model = cls.build(config, backbone_config=bconf, tokenizer_dir=str(path / "tokenizer"))
            load_model(model, str(path / "model.safetensors"), strict=True)
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as e:
            raise ArtifactError(
                f"{path}: the GSID model cannot be restored ({type(e).__name__}: {e}); retrain it "
                f"with train_gsid or restore the directory"
            ) from e
        from gsid._device import pick_device

        return model.to(pick_device(device or config.device))


def _t5_tokenizer_dir(model_path: str | None) -> str:
    """A T5 checkpoint's own tokenizer when it ships one, else the packaged MiniLM tokenizer."""
    if model_path is not None:
        p = Path(model_path)
        if any(
            (p / f).exists() for f in ("tokenizer.json", "spiece.model", "tokenizer_config.json")
        ):
            return str(p)
        logger.info("%s has no tokenizer files; using the MiniLM tokenizer", model_path)
    return _minilm_path()
