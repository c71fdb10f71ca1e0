"""The query -> spans seq2seq model of the lexical route: a T5 over the catalogue's tokenizer.

    model = SpanModel(SpanModelConfig(epochs=5)).prepare(titles + train_queries)  # tokenizer
    model.fit(sources, targets)                  # targets: token-id lists "s1 [SEP] s2 [END]"
    model.fit_preferences(sources, chosen, rejected)   # DPO after SFT (see dpo.py)
    enc, mask = model.encode(["cordless drill"]); state = model.start(enc, mask, beams=W)
    logp = model.step(state, prev, rows)       # (n, V): one decoder step of the slots `rows`
    model.save("runs/spans_model"); SpanModel.load("runs/spans_model")

From scratch (default) the T5 is small (2 + 2 layers, d_model 128) and its vocabulary is a
WordPiece tokenizer learnt from the catalogue's titles and training queries (gsid.text.
catalogue_tokenizer): on 2 CPU cores the output layer dominates the cost, and a catalogue
vocabulary of 4,096 pieces keeps it small. `model_path` starts from a local T5-family
checkpoint (with its own tokenizer) instead, e.g. one written by GSID's domain-adaptive
pre-training. A target is spans separated by the tokenizer's [SEP] and closed by END: [CLS] for
the catalogue tokenizer (it never occurs inside a title), the checkpoint's EOS otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsid._device import pick_device, torch_threads
from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._optim import decay_groups, one_cycle
from gsid._progress import progress
from gsid.errors import ArtifactError, DataValidationError, GsidError, NotFittedError
from gsid.models.lexical.dpo import dpo_loss, shared_prefix_masks

logger = logging.getLogger(__name__)

KIND = "gsid-span-model"
FORMAT_VERSION = 1


@dataclass
class SpanModelConfig:
    """Architecture and training of the span model; saved next to the weights."""

    model_path: str | None = None  # local T5-family checkpoint; None = a T5 from scratch
    vocab_size: int = 4096  # catalogue tokenizer size (from scratch only)
    d_model: int = 128
    d_ff: int = 512
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    max_source_tokens: int = 24
    copy_init: float = (
        3.0  # initial logit bonus of the source's own tokens (learned; see _copy_bias)
    )
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    # preference optimisation (DPO)
    dpo_epochs: int = 1
    dpo_beta: float = 0.3
    dpo_sft_weight: float = 1.0  # weight of the chosen sequence's NLL kept beside the DPO term
    dpo_lr: float = 2e-4
    # GSID's domain-adaptive pre-training of this T5 before SFT (`pretrain`; 0 = none)
    pretrain_batches: int = 0
    pretrain_lr: float = 1e-3
    seed: int = 0
    num_threads: int = 0  # torch intra-op threads while training / decoding (0 = torch's)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "d_ff", "n_layers", "n_heads", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise GsidError(f"SpanModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.dpo_epochs < 0 or self.pretrain_batches < 0:
            raise GsidError("epochs, dpo_epochs and pretrain_batches must be >= 0")
        if self.d_model % self.n_heads:
            raise GsidError(f"d_model ({self.d_model}) must be divisible by n_heads")
        if self.dpo_beta <= 0:
            raise GsidError(f"dpo_beta must be > 0, got {self.dpo_beta}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpanModelConfig:
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise GsidError(f"unknown span model option(s) {unknown}; valid options are {valid}")
        return cls(**d)


class SpanModel:
    """T5 text -> span sequence. `prepare` (tokenizer), `fit` (SFT), `fit_preferences` (DPO)."""

    def __init__(self, config: SpanModelConfig | None = None, device: str | None = None) -> None:
        self.config = config or SpanModelConfig()
        self.device = device
        self.tokenizer_ = None
        self.net_ = None
        self.history_: list[dict[str, float]] = []
        self._stepper = None  # T5Stepper, built on first use

    @property
    def _device(self) -> torch.device:
        return torch.device(pick_device(self.device))

    # ------------------------------------------------------------------ vocabulary
    def prepare(self, texts: Sequence[str]) -> SpanModel:
        """Load the checkpoint's tokenizer, or train the catalogue tokenizer on `texts`."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        cfg = self.config
        if cfg.model_path is not None:
            from transformers import T5ForConditionalGeneration

            self.tokenizer_ = AutoTokenizer.from_pretrained(cfg.model_path)
            if self.tokenizer_.sep_token is None:
                self.tokenizer_.add_special_tokens({"sep_token": "[SEP]"})
            self.net_ = T5ForConditionalGeneration.from_pretrained(cfg.model_path)
            self.net_.resize_token_embeddings(len(self.tokenizer_))
        else:
            from gsid.text.catalogue_tokenizer import train_catalogue_tokenizer

            with tempfile.TemporaryDirectory() as tmp:
                path = train_catalogue_tokenizer(list(texts), cfg.vocab_size, Path(tmp) / "tok")
                self.tokenizer_ = AutoTokenizer.from_pretrained(path)
            self.net_ = self._scratch(len(self.tokenizer_))
        self.net_.to(self._device)
        self.copy_weight_ = torch.nn.Parameter(
            torch.tensor(self.config.copy_init, device=self._device)
        )
        return self

    def _scratch(self, vocab: int):
        from transformers import T5Config, T5ForConditionalGeneration

        c = self.config
        torch.manual_seed(c.seed)
        t5 = T5Config(
            vocab_size=vocab,
            d_model=c.d_model,
            d_kv=c.d_model // c.n_heads,
            d_ff=c.d_ff,
            num_layers=c.n_layers,
            num_decoder_layers=c.n_layers,
            num_heads=c.n_heads,
            dropout_rate=c.dropout,
            pad_token_id=0,
            decoder_start_token_id=0,
            eos_token_id=self.end_id,
        )
        return T5ForConditionalGeneration(t5)

    def _check(self) -> None:
        if self.tokenizer_ is None or self.net_ is None:
            raise NotFittedError("SpanModel is not prepared: call .prepare(texts) or load one")

    @property
    def sep_id(self) -> int:
        return int(self.tokenizer_.sep_token_id)

    @property
    def end_id(self) -> int:
        tok = self.tokenizer_
        return int(tok.eos_token_id if tok.eos_token_id is not None else tok.cls_token_id)

    @property
    def vocab_size(self) -> int:
        return int(self.net_.config.vocab_size)

    def continuation_mask(self) -> np.ndarray:
        """(V,) True for word pieces that continue a word ("##ing"; no "▁" in SentencePiece)."""
        if getattr(self, "_cont", None) is not None:
            return self._cont
        V = self.vocab_size
        out = np.zeros(V, bool)
        vocab = self.tokenizer_.get_vocab()
        # SentencePiece marks a word's start with "▁"; WordPiece (the catalogue tokenizer, also
        # in a checkpoint written by GSID pre-training) marks a continuation with "##"
        sentencepiece = any(piece.startswith("▁") for piece in vocab)
        for piece, i in vocab.items():
            if i < V:
                out[i] = (not piece.startswith("▁")) if sentencepiece else piece.startswith("##")
        self._cont = out
        return out

    def punctuation_mask(self) -> np.ndarray:
        """(V,) True for pieces made only of punctuation (no span begins or ends with one)."""
        if getattr(self, "_punct", None) is not None:
            return self._punct
        V = self.vocab_size
        out = np.zeros(V, bool)
        for piece, i in self.tokenizer_.get_vocab().items():
            core = piece.lstrip("#▁")
            if i < V and core and not any(ch.isalnum() for ch in core):
                out[i] = True
        self._punct = out
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, no special tokens."""
        self._check()
        if not texts:
            return []
        return self.tokenizer_(list(texts), add_special_tokens=False)["input_ids"]

    def join(self, spans: Sequence[Sequence[int]]) -> list[int]:
        """[[a, b], [c]] -> [a, b, SEP, c, SEP, END]."""
        out: list[int] = []
        for s in spans:
            out += [*s, self.sep_id]
        return [*out, self.end_id]

    # ------------------------------------------------------------------ tensors
    def _sources(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.tokenizer_(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_source_tokens,
            return_tensors="pt",
        )
        return b["input_ids"].to(self._device), b["attention_mask"].to(self._device)

    def _targets(self, targets: Sequence[Sequence[int]]) -> torch.Tensor:
        T = max(len(t) for t in targets)
        y = np.full((len(targets), T), -100, np.int64)  # -100: ignored by the loss
        for i, t in enumerate(targets):
            y[i, : len(t)] = t
        return torch.as_tensor(y, device=self._device)

    def token_logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) log-probability of each target token (0 where labels == -100)."""
        logits = self.net_(input_ids=ids, attention_mask=mask, labels=labels).logits  # (B, T, V)
        logits = logits.float() + self._copy_bias(ids, mask)[:, None, :]
        logp = torch.log_softmax(logits, -1)
        safe = labels.clamp_min(0)
        out = logp.gather(-1, safe[..., None]).squeeze(-1)
        return out * (labels >= 0)

    def _copy_bias(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V) copy prior: + copy_weight on every token of the source (0 elsewhere).

        Why: a T5 trained from scratch on a few thousand queries learns slowly that the spans
        it writes are mostly words of the query; one learned logit bonus for the source's own
        tokens (the simplest pointer-generator) gives it that prior from the first step."""
        hot = torch.zeros(ids.shape[0], self.vocab_size, device=ids.device)
        hot.scatter_(1, ids * mask, 1.0)
        hot[:, 0] = 0.0  # padding
        return hot * self.copy_weight_

    # ------------------------------------------------------------------ pre-training
    def pretrain(self, dataset, show_progress: bool | None = None) -> list[dict]:
        """GSID's domain-adaptive pre-training (gsid.models.pretrain: query generation, item
        cloze and suffix completion over the catalogue and the train queries, 1:1:1 per batch)
        of this T5, for `config.pretrain_batches` batches, before SFT. The task tokens join
        the vocabulary. Returns the loss log (also in history_)."""
        from gsid.models.config import GSIDConfig
        from gsid.models.model import GSIDModel
        from gsid.models.pretrain import pretrain
        from gsid.models.sampling import TrainData

        self._check()
        c = self.config
        cfg = GSIDConfig(backbone="t5", t5_config={}, pretrain_batches=c.pretrain_batches,
                         pretrain_lr=c.pretrain_lr, seed=c.seed)  # fmt: skip
        data = TrainData.from_dataset(dataset, "train", cfg.pseudo_queries_per_item, cfg.seed)
        host = GSIDModel(cfg, self.net_, self.tokenizer_).to(self._device)  # shares the T5
        with torch_threads(c.num_threads):
            log = pretrain(host, data, cfg, show_progress=show_progress)
        self.net_.eval()
        self._cont = self._punct = None  # the vocabulary grew
        self.history_ += [{"stage": "pretrain", **rec} for rec in log]
        return log

    # ------------------------------------------------------------------ SFT
    def fit(
        self,
        sources: Sequence[str],
        targets: Sequence[Sequence[int]],
        weights: np.ndarray | None = None,
        show_progress: bool | None = None,
    ) -> SpanModel:
        """Supervised fine-tuning: sources[i] -> targets[i] (token ids incl. SEP / END)."""
        self._check()
        if len(sources) == 0 or len(sources) != len(targets):
            raise DataValidationError(
                f"fit needs as many targets as sources (> 0); got {len(sources)} and {len(targets)}"
            )
        with torch_threads(self.config.num_threads):
            self._sft(list(sources), list(targets), weights, show_progress)
        return self

    def _sft(self, sources, targets, weights, show_progress) -> None:
        cfg = self.config
        w = (
            np.ones(len(sources), np.float32)
            if weights is None
            else np.asarray(weights, np.float32)
        )
        rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        params = decay_groups(
            [*self.net_.parameters(), self.copy_weight_], cfg.weight_decay, lr=cfg.lr
        )
        opt = torch.optim.AdamW(params)
        sched = one_cycle(opt, cfg.lr, cfg.epochs * int(np.ceil(len(sources) / cfg.batch_size)))
        self.net_.train()
        for epoch in progress(range(cfg.epochs), show_progress, desc="span model SFT epochs"):
            perm = rng.permutation(len(sources))
            total = 0.0
            for s in range(0, len(perm), cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                ids, mask = self._sources([sources[i] for i in idx])
                labels = self._targets([targets[i] for i in idx])
                tok = self.token_logprobs(ids, mask, labels)  # (b, T)
                per_ex = -tok.sum(1) / (labels >= 0).sum(1).clamp_min(1)
                wb = torch.as_tensor(w[idx], device=self._device)
                loss = (per_ex * wb).sum() / wb.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net_.parameters(), 1.0)
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            self.history_.append({"stage": "sft", "epoch": epoch, "loss": total / len(perm)})
            logger.info("span model SFT epoch %d: loss %.4f", epoch, total / len(perm))
        self.net_.eval()

    # ------------------------------------------------------------------ DPO
    @torch.no_grad()
    def sequence_logprobs(
        self, sources: Sequence[str], targets: Sequence[Sequence[int]], masks: np.ndarray
    ) -> np.ndarray:
        """(M,) sum of log-probabilities of the target tokens where masks (M, T) is True."""
        out = np.zeros(len(sources), np.float64)
        bs = self.config.batch_size
        for s in range(0, len(sources), bs):
            ids, mask = self._sources(sources[s : s + bs])
            labels = self._targets(targets[s : s + bs])
            tok = self.token_logprobs(ids, mask, labels)
            m = torch.as_tensor(masks[s : s + bs, : labels.shape[1]], device=tok.device)
            out[s : s + bs] = (tok * m).sum(1).double().cpu().numpy()
        return out

    def fit_preferences(
        self,
        sources: Sequence[str],
        chosen: Sequence[Sequence[int]],
        rejected: Sequence[Sequence[int]],
        show_progress: bool | None = None,
    ) -> SpanModel:
        """DPO against a frozen copy of the current model (the reference, whose log-probs are
        computed once, before training), with the chosen sequences' NLL kept (dpo.py)."""
        self._check()
        if len(sources) == 0 or not len(sources) == len(chosen) == len(rejected):
            raise DataValidationError("fit_preferences needs equally many (> 0) sources and pairs")
        with torch_threads(self.config.num_threads):
            self._dpo(list(sources), list(chosen), list(rejected), show_progress)
        return self

    def _dpo(self, sources, chosen, rejected, show_progress) -> None:
        cfg = self.config
        mc, mr = shared_prefix_masks(chosen, rejected)  # (M, T) each, shared prefix off
        self.net_.eval()
        ref_c = self.sequence_logprobs(sources, chosen, mc)
        ref_r = self.sequence_logprobs(sources, rejected, mr)
        rng = np.random.default_rng(cfg.seed + 1)
        torch.manual_seed(cfg.seed + 1)  # dropout: the same run gives the same model
        opt = torch.optim.AdamW(
            decay_groups(self.net_.parameters(), cfg.weight_decay, lr=cfg.dpo_lr)
        )
        self.net_.train()
        dev = self._device
        for epoch in progress(range(cfg.dpo_epochs), show_progress, desc="span model DPO epochs"):
            perm = rng.permutation(len(sources))
            total, acc = 0.0, 0.0
            for s in range(0, len(perm), cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                ids, mask = self._sources([sources[i] for i in idx])
                lc = self._targets([chosen[i] for i in idx])
                lr_ = self._targets([rejected[i] for i in idx])
                tc = self.token_logprobs(ids, mask, lc)  # (b, Tc)
                tr = self.token_logprobs(ids, mask, lr_)  # (b, Tr)
                pc = (tc * torch.as_tensor(mc[idx, : lc.shape[1]], device=dev)).sum(1)
                pr = (tr * torch.as_tensor(mr[idx, : lr_.shape[1]], device=dev)).sum(1)
                nll = -tc.sum(1) / (lc >= 0).sum(1).clamp_min(1)
                loss, margin = dpo_loss(
                    pc,
                    pr,
                    torch.as_tensor(ref_c[idx], dtype=pc.dtype, device=dev),
                    torch.as_tensor(ref_r[idx], dtype=pc.dtype, device=dev),
                    beta=cfg.dpo_beta,
                    sft_nll=nll,
                    sft_weight=cfg.dpo_sft_weight,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net_.parameters(), 1.0)
                opt.step()
                total += loss.item() * len(idx)
                acc += float((margin > 0).float().sum())
            rec = {
                "stage": "dpo",
                "epoch": epoch,
                "loss": total / len(perm),
                "acc": acc / len(perm),
            }
            self.history_.append(rec)
            logger.info(
                "span model DPO epoch %d: loss %.4f, margin > 0 on %.3f",
                epoch,
                rec["loss"],
                rec["acc"],
            )
        self.net_.eval()

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def encode(self, texts: Sequence[str]):
        """((B, S, d) encoder states, (B, S) source ids), (B, S) attention mask."""
        self._check()
        ids, mask = self._sources(texts)
        states = self.net_.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return (states, ids), mask

    @torch.no_grad()
    def start(self, enc, mask: torch.Tensor, beams: int = 1) -> dict[str, Any]:
        """Decoding state for `beams` beam slots of each of `encode`'s B queries (query b's
        slots are b * beams ...): the cross-attention keys/values and the copy bias (once per
        query), an empty self-attention cache."""
        from gsid.models.lexical.t5_step import T5Stepper

        states, ids = enc
        if self._stepper is None or self._stepper.net is not self.net_:
            self._stepper = T5Stepper(self.net_)
        state = self._stepper.start(states, mask, beams)
        # the copy bias is + copy_weight on a query's few distinct source tokens: kept as
        # (B, U) token ids and values and added to the rows decoded, not as a (B, V) matrix
        hot = self._copy_bias(ids, mask)  # (B, V)
        nonzero = (hot != 0).float()
        U = max(int(nonzero.sum(1).max()), 1)
        ids = nonzero.topk(U, dim=1).indices  # (B, U) the source tokens, then zero entries
        state["copy"] = (ids, hot.gather(1, ids))  # and their values
        return state

    @torch.no_grad()
    def step(
        self, state: dict[str, Any], prev: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One decoder step of the slots `rows` (n,) (None: every slot): prev (n,) their last
        tokens -> (n, V) log-probabilities. The state keeps the earlier steps' keys and values
        of the rows decoded (T5Stepper)."""
        logits = self._stepper.step(state, prev, rows)  # (n, V)
        ids, val = state["copy"]
        W = state["beams"]
        query = rows // W if rows is not None else torch.arange(len(prev), device=prev.device) // W
        ids, val = ids.index_select(0, query), val.index_select(0, query)
        return torch.log_softmax(logits.scatter_add_(1, ids, val), -1)

    def reorder(self, state: dict[str, Any], src: torch.Tensor) -> None:
        """The next step's row j continues row src[j] of the rows decoded last. A beam never
        moves to another query, so what depends on the query only — the cross-attention
        keys/values and the copy bias — stays where it is."""
        self._stepper.reorder(state, src)

    def keep(self, state: dict[str, Any], queries: torch.Tensor) -> None:
        """Only these query indices (B',) decode further: their cross-attention keys/values and
        copy bias stay (slots are renumbered b' * beams ...)."""
        self._stepper.keep(state, queries)
        state["copy"] = tuple(x.index_select(0, queries) for x in state["copy"])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        self._check()
        with atomic_dir(path, KIND) as tmp:
            self.net_.save_pretrained(tmp / "t5")
            self.tokenizer_.save_pretrained(tmp / "tokenizer")
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                config=self.config.to_dict(),
                copy_weight=float(self.copy_weight_.detach()),
                history=self.history_,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> SpanModel:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        obj = cls(SpanModelConfig.from_dict(m["config"]), device=device)
        try:
            obj.tokenizer_ = AutoTokenizer.from_pretrained(path / "tokenizer")
            obj.net_ = T5ForConditionalGeneration.from_pretrained(path / "t5").to(obj._device)
        except (OSError, ValueError, RuntimeError) as e:
            raise ArtifactError(f"{path}: span model unreadable ({e}); retrain it") from e
        obj.net_.eval()
        obj.copy_weight_ = torch.nn.Parameter(
            torch.tensor(float(m.get("copy_weight", 0.0)), device=obj._device)
        )
        obj.history_ = m.get("history", [])
        return obj
