"""Train GSID on a dataset and write its artifacts: `train_gsid`, and the torchrun entry point
(`python -m gsid.models.train`). The trainer itself is trainer.py.

    model, ids = train_gsid(dataset, GSIDConfig(n_levels=4, codebook_size=128), "runs/gsid")
    # runs/gsid/model  (GSIDModel.save), runs/gsid/ids (SemanticIDs), runs/gsid/train_log.json
    # runs/gsid/checkpoint  (removed at the end; a rerun resumes from it after a crash)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from gsid._io import atomic_write_text
from gsid.models import distributed as dd
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData
from gsid.models.trainer import GSIDTrainer

logger = logging.getLogger(__name__)


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

        config = read_manifest(init_model, KIND, FORMAT_VERSION, verify=False)["config"]
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
