"""Domain-adaptive pre-training: three seq2seq tasks mixed 1:1:1 in every batch, marked by task
tokens, to adapt the encoder to the catalogue's language before GSID training.

    [QGEN] item text                         -> one of the item's queries   (query generation)
    [CLOZE] text with 1-3 masked word spans  -> the full text               (item cloze)
    [SUFFIX] query [SEP] title prefix        -> the rest of the title       (suffix completion)

Items without a logged query use pseudo-queries cut from their own title (TrainData does that;
the report of a run says how many items had real queries). With a T5 backbone the tasks train
T5's own decoder and LM head. With the MiniLM backbone a small text decoder over the MiniLM
vocabulary, whose token embeddings and output layer are the encoder's word embeddings, reads
the encoder's token states; it is thrown away afterwards: its only purpose is to adapt the
encoder. Spans are masked at word level (the paper masks characters of Chinese text, where a
character is a word-piece).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsid._optim import decay_groups
from gsid._progress import progress
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData

logger = logging.getLogger(__name__)

TASK_TOKENS = ("[QGEN]", "[CLOZE]", "[SUFFIX]")
TASKS = ("qgen", "cloze", "suffix")


def add_task_tokens(model: GSIDModel) -> list[int]:
    """Register the task tokens as special tokens (grows the vocabulary once)."""
    tok = model.tokenizer
    missing = [t for t in TASK_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": list(TASK_TOKENS)})
        model.backbone.resize_token_embeddings(len(tok))
    return tok.convert_tokens_to_ids(list(TASK_TOKENS))


def _mask_token(tok) -> str:
    if tok.mask_token is not None:
        return tok.mask_token
    if "<extra_id_0>" in tok.get_vocab():
        return "<extra_id_0>"
    return tok.unk_token or "_"


def cloze(text: str, rng: np.random.Generator, mask: str) -> str:
    """1-3 spans of 1-3 words replaced by the mask token."""
    words = text.split()
    if len(words) < 2:
        return mask
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(1, 4))
        n = min(n, max(1, len(words) - 1))
        start = int(rng.integers(0, len(words) - n + 1))
        words[start : start + n] = [mask]
    # adjacent masks collapse into one span
    out = [w for j, w in enumerate(words) if not (w == mask and j and words[j - 1] == mask)]
    return " ".join(out)


def make_examples(
    data: TrainData, rows: np.ndarray, task: str, rng: np.random.Generator, mask: str, sep: str
) -> tuple[list[str], list[str]]:
    """(inputs without the task token, targets) for item `rows`."""
    src, tgt = [], []
    for n in rows:
        title = data.item_texts[int(n)]
        queries = data.item_queries[int(n)] or [title]
        q = queries[int(rng.integers(len(queries)))]
        if task == "qgen":
            src.append(title)
            tgt.append(q)
        elif task == "cloze":
            src.append(cloze(title, rng, mask))
            tgt.append(title)
        else:
            words = title.split()
            cut = int(rng.integers(1, len(words))) if len(words) > 1 else 0
            src.append(f"{q} {sep} {' '.join(words[:cut])}".strip())
            tgt.append(" ".join(words[cut:]) or title)
    return src, tgt


class TextDecoder(nn.Module):
    """Small causal text decoder for the MiniLM backbone; tied to the encoder's word embeddings."""

    def __init__(self, embeddings: nn.Embedding, layers: int, heads: int, max_len: int) -> None:
        super().__init__()
        H = embeddings.embedding_dim
        self.embeddings = embeddings  # shared with the encoder (not a copy)
        self.pos = nn.Parameter(torch.randn(max_len, H) * 0.02)
        layer = nn.TransformerDecoderLayer(
            H, heads, 4 * H, dropout=0.1, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(H)

    def forward(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """tgt_in (B, T) ids -> vocabulary logits (B, T, V)."""
        T = tgt_in.shape[1]
        x = self.embeddings(tgt_in) + self.pos[:T]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        h = self.norm(
            self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=~memory_mask)
        )
        return h @ self.embeddings.weight.T


def pretrain(
    model: GSIDModel,
    data: TrainData,
    config: GSIDConfig | None = None,
    n_batches: int | None = None,
    show_progress: bool | None = None,
) -> list[dict]:
    """Run `n_batches` (default config.pretrain_batches) of the three tasks, 1:1:1 per batch.
    Updates the encoder in place (even when it is frozen for GSID training afterwards).
    Returns the loss log."""
    cfg = config or model.config
    n_batches = cfg.pretrain_batches if n_batches is None else n_batches
    if n_batches <= 0:
        return []
    tok = model.tokenizer
    task_ids = add_task_tokens(model)
    mask, sep = _mask_token(tok), (tok.sep_token or tok.eos_token or "|")
    enc_params = model.encoder_parameters()
    frozen = [p.requires_grad for p in enc_params]
    for p in enc_params:
        p.requires_grad_(True)
    head: nn.Module | None = None
    if not model.is_t5:
        head = TextDecoder(
            model.backbone.get_input_embeddings(),
            cfg.decoder_layers,
            cfg.decoder_heads,
            cfg.max_seq_length + 2,
        ).to(model.device)
        params = list({id(p): p for p in [*enc_params, *head.parameters()]}.values())
    else:
        params = [p for p in model.backbone.parameters()]
        for p in params:
            p.requires_grad_(True)
    # weight decay on weight matrices only: not on norms or biases
    opt = torch.optim.AdamW(decay_groups(params, cfg.weight_decay), lr=cfg.pretrain_lr)
    rng = np.random.default_rng([cfg.seed, 99])
    per_task = max(1, cfg.batch_size // 3)
    log: list[dict] = []
    model.train()
    for step in progress(range(n_batches), show_progress, desc="GSID pre-training"):
        losses = {}
        total = 0.0
        opt.zero_grad(set_to_none=True)
        for task, tid in zip(TASKS, task_ids, strict=True):
            rows = rng.integers(0, data.n_items, per_task)
            src, tgt = make_examples(data, rows, task, rng, mask, sep)
            loss = _seq2seq_loss(model, head, tid, src, tgt, cfg.max_seq_length)
            (loss / 3).backward()  # 1:1:1 mixture, one optimiser step per batch
            losses[task] = float(loss.detach())
            total += losses[task] / 3
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or 1e9)
        opt.step()
        if step % 25 == 0 or step == n_batches - 1:
            rec = {"step": step + 1, "loss": total, **losses}
            log.append(rec)
            logger.info("pretrain %s", rec)
    for p, was in zip(enc_params, frozen, strict=True):
        p.requires_grad_(was)
    if model.is_t5:  # the decoder keeps training in GSID; the LM head is unused afterwards
        for p in model.backbone.parameters():
            p.requires_grad_(True)
        for p, was in zip(enc_params, frozen, strict=True):
            p.requires_grad_(was)
    model.pretrain_log_ = log
    return log


def _seq2seq_loss(
    model: GSIDModel, head, task_id: int, src: list[str], tgt: list[str], max_len: int
) -> torch.Tensor:
    tok = model.tokenizer
    s = model.tokenize(src, max_len - 1)
    # the task token goes first, after [CLS] when the tokenizer adds one
    ids, am = s["input_ids"], s["attention_mask"]
    at = 1 if tok.cls_token_id is not None and bool((ids[:, 0] == tok.cls_token_id).all()) else 0
    col = torch.full((len(ids), 1), task_id, dtype=ids.dtype, device=ids.device)
    ids = torch.cat([ids[:, :at], col, ids[:, at:]], 1)
    am = torch.cat([am[:, :at], torch.ones_like(col), am[:, at:]], 1)
    t = model.tokenize(tgt, max_len)
    labels = t["input_ids"].masked_fill(t["attention_mask"] == 0, -100)
    if model.is_t5:
        return model.backbone(input_ids=ids, attention_mask=am, labels=labels).loss
    hidden = model.backbone(input_ids=ids, attention_mask=am).last_hidden_state
    # BERT targets start with [CLS]: predict token j+1 from tokens <= j
    logits = head(t["input_ids"][:, :-1], hidden, am.bool())
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )
