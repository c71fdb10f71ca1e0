"""GSID on Home Depot: train on the train split, report dev q2i / i2i / code accuracy / utilisation.

    python benchmarks/gsid_homedepot.py --out benchmarks/results/gsid_homedepot.json

CPU-sized defaults: the encoder is frozen and read once through the shared embedding cache
(pooled memory), so the code steps only move the 1-layer code decoder and the codebooks. The
encoder is the packaged MiniLM, or (--align-epochs N) MiniLM aligned on the train pairs first
(step 0, see gsid.models.align), or any encoder directory (--encoder). Pass --trainable-encoder
to train the encoder in every code step as the paper does (needs a GPU at this scale).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
from _provenance import provenance, provenance_markdown, write_results

from gsid.data.importers import import_dataset
from gsid.eval import run_bench
from gsid.models.config import GSIDConfig
from gsid.models.train import train_gsid
from gsid.retrieval.dense import DenseRetriever
from gsid.retrieval.gsid import GSIDRetriever


def gsid_eval(model, ds, cache: str, frozen_encoder: str | None) -> dict:
    """Every GSID number from the one harness (run_bench): q2i of three read-outs of the
    decoder states with the items under the codes frozen in training, code agreement, i2i; the
    same with items decoded greedily by the final model; and, when the encoder is frozen, the
    encoder itself as a dense retriever (the embeddings GSID's code steps start from)."""
    trained = {"codes": "trained", "cache_dir": cache}
    methods = {
        "concat": GSIDRetriever.from_model(model, **trained),
        "first": GSIDRetriever.from_model(model, representation="first", **trained),
        "last": GSIDRetriever.from_model(model, representation="last", **trained),
        "greedy_items": GSIDRetriever.from_model(model, cache_dir=cache),
    }
    if frozen_encoder is not None:
        cfg = model.config  # the encoder read as GSID reads it
        methods["encoder"] = DenseRetriever(
            model=frozen_encoder,
            cache_dir=cache,
            batch_size=cfg.encode_batch_size,
            max_seq_length=cfg.max_seq_length,
        )
    res = run_bench(ds, methods, split="dev", timing=False, i2i=True).methods
    c = res["concat"]
    report = {
        "q2i": c.metrics,
        "q2i_first": res["first"].metrics,
        "q2i_last": res["last"].metrics,
        **c.extra,
        "n_queries": c.metrics["overall"]["n"],
        "representation": "concat",
        "greedy_items": {
            "q2i": res["greedy_items"].metrics["overall"],
            "code_accuracy": res["greedy_items"].extra["code_accuracy"],
        },
    }
    return report, (res["encoder"].metrics if "encoder" in res else None)


def _f(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def to_markdown(r: dict) -> str:
    """Title, provenance and the dev q2i table of one run (the JSON holds the rest)."""
    ev, c = r["eval"], r["config"]
    lines = [
        f"# GSID on Home Depot {r['split']}",
        "",
        *provenance_markdown(r),
        f"- GSID: {c.get('n_levels')} x {c.get('codebook_size')} codes, "
        f"{c.get('epochs_per_level')} epoch(s) per step, torch threads {r['torch_threads']}; "
        f"{ev.get('n_queries')} dev queries; {r['n_distinct_full_codes']} distinct full codes; "
        f"train {r['wall_s']['train_incl_features']} s (incl. features), "
        f"eval {r['wall_s']['eval']} s",
        "",
        "| read-out | R@1 | R@10 | R@100 | MRR@100 |",
        "|---|---|---|---|---|",
    ]
    rows = [(k, ev[k]["overall"]) for k in ("q2i", "q2i_first", "q2i_last")]
    rows.append(("greedy item codes (q2i)", ev["greedy_items"]["q2i"]))
    if r.get("baseline_frozen_minilm_q2i"):
        rows.append(("encoder alone (cosine)", r["baseline_frozen_minilm_q2i"]["overall"]))
    for name, o in rows:
        lines.append(
            f"| {name} | {_f(o.get('R@1'))} | {_f(o.get('R@10'))} | {_f(o.get('R@100'))} | "
            f"{_f(o.get('MRR@100'))} |"
        )
    lines += [
        "",
        f"- code accuracy: {ev.get('code_accuracy')}; i2i: {ev.get('i2i')}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="/work/shared/data/homedepot")
    ap.add_argument("--out", default="benchmarks/results/gsid_homedepot.json")
    ap.add_argument("--run-dir", default="runs/gsid_homedepot")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--codebook-size", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--pseudo", type=int, default=0, help="pseudo-queries per item without a query")
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--trainable-encoder", action="store_true")
    ap.add_argument(
        "--align-epochs",
        type=int,
        default=0,
        help="step 0: contrastive alignment of the encoder for this many epochs (0 = off)",
    )
    ap.add_argument(
        "--encoder", default=None, help="start from this encoder directory (GSIDConfig.model_path)"
    )
    ap.add_argument("--set", nargs="*", default=[], help="extra GSIDConfig fields: key=json")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = {}
    for s in args.set:
        k, _, v = s.partition("=")
        extra[k] = json.loads(v)
    settings = dict(
        backbone="minilm",
        memory="pooled",
        freeze_encoder=not args.trainable_encoder,
        n_levels=args.levels,
        codebook_size=args.codebook_size,
        batch_size=args.batch_size,
        epochs_per_level=args.epochs,
        pseudo_queries_per_item=args.pseudo,
        max_seq_length=args.max_seq_length,
        warmup_batches=50,
        dead_window=50,
        lr=1e-3,
        decoder_layers=1,
        decoder_ff_mult=2,
        memory_skip=True,
        model_path=args.encoder,
        align_encoder={"epochs": args.align_epochs, "max_seq_length": 32}
        if args.align_epochs
        else None,
    )
    cfg = GSIDConfig(**{**settings, **extra})  # --set wins
    t0 = time.time()
    ds = import_dataset("homedepot", args.data)
    model, ids = train_gsid(ds, cfg, args.run_dir, show_progress=False, cache_dir=args.cache)
    t_train = time.time() - t0
    t1 = time.time()
    # items keep the codes frozen in training (the artifact); queries are decoded greedily
    frozen = getattr(model, "encoder_source_", None) or (
        (cfg.model_path or "minilm") if cfg.cached_features and cfg.align_encoder is None else None
    )
    report, baseline = gsid_eval(model, ds, args.cache, frozen)
    t_eval = time.time() - t1
    codes = model.item_codes_
    result = {
        "dataset": "homedepot",
        "split": "dev",
        "config": cfg.to_dict(),
        "levels": model.level_summary_,
        "final_levels": model.final_levels_,
        "semantic_ids": {
            "n_levels": ids.n_levels,
            "codebook_sizes": ids.codebook_sizes,
            "collisions": ids.provenance.get("collisions"),
        },
        "eval": report,
        "baseline_frozen_minilm_q2i": baseline,
        "n_distinct_full_codes": len(np.unique(codes, axis=0)),
        "wall_s": {"train_incl_features": round(t_train, 1), "eval": round(t_eval, 1)},
        "torch_threads": torch.get_num_threads(),
        **provenance(seed=cfg.seed),
    }
    write_results(args.out, result, to_markdown(result))
    logging.info("wrote %s", args.out)
    for key in ("q2i", "q2i_first", "q2i_last"):
        logging.info("%s: %s", key, report[key]["overall"])
    logging.info("code accuracy %s, i2i %s", report["code_accuracy"], report["i2i"])


if __name__ == "__main__":
    main()
