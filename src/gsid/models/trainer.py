"""The progressive GSID trainer (`GSIDTrainer`): step t learns codebook t while the codes of steps < t stay fixed.

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

import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gsid._optim import decay_groups
from gsid._progress import progress
from gsid.errors import GsidError
from gsid.models import distributed as dd
from gsid.models.config import GSIDConfig
from gsid.models.features import Features
from gsid.models.fine_tune import fine_tune_start
from gsid.models.model import GSIDModel
from gsid.models.objective import batch_loss
from gsid.models.sampling import TrainData, batches, n_batches, positive_mask

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- trainer
class _Run:
    """The moving parts of one fit: model, optimizer, generator, features, budget, counters."""

    def __init__(self, model, opt, gen, feats, ckdir) -> None:
        self.model, self.opt, self.gen, self.feats, self.ckdir = model, opt, gen, feats, ckdir
        self.qsets: dict = {}
        self.total = 0
        self.done = 0
        self.stop_after: int | None = None


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
        codebooks = [] if cfg.ema else [model.codebooks.weight]
        # weight decay on weight matrices only: not on norms, biases or codebooks
        groups = decay_groups(rest + codebooks, cfg.weight_decay, codebooks, lr=cfg.lr)
        if enc:
            groups += decay_groups(enc, cfg.weight_decay, lr=cfg.encoder_lr)
        return torch.optim.AdamW(groups)

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
        building a fresh one (see the module docstring); it is not modified.

        Phases: start (resume, fine-tune or build: pre-training, step 0), then one progressive
        step per level (_train_level), then the final codes and their drift (_finish)."""
        cfg = self.config
        W = dd.world_size()
        if W > 1 and cfg.batch_size % W:
            raise GsidError(f"batch_size {cfg.batch_size} must divide by the world size {W}")
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        ckdir = Path(out_dir) / "checkpoint" if out_dir is not None else None
        self.fine_tuning_ = init_model is not None
        model, state = self._start(
            data, out_dir, ckdir, resume, init_model, dataset, split, show_progress
        )
        model.train()
        opt = self._optimizer(model)
        gen = torch.Generator().manual_seed(cfg.seed)
        start_level, start_batch, item_codes = self._restore(state, opt, gen)
        self._t0 = time.time()
        run = _Run(model, opt, gen, Features(model, data, self.cache_dir, show_progress), ckdir)
        run.qsets = data.query_sets()
        per_epoch = n_batches(data.n_items, cfg)
        run.total = math.ceil(cfg.epochs_per_level * per_epoch)
        if cfg.max_batches_per_level is not None:
            run.total = min(run.total, cfg.max_batches_per_level)
        run.stop_after = stop_after
        for level in range(start_level, cfg.n_levels):
            if level > 0 and (item_codes is None or item_codes.shape[1] < level):
                item_codes = self.assign_items(model, run.feats, level, show_progress)
            prefix_all = (
                item_codes[:, :level] if level > 0 else np.zeros((data.n_items, 0), np.int32)
            )
            first = start_batch if level == start_level else 0
            if not self._train_level(
                run, data, level, first, prefix_all, item_codes, show_progress
            ):
                self.model_ = model  # interrupted on purpose (stop_after)
                return self
            # the codes of earlier steps stay as they were when their step ended (the paper's
            # frozen steps): re-decoding them greedily would let them drift, since the shared
            # decoder keeps training after their step
            item_codes = self.assign_items(
                model, run.feats, level + 1, show_progress, prefix=prefix_all if level else None
            )
            summary = level_stats(item_codes, level, cfg.codebook_size)
            self.level_summary_.append(summary)
            logger.info("gsid step %d done: %s", level + 1, summary)
            if ckdir is not None:
                self._checkpoint(ckdir, model, opt, level + 1, 0, gen, item_codes)
        self.wall_s_ += time.time() - self._t0
        self._finish(model, run.feats, item_codes, show_progress)
        return self

    def _start(self, data, out_dir, ckdir, resume, init_model, dataset, split, show_progress):
        """The model to train and the checkpoint state to resume from (None for a new run)."""
        cfg = self.config
        from gsid._device import pick_device

        device = pick_device(cfg.device)
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
            return model, state
        if init_model is not None:
            return fine_tune_start(init_model, cfg, device), None
        model = self._build(data, out_dir).to(device)
        if cfg.pretrain_batches > 0:
            from gsid.models.pretrain import pretrain

            pretrain(model, data, cfg, show_progress=show_progress)
        if cfg.align_encoder is not None:
            self._align(model, dataset, split, out_dir, show_progress)
        return model, None

    def _restore(self, state, opt, gen) -> tuple[int, int, np.ndarray | None]:
        """Optimizer, random states and log of a checkpoint; where to resume."""
        if state is None:
            return 0, 0, None
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        gen.set_state(state["gen"])
        self.log_ = list(state["log"])
        self.level_summary_ = list(state["level_summary"])
        self.wall_s_ = float(state["wall_s"])
        return state["level"], state["batch"], state["item_codes"]

    def _train_level(self, run, data, level, b, prefix_all, item_codes, show_progress) -> bool:
        """Batches of one progressive step, from batch `b` (a resumed run) to the budget.
        Returns False when stopped on purpose (stop_after)."""
        cfg, model = self.config, run.model
        W = dd.world_size()
        m = cfg.queries_per_item if cfg.multi_query else 1
        window_codes: list[np.ndarray] = []
        bar = progress(
            range(run.total), show_progress, desc=f"GSID step {level + 1}/{cfg.n_levels}", initial=b
        )
        epoch, seen = 0, 0
        while b < run.total:
            yielded = 0
            for items, queries, q_item in batches(
                data, cfg, level, epoch, prefix_all if level else None, W
            ):
                yielded += 1
                if seen < b:  # resume: skip the batches already trained
                    seen += 1
                    continue
                seen += 1
                if b >= run.total:
                    break
                if W > 1 and len(queries) != len(items) * m:
                    raise GsidError(
                        "distributed training needs every item to bring "
                        "queries_per_item queries: set pseudo_queries_per_item >= 1"
                    )
                parts = self._step(
                    model, run.opt, run.feats, level, b, items, queries, q_item, run.qsets,
                    prefix_all, run.gen,
                )  # fmt: skip
                window_codes.append(parts.pop("_codes"))
                b += 1
                run.done += 1
                bar.update(1)
                if b % 25 == 0 or b == run.total:
                    used = np.unique(np.concatenate(window_codes)) if window_codes else []
                    rec = {"level": level, "batch": b, **parts, "codes_used_recent": len(used)}
                    self.log_.append(rec)
                    logger.info("gsid %s", rec)
                    window_codes = []
                every = cfg.checkpoint_every
                if run.ckdir is not None and every and b % every == 0:
                    self._checkpoint(run.ckdir, model, run.opt, level, b, run.gen, item_codes)
                if run.stop_after is not None and run.done >= run.stop_after:
                    if run.ckdir is not None:
                        self._checkpoint(run.ckdir, model, run.opt, level, b, run.gen, item_codes)
                    bar.close()
                    return False
            if yielded == 0:
                raise GsidError(
                    "no training batch could be formed: every item needs a query "
                    "(set pseudo_queries_per_item >= 1) and batch_size >= 2"
                )
            epoch += 1
        bar.close()
        return True

    def _finish(self, model, feats, item_codes, show_progress) -> None:
        """Every level of the final codes, and how far the final model has drifted from them:
        the share of items whose greedy decoding still gives their first l frozen codes (the
        shared decoder keeps training after a step ends; queries are decoded greedily)."""
        cfg = self.config
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
        "distinct_prefixes": len(prefixes),
    }
