"""GSID on the synthetic marketplace: AMI of the codes against the category levels, q2i on dev,
code accuracy and utilisation.

    python benchmarks/gsid_synthetic.py --items 2000 --out benchmarks/results/gsid_synthetic.json

Same CPU-sized setup as gsid_homedepot.py (frozen MiniLM read once through the embedding cache,
pooled memory, 2-layer code decoder). The baseline row is hierarchical k-means-free: AMI of a
flat k-means with as many clusters as the level-1 codebook over the same MiniLM embeddings.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
from _provenance import provenance, provenance_markdown, write_results
from gsid_homedepot import gsid_eval
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from gsid.data.synthetic import make_marketplace
from gsid.models.assign import ami_with_categories
from gsid.models.config import GSIDConfig
from gsid.models.features import pooled_features
from gsid.models.train import train_gsid


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def to_markdown(r: dict) -> str:
    """Title, provenance and the key figures of one run (the JSON holds the rest)."""
    o = r["eval_dev"]["q2i"]["overall"]
    b = (r.get("baseline_frozen_minilm_q2i") or {}).get("overall", {})
    lines = [
        f"# GSID on the synthetic marketplace ({r['n_items']} items)",
        "",
        *provenance_markdown(r),
        f"- categories per level: {r['category_levels']}; train {r['wall_s']} s, "
        f"torch threads {r['torch_threads']}",
        "",
        "| codes | " + " | ".join(r["ami"]) + " |",
        "|---|" + "---|" * len(r["ami"]),
        "| GSID AMI | " + " | ".join(_f(v) for v in r["ami"].values()) + " |",
        "",
        f"- flat k-means AMI: {r['baseline_kmeans_ami']}",
        f"- dev q2i ({r['eval_dev']['n_queries']} queries): R@10 {_f(o.get('R@10'))}, "
        f"MRR@100 {_f(o.get('MRR@100'))}; frozen MiniLM R@10 {_f(b.get('R@10'))}, "
        f"MRR@100 {_f(b.get('MRR@100'))}",
        f"- code accuracy: {r['eval_dev']['code_accuracy']}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/gsid_synthetic.json")
    ap.add_argument("--run-dir", default="runs/gsid_synthetic")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codebook-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--set", nargs="*", default=[], help="extra GSIDConfig fields: key=json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    ds = make_marketplace(n_items=args.items, seed=args.seed)
    cfg = GSIDConfig(
        backbone="minilm",
        memory="pooled",
        freeze_encoder=True,
        n_levels=args.levels,
        codebook_size=args.codebook_size,
        batch_size=args.batch_size,
        epochs_per_level=args.epochs,
        pseudo_queries_per_item=1,
        max_seq_length=64,
        warmup_batches=20,
        dead_window=20,
        lr=1e-3,
        decoder_layers=1,
        decoder_ff_mult=2,
        seed=args.seed,
        **extra,
    )
    t0 = time.time()
    model, ids = train_gsid(ds, cfg, args.run_dir, show_progress=False, cache_dir=args.cache)
    wall = time.time() - t0
    item_x = pooled_features(model, ds.item_texts(), args.cache).numpy()
    ev, baseline_q2i = gsid_eval(model, ds, args.cache, "minilm")
    codes = model.item_codes_
    ami = ami_with_categories(codes, ds)
    levels = ds.category_levels()
    km = KMeans(args.codebook_size, n_init=1, random_state=args.seed).fit_predict(item_x)
    baseline = {
        f"cat{lv + 1}_vs_kmeans{args.codebook_size}": float(
            adjusted_mutual_info_score(levels[lv], km)
        )
        for lv in sorted({0, len(levels) - 1})
    }
    result = {
        "dataset": ds.name,
        "n_items": args.items,
        "config": cfg.to_dict(),
        "category_levels": [len(np.unique(lv)) for lv in levels],
        "ami": ami,
        "baseline_kmeans_ami": baseline,
        "levels": model.level_summary_,
        "eval_dev": {k: ev[k] for k in ("q2i", "code_accuracy", "n_queries")},
        "baseline_frozen_minilm_q2i": baseline_q2i,
        "collisions": ids.provenance.get("collisions"),
        "wall_s": round(wall, 1),
        "torch_threads": torch.get_num_threads(),
        **provenance(seed=args.seed),
    }
    write_results(args.out, result, to_markdown(result))
    logging.info(
        "AMI %s baseline %s q2i %s acc %s", ami, baseline, ev["q2i"]["overall"], ev["code_accuracy"]
    )


if __name__ == "__main__":
    main()
