"""Two-tower contrastive fine-tuning of a sentence encoder on (query, relevant item) pairs.

    cfg = FineTuneConfig(epochs=1, batch_size=64, scale=20.0)
    out = finetune_encoder(dataset, "runs/minilm-ft", cfg)   # trains on dataset.training_pairs("train")
    enc = SentenceEncoder(out.item_model)                    # a normal sentence-transformers dir

Loss: sentence-transformers' MultipleNegativesRankingLoss (InfoNCE with in-batch negatives,
`scale` = 1 / temperature). The sentence-transformers Trainer needs `datasets` and `accelerate`,
which gsid does not depend on, so a small torch loop drives the model and the loss instead
(AdamW, linear warm-up then decay, fixed epochs, seeded). Batches never hold the same item (or the
same item text) or the same query twice: a duplicate would be a false in-batch negative.

Grouped batches (`group_negatives`, GSID's prefix-grouped hard negatives applied to the encoder):
the training items are clustered into `group_cells` k-means cells of the base encoder's
embeddings (faiss), standing in for GSID's first codes, and each batch is drawn from
`group_negatives` cells, so its negatives share a topic with the positive. Since items of one
cell are often relevant to the same query, each query's other known relevant items (from the
training pairs) are masked out of its softmax row.

Towers (`towers`):
    "shared"        one encoder reads queries and items (the usual two-tower setup);
    "separate"      two copies of the base encoder, trained jointly;
    "frozen-items"  only the query tower trains; items keep the base encoder's embeddings, which
                    are computed once (and cached) instead of at every step, so a step costs a
                    query forward/backward only, and a catalogue already indexed with the base
                    encoder needs no re-encoding.

Output directory:
    finetune.json       FineTuneConfig + base model + training statistics
    model/              the shared tower ("shared"), or
    query/ item/        the two towers ("separate"), or
    query/              the query tower ("frozen-items"; items use the base model)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gsid._device import pick_device
from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._optim import decay_groups
from gsid._progress import progress_bar
from gsid.errors import ArtifactError, GsidError, check_options
from gsid.text.contrastive import in_batch_info_nce
from gsid.text.encoders import DEFAULT_MODEL, resolve_model_path
from gsid.text.finetune_batches import (
    FrozenItems,
    batches_without_duplicates,
    grouped_negatives,
    known_positives,
    training_examples,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "finetune.json"
KIND = "gsid-finetuned-encoder"
TOWERS = ("shared", "separate", "frozen-items")
FORMAT_VERSION = 1


@dataclass
class FineTuneConfig:
    """Knobs of the contrastive fine-tuning (defaults tuned on Home Depot train/dev only).

    epochs: passes over the training pairs. batch_size: pairs per step (B - 1 in-batch negatives).
    lr, weight_decay: AdamW. warmup_ratio: share of steps with a linear learning-rate warm-up.
    scale: similarity scale of the InfoNCE softmax (1 / temperature).
    symmetric: also score item -> query (both directions of the in-batch softmax).
    catalogue_negatives: with towers="frozen-items" only: every catalogue item is a negative
        (a full softmax over the frozen item vectors, the query's other relevant items masked)
        instead of the batch's items; memory B x N floats per step.
    max_pairs: keep at most this many training pairs (a seeded sample; None = all).
    max_seq_length: tokens read per text (titles and queries are short).
    towers: "shared", "separate" or "frozen-items" (see the module docstring).
    freeze_embeddings: keep the token embeddings fixed (a third of MiniLM's weights: faster steps
        on CPU, and words that no training query uses keep their pretrained vectors).
    train_layers: train only the top N transformer layers (None = all); lower layers stay fixed.
    with_description: item text = title + description.
    group_negatives: draw each batch from this many k-means cells of the items (0 = random
        batches; see the module docstring); the query's other relevant items are then masked.
    group_cells: the number of k-means cells for group_negatives; a list gives one per epoch
        (the last repeated), e.g. [128, 1024]: later epochs draw from finer cells, so their
        negatives are harder (GSID's progressive prefixes, applied to the encoder).
    seed: seeds pair sampling, batching and torch. device: None = cuda when available.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scale: float = 20.0
    symmetric: bool = False
    catalogue_negatives: bool = False
    max_pairs: int | None = None
    max_seq_length: int = 32
    towers: str = "shared"
    freeze_embeddings: bool = True
    train_layers: int | None = None
    with_description: bool = False
    group_negatives: int = 0
    group_cells: int | list[int] = 128
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise GsidError(
                f"fine-tuning needs epochs >= 1 and batch_size >= 2 (in-batch negatives), "
                f"got epochs={self.epochs}, batch_size={self.batch_size}"
            )
        if not self.lr > 0 or not self.scale > 0 or not 0 <= self.warmup_ratio < 1:
            raise GsidError(
                f"fine-tuning needs lr > 0, scale > 0 and 0 <= warmup_ratio < 1, got lr={self.lr}, "
                f"scale={self.scale}, warmup_ratio={self.warmup_ratio}"
            )
        if self.max_pairs is not None and self.max_pairs < 2:
            raise GsidError(f"max_pairs must be None or >= 2, got {self.max_pairs}")
        if self.towers not in TOWERS:
            raise GsidError(f"towers {self.towers!r} is unknown; choose one of {list(TOWERS)}")
        if self.catalogue_negatives and self.towers != "frozen-items":
            raise GsidError(
                "catalogue_negatives needs towers='frozen-items' (the item vectors must be fixed "
                f"to score the whole catalogue at every step); got towers={self.towers!r}"
            )
        if self.train_layers is not None and self.train_layers < 0:
            raise GsidError(f"train_layers must be None or >= 0, got {self.train_layers}")
        if isinstance(self.group_cells, (list, tuple)):
            self.group_cells = [int(c) for c in self.group_cells]
        cells = self._cell_list()
        if self.group_negatives < 0 or not cells or min(cells) < 1:
            raise GsidError(
                f"group_negatives must be >= 0 and group_cells a number >= 1 or a non-empty list "
                f"of them (one per epoch), got group_negatives={self.group_negatives}, "
                f"group_cells={self.group_cells}"
            )
        if self.group_negatives and self.catalogue_negatives:
            raise GsidError(
                "group_negatives shapes in-batch negatives; with catalogue_negatives every item "
                "is a negative already: use one of the two"
            )
        if self.max_seq_length < 4:
            raise GsidError(f"max_seq_length must be >= 4, got {self.max_seq_length}")

    def _cell_list(self) -> list[int]:
        return self.group_cells if isinstance(self.group_cells, list) else [self.group_cells]

    def cells_per_epoch(self) -> list[int]:
        """group_cells for each epoch (a list's last entry repeats)."""
        cells = self._cell_list()
        return [cells[min(e, len(cells) - 1)] for e in range(self.epochs)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FineTuneConfig:
        check_options(d, {f.name for f in dataclasses.fields(cls)}, "fine-tuning")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FineTunedEncoder:
    """Where a fine-tuning run put its towers: model directories (the same one when shared), or
    for "frozen-items" the base model's reference ("minilm" or its directory) as item_model."""

    path: Path
    query_model: str
    item_model: str
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike) -> FineTunedEncoder:
        path = Path(path)
        f = path / CONFIG_FILE
        if (path / "manifest.json").is_file():
            read_manifest(path, KIND, FORMAT_VERSION)  # checksums
        if not f.is_file():
            raise ArtifactError(
                f"{path} is not a gsid fine-tuned encoder: {CONFIG_FILE} is missing; pass the "
                f"directory that finetune_encoder wrote"
            )
        try:
            info = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{f} is corrupted ({e}); fine-tune again") from e
        if info.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"{f} has format version {info.get('format_version')}, this gsid reads "
                f"{FORMAT_VERSION}; fine-tune again with this gsid"
            )
        towers = info["config"]["towers"]
        if towers == "shared":
            q = i = path / "model"
        elif towers == "separate":
            q, i = path / "query", path / "item"
        else:
            q, i = path / "query", None
        for d in {q, i} - {None}:
            if not (d / "modules.json").is_file():
                raise ArtifactError(f"{d} holds no sentence-transformers model; fine-tune again")
        return cls(path, str(q), str(i) if i is not None else info["base_model"], info)


# ---------------------------------------------------------------------- data
_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def trainable_parameters(model, config: FineTuneConfig) -> list:
    """Freeze what the config keeps fixed; return the parameters left to train."""
    names = [n for n, _ in model.named_parameters()]
    depth = 1 + max((int(m.group(1)) for n in names if (m := _LAYER.search(n))), default=-1)
    if config.train_layers is not None and depth == 0:
        raise GsidError(
            "train_layers needs a transformer with numbered layers ('...layer.N...'); this model "
            "has none: leave train_layers=None"
        )
    first = depth - config.train_layers if config.train_layers is not None else 0
    out = []
    for name, p in model.named_parameters():
        m = _LAYER.search(name)
        frozen = (
            (config.freeze_embeddings and ".embeddings." in f".{name}")
            or (m is not None and int(m.group(1)) < first)
            or (m is None and ".embeddings." in f".{name}" and first > 0)
        )
        p.requires_grad_(not frozen)
        if not frozen:
            out.append(p)
    return out


def _load_model(base: str, device: str, max_seq_length: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model_path(base), device=device)
    model.max_seq_length = max_seq_length
    return model


def finetune_encoder(
    dataset,
    out_dir: str | os.PathLike,
    config: FineTuneConfig | None = None,
    base_model: str = DEFAULT_MODEL,
    split: str = "train",
    show_progress: bool | None = None,
    item_embeddings: np.ndarray | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> FineTunedEncoder:
    """Fine-tune `base_model` on the (query, relevant item) pairs of `split`; save to `out_dir`.

    For towers="frozen-items": `item_embeddings` (N, H), aligned with dataset.items, are the
    frozen item vectors; when None they are encoded with the base model (memoised in cache_dir).
    Returns the FineTunedEncoder describing the saved towers. Same config + seed + data gives the
    same weights on the same device.
    """
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device
    from transformers import get_linear_schedule_with_warmup

    config = config or FineTuneConfig()
    device = pick_device(config.device)
    queries, texts, ids = training_examples(dataset, config, split)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    frozen_items = config.towers == "frozen-items"
    frozen = None
    if frozen_items:
        frozen = FrozenItems(dataset, config, base_model, device, queries, ids, item_embeddings,
                              cache_dir, show_progress)  # fmt: skip
    groups_of_epoch: list[np.ndarray | None] = [None] * config.epochs
    relevant: dict[str, set[str]] = {}
    if config.group_negatives:
        groups_of_epoch, relevant = grouped_negatives(
            config, base_model, device, queries, texts, ids, cache_dir, show_progress
        )

    q_model = _load_model(base_model, device, config.max_seq_length)
    i_model = (
        q_model
        if config.towers != "separate"
        else _load_model(base_model, device, config.max_seq_length)
    )
    directions = ("query_to_doc", "doc_to_query") if config.symmetric else ("query_to_doc",)
    loss_fn = MultipleNegativesRankingLoss(
        q_model,
        scale=config.scale,
        directions=directions,
        partition_mode="per_direction" if config.symmetric else "joint",
    )
    params = trainable_parameters(q_model, config)
    if config.towers == "separate":
        params += trainable_parameters(i_model, config)
    if not params:
        raise GsidError("the fine-tuning config freezes every weight; raise train_layers")
    # no weight decay on biases and LayerNorm weights (the usual BERT recipe)
    optimizer = torch.optim.AdamW(
        decay_groups(params, config.weight_decay),
        lr=config.lr,
        foreach=True,  # one fused update over all tensors: much faster than the per-tensor loop on CPU
    )
    # the batches of every epoch, drawn up front: the schedule needs their total
    rng = random.Random(config.seed)
    epoch_batches = [
        list(
            batches_without_duplicates(
                queries, texts, ids, config.batch_size, rng, groups, config.group_negatives
            )
        )
        for groups in groups_of_epoch
    ]
    total = sum(len(b) for b in epoch_batches)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * total), total
    )
    logger.info(
        "fine-tuning %s on %d pairs: %d steps on %s", base_model, len(queries), total, device
    )

    q_model.train()
    i_model.train()
    losses: list[float] = []
    t0 = time.time()
    bar = progress_bar(total=total, desc="fine-tune", show_progress=show_progress)
    for batches, groups in zip(epoch_batches, groups_of_epoch, strict=True):
        for batch in batches:
            qf = batch_to_device(q_model.preprocess([queries[i] for i in batch]), device)
            q_emb = q_model(qf)["sentence_embedding"]  # (B, H)
            if frozen is not None:
                d_emb = frozen.vecs[frozen.rows[batch]].to(device)  # (B, H), no gradient
            else:
                df = batch_to_device(i_model.preprocess([texts[i] for i in batch]), device)
                d_emb = i_model(df)["sentence_embedding"]  # (B, H)
            if config.catalogue_negatives:
                loss = frozen.catalogue_loss(q_emb, batch, queries, config.scale)
            elif groups is not None:
                mask = torch.from_numpy(known_positives(batch, queries, ids, relevant)).to(device)
                loss = in_batch_info_nce(q_emb, d_emb, config.scale, mask, config.symmetric)
            else:
                loss = loss_fn.compute_loss_from_embeddings([q_emb, d_emb], None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    q_model.eval()
    i_model.eval()
    seconds = time.time() - t0

    info = {
        "format_version": FORMAT_VERSION,
        "base_model": base_model,
        "config": config.to_dict(),
        "split": split,
        "pairs": len(queries),
        "steps": len(losses),
        "device": device,
        "seconds": round(seconds, 1),
        "loss_first": round(float(np.mean(losses[:20])), 4) if losses else None,
        "loss_last": round(float(np.mean(losses[-20:])), 4) if losses else None,
    }
    return _save(out_dir, config, q_model, i_model, info, seconds)


def _save(out_dir, config, q_model, i_model, info: dict, seconds: float) -> FineTunedEncoder:
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, KIND) as tmp:
        if config.towers == "shared":
            q_model.save(str(tmp / "model"), create_model_card=False, safe_serialization=True)
        else:
            q_model.save(str(tmp / "query"), create_model_card=False, safe_serialization=True)
        if config.towers == "separate":
            i_model.save(str(tmp / "item"), create_model_card=False, safe_serialization=True)
        (tmp / CONFIG_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        write_manifest(tmp, KIND, FORMAT_VERSION)  # kind + checksums of every file
    logger.info(
        "fine-tuned in %.0f s, loss %s -> %s", seconds, info["loss_first"], info["loss_last"]
    )
    return FineTunedEncoder.load(out_dir)
