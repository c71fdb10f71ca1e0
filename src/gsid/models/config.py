"""The typed configuration of a GSID indexer; saved next to the weights (config.json) so a
checkpoint rebuilds its own model.

    cfg = GSIDConfig(n_levels=4, codebook_size=128, backbone="minilm")
    cfg.to_dict() / GSIDConfig.from_dict(d)     # unknown keys are rejected, with the valid list
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gsid.errors import GsidError, check_options

BACKBONES = ("minilm", "t5")
MEMORIES = ("tokens", "pooled")


@dataclass
class GSIDConfig:
    """Every knob of the GSID model, training and sampling. Each technique can be switched off
    for ablations (ema, kl_weight=0, commit_weight=0, multi_query, prefix_batches, reseed_dead)."""

    # ---- model
    backbone: str = "minilm"  # "minilm" (packaged, offline) or "t5" (T5-family)
    model_path: str | None = None  # local checkpoint dir; None with "minilm" = packaged MiniLM
    t5_config: dict | None = None  # build a random T5 from this transformers.T5Config dict
    # with t5_config: train a WordPiece tokenizer of this many tokens on the catalogue's titles
    # and train queries (gsid.text.catalogue_tokenizer); 0 = MiniLM's tokenizer
    tokenizer_vocab: int = 0
    decoder_layers: int = 2  # small decoder on the MiniLM backbone (T5 uses its own decoder)
    decoder_heads: int = 4
    decoder_ff_mult: int = 4  # feed-forward width = mult * hidden (MiniLM decoder)
    memory: str = "tokens"  # decoder cross-attends to every token, or to one pooled vector
    memory_skip: bool = False  # MiniLM decoder: d_t += mean memory (keeps the encoder geometry)
    # with memory_skip: d_t = mean memory + g * decoder output, g a learned scalar starting at 0
    # (ReZero): every state starts exactly at the encoder's embedding
    skip_gate: bool = False
    freeze_encoder: bool = False  # frozen + pooled memory => encoder outputs are cached once
    max_seq_length: int = 32
    n_levels: int = 4
    codebook_size: int = 128
    normalize: bool = True  # score cosine (dot product of unit vectors): stable with EMA means
    # ---- losses
    temperature: float = 0.05  # in-batch InfoNCE
    code_temperature: float = 0.1  # softmax(d_t . E_t / T) for the code distributions
    kl_weight: float = 1.0
    commit_weight: float = 0.5
    # ---- codebooks
    ema: bool = True  # False: codebooks trained by gradients (ablation)
    ema_decay: float = 0.95
    reseed_dead: bool = True
    dead_threshold: float = 0.0  # a code used <= this many times in the window is dead
    dead_window: int = 50  # batches
    init_from_data: bool = False  # random init (the paper); True: first batch seeds the codes
    # ---- optimisation
    batch_size: int = 64
    lr: float = 5e-4
    encoder_lr: float = 3e-5
    weight_decay: float = 0.01
    epochs_per_level: float = 1.0
    warmup_batches: int = 20  # contrastive-only batches that open each step
    max_batches_per_level: int | None = None
    grad_clip: float = 1.0
    # ---- sampling
    multi_query: bool = True
    queries_per_item: int = 2
    prefix_batches: bool = True
    pseudo_queries_per_item: int = (
        2  # items without a logged query get title-span pseudo-queries (0: none)
    )
    # ---- pre-training
    pretrain_batches: int = 0
    pretrain_lr: float = 1e-4
    # ---- step 0: encoder alignment (see indexer/align.py); FineTuneConfig fields, None = off
    align_encoder: dict | None = None
    # ---- misc
    seed: int = 0
    device: str | None = None
    encode_batch_size: int = 128
    checkpoint_every: int = 0  # batches; 0 = only at the end of each level

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self._check_choices()
        self._check_ranges()
        if self.align_encoder is not None:
            from gsid.models.align import alignment_config

            alignment_config(self)  # unknown or invalid fields fail here, before any training

    def _check_choices(self) -> None:
        """The named options and the combinations they must come in."""
        if self.skip_gate and not self.memory_skip:
            raise GsidError("skip_gate gates the memory_skip path: set memory_skip=True as well")
        if self.backbone not in BACKBONES:
            raise GsidError(f"backbone must be one of {list(BACKBONES)}, got {self.backbone!r}")
        if self.memory not in MEMORIES:
            raise GsidError(f"memory must be one of {list(MEMORIES)}, got {self.memory!r}")
        if self.backbone == "t5" and self.model_path is None and self.t5_config is None:
            raise GsidError(
                "backbone='t5' needs model_path (a local T5 checkpoint directory) or t5_config "
                "(a dict for transformers.T5Config to build a random model)"
            )
        if self.tokenizer_vocab and (self.backbone != "t5" or self.t5_config is None):
            raise GsidError(
                "tokenizer_vocab trains a catalogue tokenizer for a T5 built from scratch: it "
                "needs backbone='t5' with t5_config (a pretrained model keeps its own tokenizer)"
            )

    def _check_ranges(self) -> None:
        """The numeric options' ranges."""
        if self.tokenizer_vocab < 0:
            raise GsidError(f"tokenizer_vocab must be >= 0, got {self.tokenizer_vocab}")
        for name in (
            "n_levels",
            "codebook_size",
            "batch_size",
            "max_seq_length",
            "queries_per_item",
            "decoder_layers",
            "decoder_heads",
            "encode_batch_size",
            "dead_window",
        ):
            if int(getattr(self, name)) < 1:
                raise GsidError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise GsidError(
                "batch_size must be >= 2: the contrastive loss needs in-batch negatives"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise GsidError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("temperature", "code_temperature", "lr", "epochs_per_level"):
            if getattr(self, name) <= 0:
                raise GsidError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("kl_weight", "commit_weight", "warmup_batches", "pretrain_batches"):
            if getattr(self, name) < 0:
                raise GsidError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def cached_features(self) -> bool:
        """Frozen encoder + pooled memory: encoder outputs never change, so compute them once."""
        return self.freeze_encoder and self.memory == "pooled"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GSIDConfig:
        check_options(d, {f.name for f in dataclasses.fields(cls)}, "GSIDConfig")
        return cls(**d)

    def replace(self, **changes: Any) -> GSIDConfig:
        check_options(changes, {f.name for f in dataclasses.fields(self)}, "GSIDConfig")
        return dataclasses.replace(self, **changes)


__all__ = ["BACKBONES", "MEMORIES", "GSIDConfig", "field"]
