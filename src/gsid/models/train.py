"""Progressive GSID training: step t learns codebook t while the codes of steps < t stay fixed.

    model, ids = train_gsid(dataset, GSIDConfig(n_levels=4, codebook_size=128), "runs/gsid")
    # runs/gsid/model  (GSIDModel.save), runs/gsid/ids (SemanticIDs), runs/gsid/train_log.json
    # runs/gsid/checkpoint  (removed at the end; a rerun resumes from it after a crash)

Optional step 0 (`align_encoder`, see align.py): the encoder alone is aligned with the
query-item contrastive loss before the code steps (after pre-training, when that is on).
Per level t: the frozen codes of steps < t are assigned to every item (greedy decoding); then
each batch teacher-forces items and their queries with the item's codes, and
  * the first `warmup_batches` batches use the contrastive loss only,
  * afterwards: InfoNCE(d_t of queries, d_t of items) + kl_weight * KL(item || query code
    distribution at step t) + commit_weight * CE(step-s logits, frozen codes), s < t;
  * codebook t moves by EMA towards the item representations assigned to each code (or by
    gradients with ema=False), codes unused over `dead_window` batches are re-seeded.
Launched by torchrun, each rank takes a slice of every global batch (see distributed.py).

Fine-tuning (`init_model=`, a GSIDModel or a saved model directory): the same progressive
schedule runs from the given model's weights, codebooks and EMA statistics instead of a fresh
build, so every step continues from its old codes (no random codebooks, no data seeding, no
pre-training or alignment again). Only the fields in FINE_TUNE_FIELDS (budget, optimiser,
bookkeeping) may differ from the model's own config; a short budget is the usual choice:
`config=model.config.replace(max_batches_per_level=100, warmup_batches=0)`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gsid._io import atomic_write_text
from gsid._progress import progress
from gsid.errors import GsidError
from gsid.models import distributed as dd
from gsid.models.config import GSIDConfig
from gsid.models.losses import code_kl, commitment, info_nce
from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData, batches, n_batches, positive_mask

logger = logging.getLogger(__name__)

# GSIDConfig fields a fine-tuning run may change: they set how long and how fast it trains, not
# the shape or the meaning of the model it starts from (everything else must match). The dead-code
# knobs are here because re-seeding a code moves the items that still use it (reseed_dead=False
# keeps every old code in place during a short fine-tune).
FINE_TUNE_FIELDS = frozenset(
    {
        "reseed_dead",
        "dead_window",
        "dead_threshold",
        "epochs_per_level",
        "max_batches_per_level",
        "warmup_batches",
        "lr",
        "encoder_lr",
        "weight_decay",
        "grad_clip",
        "batch_size",
        "seed",
        "device",
        "encode_batch_size",
        "checkpoint_every",
    }
)


def fine_tune_start(
    init_model: GSIDModel | str | os.PathLike, config: GSIDConfig, device
) -> GSIDModel:
    """A copy of `init_model` (weights, codebooks, EMA buffers) carrying `config`, which may
    differ from the model's own config only in FINE_TUNE_FIELDS; the caller's model is left
    untouched."""
    if isinstance(init_model, (str, os.PathLike)):
        init = GSIDModel.load(init_model, device=device)
    elif isinstance(init_model, GSIDModel):
        init = init_model
    else:
        raise GsidError(
            f"init_model must be a GSIDModel or the directory of a saved one, got "
            f"{type(init_model).__name__}"
        )
    old, new = init.config.to_dict(), config.to_dict()
    diff = sorted(k for k in new if k not in FINE_TUNE_FIELDS and old.get(k) != new[k])
    if diff:
        detail = ", ".join(f"{k}: model {old.get(k)!r} vs config {new[k]!r}" for k in diff)
        raise GsidError(
            f"init_model was trained with another model configuration ({detail}); a fine-tuning "
            f"config may change only {sorted(FINE_TUNE_FIELDS)}: start from "
            f"model.config.replace(...) or train a fresh model without init_model"
        )
    model = GSIDModel(config, copy.deepcopy(init.backbone), init.tokenizer)
    model.load_state_dict(init.state_dict(), strict=True)  # codebooks + EMA buffers included
    source = getattr(init, "encoder_source_", None)
    if source is not None and Path(source).exists():  # its pooled outputs stay cacheable
        model.encoder_source_ = source
    return model.to(device)


# ---------------------------------------------------------------------- features
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
    if source is None and cfg.backbone == "minilm" and cfg.pretrain_batches == 0:
        if cfg.align_encoder is None:  # the starting encoder, untouched
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


# ---------------------------------------------------------------------- one batch
def batch_loss(
    model: GSIDModel,
    level: int,
    warm: bool,
    item_mem,
    item_mask,
    item_prefix,
    q_mem,
    q_mask,
    q_prefix,
    q_item_global: torch.Tensor,
    pos: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Loss of one (global) batch at step `level`; inputs are this rank's slice.

    item_prefix (b, t) / q_prefix (q, t): frozen codes of steps < t (the query uses its item's).
    q_item_global (Q,): global batch position of each query's item; pos (Q, I) global mask.
    Returns the loss (identical on every rank), its parts, and the local item d_t (b, H)."""
    cfg = model.config
    t = level
    d_i = model.decode(item_mem, item_mask, item_prefix)  # (b, t+1, H)
    d_q = model.decode(q_mem, q_mask, q_prefix)  # (q, t+1, H)
    D_i, D_q = dd.gather(d_i), dd.gather(d_q)  # (I, t+1, H), (Q, t+1, H)
    contrastive = info_nce(D_q[:, t], D_i[:, t], pos, cfg.temperature)
    parts = {"contrastive": float(contrastive.detach())}
    loss = contrastive
    if not warm:
        P_i = dd.gather_nograd(item_prefix)  # (I, t)
        li = [model.step_logits(D_i[:, s], s) for s in range(t + 1)]  # each (I, K)
        lq = [model.step_logits(D_q[:, s], s) for s in range(t + 1)]  # each (Q, K)
        if cfg.kl_weight > 0:
            kl = code_kl(lq[t], li[t][q_item_global])
            loss = loss + cfg.kl_weight * kl
            parts["kl"] = float(kl.detach())
        if cfg.commit_weight > 0 and t > 0:
            commit = 0.5 * (commitment(li[:t], P_i) + commitment(lq[:t], P_i[q_item_global]))
            loss = loss + cfg.commit_weight * commit
            parts["commit"] = float(commit.detach())
        if not cfg.ema:
            # gradient codebooks need a pull towards their items (the EMA does it otherwise):
            # sharpen each item onto its current best code (VQ codebook loss in CE form)
            target = li[t].detach().argmax(-1)
            vq = torch.nn.functional.cross_entropy(li[t], target)
            loss = loss + vq
            parts["codebook"] = float(vq.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts, d_i[:, t]


# ---------------------------------------------------------------------- trainer
class GSIDTrainer:
    """Progressive trainer. `fit(data)` returns self; `model_`, `item_codes_`, `log_` after."""

    def __init__(self, config: GSIDConfig | None = None, cache_dir: str | None = None) -> None:
        self.config = config or GSIDConfig()
        self.cache_dir = cache_dir
        self.model_: GSIDModel | None = None
        self.item_codes_: np.ndarray | None = None
        self.log_: list[dict] = []
        self.level_summary_: list[dict] = []
        self.final_levels_: list[dict] = []
        self.wall_s_: float = 0.0
        self.fine_tuning_ = False

    # -- helpers
    def _optimizer(self, model: GSIDModel) -> torch.optim.Optimizer:
        cfg = self.config
        enc = [p for p in model.encoder_parameters() if p.requires_grad]
        rest = [p for p in model.decoder_parameters() if p.requires_grad]
        if not cfg.ema:
            rest.append(model.codebooks.weight)
        groups = [{"params": rest, "lr": cfg.lr}]
        if enc:
            groups.append({"params": enc, "lr": cfg.encoder_lr})
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)

    @torch.no_grad()
    def assign_items(
        self,
        model: GSIDModel,
        feats: Features,
        n_levels: int,
        show_progress: bool | None = None,
        prefix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Codes (N, n_levels) of every item (eval mode, batched). With `prefix` (N, n_levels-1),
        the frozen codes of the earlier steps, only the newest level is decoded (teacher-forced
        on the prefix); without it every level is decoded greedily."""
        was = model.training
        model.eval()
        N = feats.data.n_items
        out = np.zeros((N, n_levels), np.int32)
        bs = self.config.encode_batch_size
        for s in progress(range(0, N, bs), show_progress, desc=f"assign {n_levels} codes"):
            rows = np.arange(s, min(N, s + bs))
            mem, mask = feats.items(rows)
            if prefix is None:
                codes, _ = model.generate(mem, mask, n_levels)
                out[rows] = codes.cpu().numpy()
            else:
                p = torch.as_tensor(prefix[rows], dtype=torch.long, device=model.device)
                d = model.decode(mem, mask, p)[:, -1]  # (b, H) state of the new step
                out[rows, :-1] = prefix[rows]
                out[rows, -1] = model.step_logits(d, n_levels - 1).argmax(-1).cpu().numpy()
        model.train(was)
        return out

    def _checkpoint(self, ckdir: Path, model, opt, level: int, batch: int, gen, item_codes) -> None:
        if dd.rank() != 0:
            return
        model.save(ckdir / "model")
        state = {
            "level": level,
            "batch": batch,
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "gen": gen.get_state(),
            "item_codes": item_codes,
            "log": self.log_,
            "level_summary": self.level_summary_,
            "wall_s": self.wall_s_ + (time.time() - self._t0),
        }
        tmp = ckdir / "trainer.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, ckdir / "trainer.pt")

    def _align(self, model: GSIDModel, dataset, split: str, out_dir, show_progress) -> None:
        """Step 0 (indexer/align.py). Rank 0 fine-tunes and saves; the other ranks load its
        weights, so every replica starts the code steps from the same encoder."""
        from gsid.models.align import align_encoder

        if dataset is None:
            raise GsidError(
                "align_encoder needs the Dataset (its query-item pairs): use train_gsid"
            )
        if out_dir is None:
            if dd.is_distributed():
                raise GsidError("distributed training with align_encoder needs an out_dir")
            self._tmp = tempfile.TemporaryDirectory(prefix="gsid-align-")
            work = Path(self._tmp.name)
        else:
            work = Path(out_dir)
        if dd.rank() == 0:
            source = align_encoder(
                model, dataset, self.config, work, split, show_progress, self.cache_dir
            )
        dd.barrier()
        if dd.rank() != 0:
            from transformers import AutoModel

            source = str(work / "aligned-encoder" / "model")
            aligned = AutoModel.from_pretrained(source, add_pooling_layer=False)
            model.backbone.load_state_dict(aligned.state_dict())
        if self.config.freeze_encoder:  # its pooled outputs can come from the shared cache
            model.encoder_source_ = source

    # -- main loop
    def _build(self, data: TrainData, out_dir) -> GSIDModel:
        """A fresh model; with tokenizer_vocab, over a WordPiece tokenizer trained on the titles
        and the training queries (kept in out_dir/catalogue-tokenizer, or in a temporary
        directory without out_dir; the model holds the tokenizer in memory and saves its own
        copy)."""
        if not self.config.tokenizer_vocab:
            return GSIDModel.build(self.config)
        from gsid.text.catalogue_tokenizer import train_catalogue_tokenizer

        texts = data.item_texts + data.all_queries()
        with tempfile.TemporaryDirectory(prefix="gsid-tok-") as tmp:
            where = Path(out_dir) if out_dir is not None else Path(tmp)
            tok = train_catalogue_tokenizer(
                texts, self.config.tokenizer_vocab, where / "catalogue-tokenizer"
            )
            return GSIDModel.build(self.config, tokenizer_dir=tok)

    def fit(
        self,
        data: TrainData,
        out_dir: str | os.PathLike | None = None,
        show_progress: bool | None = None,
        resume: bool = True,
        stop_after: int | None = None,
        dataset=None,
        split: str = "train",
        init_model: GSIDModel | str | os.PathLike | None = None,
    ) -> GSIDTrainer:
        """Train all levels. With `out_dir`, a checkpoint is kept in out_dir/checkpoint and a
        rerun resumes from it. `stop_after` (total batches) interrupts on purpose (tests).
        `dataset` (and its `split`) is needed by the encoder alignment step only.
        `init_model` (a GSIDModel or a saved model directory) fine-tunes that model instead of
        building a fresh one (see the module docstring); it is not modified."""
        cfg = self.config
        from gsid._device import pick_device

        device = pick_device(cfg.device)
        W = dd.world_size()
        if W > 1 and cfg.batch_size % W:
            raise GsidError(f"batch_size {cfg.batch_size} must divide by the world size {W}")
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        ckdir = Path(out_dir) / "checkpoint" if out_dir is not None else None
        state = None
        self.fine_tuning_ = init_model is not None
        if ckdir is not None and resume and (ckdir / "trainer.pt").is_file():
            model = GSIDModel.load(ckdir / "model", device=device)
            saved = {k: v for k, v in model.config.to_dict().items() if k != "device"}
            wanted = {k: v for k, v in cfg.to_dict().items() if k != "device"}
            if saved != wanted:
                diff = sorted(k for k in wanted if saved.get(k) != wanted[k])
                raise GsidError(
                    f"{ckdir} holds a run with another configuration (differs in {diff}); "
                    f"delete that checkpoint, pass resume=False, or use another out_dir"
                )
            state = torch.load(ckdir / "trainer.pt", weights_only=False)
            logger.info(
                "resuming from %s (level %d, batch %d)", ckdir, state["level"], state["batch"]
            )
        elif init_model is not None:
            model = fine_tune_start(init_model, cfg, device)
        else:
            model = self._build(data, out_dir).to(device)
            if cfg.pretrain_batches > 0:
                from gsid.models.pretrain import pretrain

                pretrain(model, data, cfg, show_progress=show_progress)
            if cfg.align_encoder is not None:
                self._align(model, dataset, split, out_dir, show_progress)
        model.train()
        opt = self._optimizer(model)
        gen = torch.Generator().manual_seed(cfg.seed)
        start_level, start_batch, item_codes = 0, 0, None
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            gen.set_state(state["gen"])
            start_level, start_batch = state["level"], state["batch"]
            item_codes = state["item_codes"]
            self.log_ = list(state["log"])
            self.level_summary_ = list(state["level_summary"])
            self.wall_s_ = float(state["wall_s"])
        self._t0 = time.time()
        feats = Features(model, data, self.cache_dir, show_progress)
        qsets = data.query_sets()
        per_epoch = n_batches(data.n_items, cfg)
        total = math.ceil(cfg.epochs_per_level * per_epoch)
        if cfg.max_batches_per_level is not None:
            total = min(total, cfg.max_batches_per_level)
        done_total = 0
        m = cfg.queries_per_item if cfg.multi_query else 1
        for level in range(start_level, cfg.n_levels):
            if level > 0 and (item_codes is None or item_codes.shape[1] < level):
                item_codes = self.assign_items(model, feats, level, show_progress)
            prefix_all = (
                item_codes[:, :level] if level > 0 else np.zeros((data.n_items, 0), np.int32)
            )
            b = 0 if level != start_level else start_batch
            window_codes: list[np.ndarray] = []
            bar = progress(
                range(total), show_progress, desc=f"GSID step {level + 1}/{cfg.n_levels}", initial=b
            )
            epoch, seen = 0, 0
            while b < total:
                yielded = 0
                for items, queries, q_item in batches(
                    data, cfg, level, epoch, prefix_all if level else None, W
                ):
                    yielded += 1
                    if seen < b:  # resume: skip the batches already trained
                        seen += 1
                        continue
                    seen += 1
                    if b >= total:
                        break
                    if W > 1 and len(queries) != len(items) * m:
                        raise GsidError(
                            "distributed training needs every item to bring "
                            "queries_per_item queries: set pseudo_queries_per_item >= 1"
                        )
                    parts = self._step(
                        model, opt, feats, level, b, items, queries, q_item, qsets, prefix_all, gen
                    )
                    window_codes.append(parts.pop("_codes"))
                    b += 1
                    done_total += 1
                    bar.update(1)
                    if b % 25 == 0 or b == total:
                        used = np.unique(np.concatenate(window_codes)) if window_codes else []
                        rec = {"level": level, "batch": b, **parts, "codes_used_recent": len(used)}
                        self.log_.append(rec)
                        logger.info("gsid %s", rec)
                        window_codes = []
                    if ckdir is not None and cfg.checkpoint_every and b % cfg.checkpoint_every == 0:
                        self._checkpoint(ckdir, model, opt, level, b, gen, item_codes)
                    if stop_after is not None and done_total >= stop_after:
                        if ckdir is not None:
                            self._checkpoint(ckdir, model, opt, level, b, gen, item_codes)
                        bar.close()
                        self.model_ = model
                        return self
                if yielded == 0:
                    raise GsidError(
                        "no training batch could be formed: every item needs a query "
                        "(set pseudo_queries_per_item >= 1) and batch_size >= 2"
                    )
                epoch += 1
            bar.close()
            # the codes of earlier steps stay as they were when their step ended (the paper's
            # frozen steps): re-decoding them greedily would let them drift, since the shared
            # decoder keeps training after their step
            item_codes = self.assign_items(
                model, feats, level + 1, show_progress, prefix=prefix_all if level else None
            )
            summary = level_stats(item_codes, level, cfg.codebook_size)
            self.level_summary_.append(summary)
            logger.info("gsid step %d done: %s", level + 1, summary)
            if ckdir is not None:
                self._checkpoint(ckdir, model, opt, level + 1, 0, gen, item_codes)
        self.wall_s_ += time.time() - self._t0
        # every level of the final codes, and how far the final model has drifted from them:
        # the share of items whose greedy decoding still gives their first l frozen codes (the
        # shared decoder keeps training after a step ends; queries are decoded greedily)
        self.final_levels_ = [
            level_stats(item_codes, lv, cfg.codebook_size) for lv in range(item_codes.shape[1])
        ]
        greedy = self.assign_items(model, feats, item_codes.shape[1], show_progress)
        for lv, rec in enumerate(self.final_levels_):
            same = (greedy[:, : lv + 1] == item_codes[:, : lv + 1]).all(1)
            rec["greedy_agreement"] = float(same.mean())
        logger.info("gsid final codes per level: %s", self.final_levels_)
        self.model_ = model
        self.item_codes_ = item_codes
        self.features_ = feats
        return self

    def _step(
        self, model, opt, feats: Features, level, b, items, queries, q_item, qsets, prefix_all, gen
    ) -> dict:
        cfg = self.config
        W = dd.world_size()
        dev = model.device
        warm = b < cfg.warmup_batches
        pos = torch.as_tensor(positive_mask(items, queries, q_item, qsets), device=dev)
        isl = dd.shard(len(items))
        qsl = dd.shard(len(queries)) if W > 1 else slice(0, len(queries))
        li = items[isl]
        lq = queries[qsl]
        item_prefix = torch.as_tensor(prefix_all[li], dtype=torch.long, device=dev)
        q_prefix = torch.as_tensor(prefix_all[items[q_item[qsl]]], dtype=torch.long, device=dev)
        im, imask = feats.items(li)
        qm, qmask = feats.queries(lq)
        loss, parts, d_t = batch_loss(
            model,
            level,
            warm,
            im,
            imask,
            item_prefix,
            qm,
            qmask,
            q_prefix,
            torch.as_tensor(q_item, device=dev),
            pos,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"]]
        dd.average_gradients(params)
        frozen = None
        if not cfg.ema and model.codebooks.weight.grad is not None:
            keep = torch.zeros_like(model.codebooks.weight.grad)
            keep[level] = 1.0  # codebooks of other steps are frozen
            model.codebooks.weight.grad.mul_(keep)
            frozen = model.codebooks.weight.detach().clone()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if frozen is not None:  # AdamW's momentum and weight decay would still move them
            with torch.no_grad():
                others = torch.ones(len(frozen), dtype=torch.bool)
                others[level] = False
                model.codebooks.weight[others] = frozen[others]
        with torch.no_grad():
            # a fine-tuned codebook keeps its old codes: never re-seed it from a batch
            if cfg.init_from_data and b == cfg.warmup_batches and not self.fine_tuning_:
                model.codebooks.seed_from(level, dd.gather_nograd(d_t.contiguous()), gen)
            codes = model.step_logits(d_t, level).argmax(-1)
            if not warm:
                if cfg.ema:
                    model.codebooks.ema_update(level, d_t, codes)
                model.codebooks.track(level, codes)
                if cfg.reseed_dead:
                    n = model.codebooks.reseed_dead(
                        level,
                        dd.gather_nograd(d_t.contiguous()),
                        cfg.dead_window,
                        cfg.dead_threshold,
                        gen,
                    )
                    parts["reseeded"] = n
        parts["_codes"] = dd.gather_nograd(codes).cpu().numpy()
        return parts


def level_stats(codes: np.ndarray, level: int, K: int) -> dict:
    """Utilisation of step `level` over all items: distinct codes, distinct prefixes, the
    largest code's share and the perplexity of the code distribution."""
    c = codes[:, level]
    counts = np.bincount(c, minlength=K)
    p = counts[counts > 0] / counts.sum()
    prefixes = np.unique(codes[:, : level + 1], axis=0)
    return {
        "level": level,
        "codes_used": int((counts > 0).sum()),
        "codebook_size": K,
        "top_code_share": float(p.max()),
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
        "distinct_prefixes": int(len(prefixes)),
    }


# ---------------------------------------------------------------------- entry point
def train_gsid(
    dataset,
    config: GSIDConfig | dict | None = None,
    out_dir: str | os.PathLike | None = None,
    show_progress: bool | None = None,
    cache_dir: str | None = None,
    collisions: str = "append",
    resume: bool = True,
    split: str = "train",
    init_model: GSIDModel | str | os.PathLike | None = None,
):
    """Train GSID on `dataset` (a gsid Dataset) and assign codes to its whole catalogue.

    Returns (model, SemanticIDs). With `out_dir`: out_dir/model, out_dir/ids,
    out_dir/train_log.json are written (rank 0) and out_dir/checkpoint allows resuming.
    `init_model` (a GSIDModel or a saved model directory) fine-tunes it on `dataset` (e.g. a
    grown catalogue) instead of training from scratch; `config` then defaults to its own."""
    from gsid.models.assign import to_semantic_ids

    if config is None and isinstance(init_model, GSIDModel):
        config = init_model.config
    elif config is None and init_model is not None:
        from gsid._io import read_manifest
        from gsid.models.model import FORMAT_VERSION, KIND

        config = read_manifest(init_model, KIND, FORMAT_VERSION)["config"]
    cfg = config if isinstance(config, GSIDConfig) else GSIDConfig.from_dict(dict(config or {}))
    data = TrainData.from_dataset(dataset, split, cfg.pseudo_queries_per_item, cfg.seed)
    logger.info(
        "GSID training data: %d items, %d with logged queries", data.n_items, data.n_with_queries()
    )
    trainer = GSIDTrainer(cfg, cache_dir).fit(
        data, out_dir, show_progress, resume, dataset=dataset, split=split, init_model=init_model
    )
    model = trainer.model_
    provenance = {
        "dataset": getattr(dataset, "name", "dataset"),
        "n_items_with_queries": data.n_with_queries(),
        "levels": trainer.level_summary_,
        "final_levels": trainer.final_levels_,
        "wall_s": round(trainer.wall_s_, 1),
        "pretrained": cfg.pretrain_batches > 0,
        "encoder_aligned": cfg.align_encoder is not None,
    }
    if init_model is not None:
        provenance["fine_tuned_from"] = (
            str(init_model) if isinstance(init_model, (str, os.PathLike)) else "a GSIDModel"
        )
    ids = to_semantic_ids(data.item_ids, trainer.item_codes_, cfg, collisions, provenance)
    if out_dir is not None and dd.rank() == 0:
        out = Path(out_dir)
        model.save(out / "model", extra={"levels": trainer.level_summary_})
        ids.save(out / "ids")
        atomic_write_text(
            out / "train_log.json",
            json.dumps(
                {
                    "log": trainer.log_,
                    "levels": trainer.level_summary_,
                    "final_levels": trainer.final_levels_,
                    "wall_s": trainer.wall_s_,
                },
                indent=1,
            ),
        )
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    model.train_log_ = trainer.log_
    model.level_summary_ = trainer.level_summary_
    model.final_levels_ = trainer.final_levels_
    model.item_codes_ = trainer.item_codes_
    return model, ids


# ---------------------------------------------------------------------- torchrun entry point
def main(argv: list[str] | None = None) -> None:
    """python -m gsid.models.train --data DIR --out DIR [--set key=json ...]
    (or under torchrun --nproc_per_node N for data-parallel training)."""
    import argparse

    from gsid.data.dataset import Dataset

    ap = argparse.ArgumentParser(prog="python -m gsid.models.train", description=main.__doc__)
    ap.add_argument("--data", required=True, help="a dataset directory written by Dataset.save")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="GSIDConfig fields, e.g. n_levels=4")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    config = GSIDConfig.from_dict(cfg)
    dd.init_from_env(config.device)
    try:
        train_gsid(Dataset.load(args.data), config, args.out, cache_dir=args.cache)
    finally:
        if dd.is_distributed():
            import torch.distributed as dist

            dist.destroy_process_group()


if __name__ == "__main__":
    main()
