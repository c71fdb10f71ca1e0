"""Keeping GSID codes current when the catalogue grows by 10%: assign, fine-tune or retrain?

    python benchmarks/gsid_growth.py                      # synthetic marketplace, 2,000 items
    python benchmarks/gsid_growth.py --data homedepot     # Home Depot, reduced budget

10% of the items are held out (gsid.models.growth.grow_split: they have no search log yet) and
model A is trained on the other 90%. Then, on the full catalogue:
  (a) assign     A assigns codes to the new items, no training (old items keep theirs);
  (b) fine-tune  A trained further for a short budget (every step again, from its weights and
                 codebooks), with dead-code re-seeding as trained, and (b') without it;
  (c) retrain    a fresh model with A's seed; (d) retrain with another seed.
For each: the share of old items keeping their full code / first code / first 2 codes (and
label-free agreement), the time it took, and dev q2i R@10 on the full catalogue (all dev
queries, and only the new relevant items of the queries that have some).

CPU-sized like gsid_synthetic.py / gsid_homedepot.py: frozen MiniLM read once through the
shared embedding cache (pooled memory), a 1-layer code decoder.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance, provenance_markdown, write_results

from gsid.models.assign import encode
from gsid.models.config import GSIDConfig
from gsid.models.features import pooled_features
from gsid.models.growth import code_stability, fine_tune_gsid, grow_split
from gsid.models.train import train_gsid

log = logging.getLogger("gsid_growth")

# the setups of benchmarks/gsid_synthetic.py and (reduced) benchmarks/gsid_homedepot.py
SETUPS = {
    "synthetic": dict(
        config=dict(
            n_levels=3,
            codebook_size=32,
            batch_size=64,
            epochs_per_level=4.0,
            pseudo_queries_per_item=1,
            max_seq_length=64,
            warmup_batches=20,
            dead_window=20,
        ),
        fine_tune=dict(epochs_per_level=1.0),  # a quarter of A's budget per step
        short=dict(epochs_per_level=0.25),
    ),
    "homedepot": dict(
        config=dict(
            n_levels=3,
            codebook_size=64,
            batch_size=128,
            epochs_per_level=1.0,  # ~385 batches/step (A), ~427 (full catalogue)
            # as gsid_homedepot.py: items without a train query (2/3 of the catalogue, and
            # every new item) are in-batch negatives only; pseudo-queries for ~36k titles per
            # seed and split would cost more encoder time than the whole comparison
            pseudo_queries_per_item=0,
            max_seq_length=64,
            warmup_batches=50,
            dead_window=50,
        ),
        fine_tune=dict(max_batches_per_level=100),  # a quarter of A's budget per step
        short=dict(max_batches_per_level=25),
    ),
}


VARIANTS = (
    "b0_finetune_same",
    "b_finetune",
    "b_finetune_noreseed",
    "b_finetune_short",
    "b_finetune_lowlr",
    "c_retrain",
    "d_retrain_other_seed",
)


def prewarm(cfg: GSIDConfig, datasets, cache: str, seeds) -> None:
    """Encode the item texts, training queries (with pseudo-queries) and dev queries of every
    dataset with the frozen encoder GSID reads (same identity as train.pooled_features)."""
    from gsid.models.sampling import TrainData
    from gsid.text.encoders import DEFAULT_MODEL, SentenceEncoder

    enc = SentenceEncoder(
        DEFAULT_MODEL, batch_size=cfg.encode_batch_size, max_seq_length=cfg.max_seq_length
    )
    for ds in datasets:
        enc.encode_cached(ds.item_texts(), cache)
        enc.encode_cached(ds.split_queries("dev")["query"].tolist(), cache)
        for seed in seeds:  # pseudo-queries are drawn with the training seed
            data = TrainData.from_dataset(ds, "train", cfg.pseudo_queries_per_item, seed)
            enc.encode_cached(data.all_queries(), cache)


def load(args):
    if args.data == "synthetic":
        from gsid.data.synthetic import make_marketplace

        return make_marketplace(n_items=args.items, seed=args.seed)
    from gsid.data.importers import import_dataset

    return import_dataset("homedepot", args.data_path)


def evaluate(model, full, new_items: set[str], cache: str) -> dict:
    """Dev q2i on the full catalogue and query-item code agreement, from the one harness
    (run_bench), plus the recall of the new relevant items alone over the dev queries that have
    one (are the new products found?)."""
    from gsid.eval import run_bench
    from gsid.eval.metrics import evaluate as metrics
    from gsid.retrieval.gsid import GSIDRetriever

    gsid = GSIDRetriever.from_model(model, cache_dir=cache)
    res = run_bench(full, {"gsid": gsid}, split="dev", timing=False)
    m, qids = res.methods["gsid"], res.query_ids
    q2i, ranked = m.metrics, m.results.ids
    expected = full.expected("dev")
    new_expected = {q: items & new_items for q, items in expected.items()}
    keep = [n for n, q in enumerate(qids) if new_expected.get(q)]
    new = {"R@10": float("nan")}
    if keep:
        new = metrics(ranked[keep], [qids[n] for n in keep], new_expected, None, (1, 10, 100))[
            "overall"
        ]
    return {
        "R@10": q2i["overall"]["R@10"],
        "MRR@100": q2i["overall"]["MRR@100"],
        "tail_R@10": q2i["tail"]["R@10"],
        "code_accuracy": m.extra["code_accuracy"],
        "n_queries": len(qids),
        "new_items_R@10": new["R@10"],
        "new_items_n_queries": len(keep),
    }


def first_level(codes: np.ndarray) -> dict:
    """Distribution of the first code: a collapsed first level (one code holding most items)
    makes 'keeping the first code' meaningless."""
    counts = np.bincount(np.asarray(codes)[:, 0])
    return {
        "first_codes_used": int((counts > 0).sum()),
        "first_code_top_share": float(counts.max() / counts.sum()),
    }


def distinct(codes: np.ndarray) -> int:
    return len(np.unique(codes, axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", choices=sorted(SETUPS), default="synthetic")
    ap.add_argument("--data-path", default="/work/shared/data/homedepot")
    ap.add_argument("--items", type=int, default=2000, help="synthetic catalogue size")
    ap.add_argument("--fraction", type=float, default=0.1, help="share of new items")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--other-seed", type=int, default=1)
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--run-dir", default=None, help="default runs/gsid_growth_<data>")
    ap.add_argument("--out", default=None, help="default benchmarks/results/gsid_growth_<data>")
    ap.add_argument("--set", nargs="*", default=[], help="extra GSIDConfig fields: key=json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated rows to run after (a) (default all: {','.join(VARIANTS)})",
    )
    ap.add_argument(
        "--reuse-a",
        action="store_true",
        help="load model A from RUN_DIR/A/model when a previous run saved it (no retraining)",
    )
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    prov = provenance(seed=args.seed)
    setup = SETUPS[args.data]
    extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    cfg = GSIDConfig(
        backbone="minilm",
        memory="pooled",
        freeze_encoder=True,
        lr=1e-3,
        decoder_layers=1,
        decoder_ff_mult=2,
        seed=args.seed,
        **{**setup["config"], **extra},
    )
    run = Path(args.run_dir or f"runs/gsid_growth_{args.data}")
    out = Path(args.out or f"benchmarks/results/gsid_growth_{args.data}")

    t0 = time.time()
    ds = load(args)
    old, full = grow_split(ds, args.fraction, seed=args.seed)
    new_items = set(full.info["growth"]["new_items"])
    is_new = np.asarray([i in new_items for i in full.item_ids])
    log.info(
        "data: %s -> %d old + %d new items (%.0f s)",
        ds.name,
        len(old.items),
        len(new_items),
        time.time() - t0,
    )

    # every text once through the frozen encoder (shared by all the runs below), so the times
    # reported are those of the GSID work itself
    t = time.time()
    prewarm(cfg, [full, old], args.cache, (args.seed, args.other_seed))
    t_features = time.time() - t
    rows: dict[str, dict] = {}

    # model A on the 90% catalogue
    t = time.time()
    reused = args.reuse_a and (run / "A" / "model" / "manifest.json").is_file()
    if reused:
        from gsid.models.model import GSIDModel

        model_a = GSIDModel.load(run / "A" / "model")
        if model_a.config.to_dict() != {**cfg.to_dict(), "device": model_a.config.device}:
            raise SystemExit(f"{run / 'A' / 'model'} was trained with another config")
        train_a = None
    else:
        model_a, _ = train_gsid(old, cfg, run / "A", show_progress=False, cache_dir=args.cache)
        train_a = round(time.time() - t, 1)
    item_features = pooled_features(model_a, full.item_texts(), args.cache).numpy()
    # (N_old, L) A's codes of the old items, as its SemanticIDs hold them (frozen step by step
    # in training); old rows keep the full catalogue's order
    if reused:
        from gsid.ids.semantic_ids import SemanticIDs

        ids_a = SemanticIDs.load(run / "A" / "ids")
        L = model_a.config.n_levels
        old_items = np.asarray(full.item_ids, dtype=object)[~is_new]
        old_codes = np.stack([ids_a.codes[ids_a.index_of(i)][:L] for i in old_items])
    else:
        old_codes = model_a.item_codes_

    def record(name: str, model, codes, seconds: float, what: str, ids=None) -> None:
        ids = full.item_ids if ids is None else ids
        stab = code_stability(old_codes, codes, ids, old_item_ids=old.item_ids)
        ev = evaluate(model, full, new_items, args.cache)
        rows[name] = {
            "what": what,
            "seconds": round(seconds, 1),
            "stability": stab,
            "distinct_codes": distinct(codes),
            **first_level(codes),
            "dev": ev,
        }
        log.info("%s: %s", name, json.dumps(rows[name], default=float))

    # (a) assign only: old items keep their IDs, A encodes the new items
    t = time.time()
    new_codes = encode(model_a, [], item_features[is_new])[0]
    t_assign = time.time() - t
    codes_a = np.empty((len(is_new), old_codes.shape[1]), np.int32)
    codes_a[~is_new], codes_a[is_new] = old_codes, new_codes
    record("a_assign", model_a, codes_a, t_assign, "A assigns codes to the new items")
    rows["a_assign"]["train_A_seconds"] = train_a

    # (b0) control: A fine-tuned on the *same* 90% catalogue: how much do codes move from
    # continued training alone, with no growth at all?
    off = {"reseed_dead": False}
    if "b0_finetune_same" in variants:
        t = time.time()
        model_b, _ = fine_tune_gsid(
            old,
            model_a,
            out_dir=run / "b0_finetune_same",
            show_progress=False,
            cache_dir=args.cache,
            **setup["fine_tune"],
            **off,
        )
        what = "control: A fine-tuned on the same 90% catalogue, no re-seeding"
        name = "b0_finetune_same"
        record(name, model_b, model_b.item_codes_, time.time() - t, what, old.item_ids)
        rows[name]["budget"] = {"warmup_batches": 0, **setup["fine_tune"], **off}
        del model_b

    # (b) fine-tune A on the full catalogue, short budget
    for name, budget, what in (
        ("b_finetune", setup["fine_tune"], "A fine-tuned on the full catalogue"),
        ("b_finetune_noreseed", {**setup["fine_tune"], **off}, "same, dead-code re-seeding off"),
        ("b_finetune_short", {**setup["short"], **off}, "same, a shorter budget"),
        ("b_finetune_lowlr", {**setup["fine_tune"], **off, "lr": 1e-4}, "same, lr 1e-4"),
    ):
        if name not in variants:
            continue
        t = time.time()
        model_b, _ = fine_tune_gsid(
            full,
            model_a,
            out_dir=run / name,
            show_progress=False,
            cache_dir=args.cache,
            **budget,
        )
        record(name, model_b, model_b.item_codes_, time.time() - t, what)
        rows[name]["budget"] = {"warmup_batches": 0, **budget}
        del model_b

    # (c) retrain with A's seed, (d) with another seed
    retrained = {}
    for name, seed in (("c_retrain", args.seed), ("d_retrain_other_seed", args.other_seed)):
        if name not in variants:
            continue
        t = time.time()
        model_c, _ = train_gsid(
            full, cfg.replace(seed=seed), run / name, show_progress=False, cache_dir=args.cache
        )
        record(name, model_c, model_c.item_codes_, time.time() - t, f"fresh model, seed {seed}")
        retrained[name] = model_c.item_codes_
        del model_c
    between = None
    if len(retrained) == 2:
        between = code_stability(
            retrained["c_retrain"],
            retrained["d_retrain_other_seed"],
            full.item_ids,
            old_item_ids=full.item_ids,
        )

    result = {
        **prov,
        "torch_threads": torch.get_num_threads(),
        "dataset": ds.name,
        "n_items": len(ds.items),
        "n_old": len(old.items),
        "n_new": len(new_items),
        "growth": {k: v for k, v in full.info["growth"].items() if k != "new_items"},
        "config": cfg.to_dict(),
        "features_seconds": round(t_features, 1),
        "fine_tune_budget": setup["fine_tune"],
        "short_budget": setup["short"],
        "A": {
            "seconds": train_a,
            "reused_from": str(run / "A" / "model") if reused else None,
            "levels": getattr(model_a, "level_summary_", None),
            "distinct_codes": distinct(old_codes),
        },
        "rows": rows,
        "retrain_seed_vs_seed": between,
        "total_seconds": round(time.time() - t0, 1),
    }
    write_results(out.with_suffix(".json"), result, markdown(result), default=float)
    log.info("wrote %s.{json,md}", out)


def _cell(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"  # noqa: RUF001 (en dash: missing value); x != x: NaN


def markdown(r: dict) -> str:
    c = r["config"]
    lines = [
        f"# GSID codes under catalogue growth: {r['dataset']}",
        "",
        *provenance_markdown(r),
        f"- torch threads {r['torch_threads']} (shared machine)",
        f"- catalogue: {r['n_items']} items; model A trained on {r['n_old']}, then "
        f"{r['n_new']} new items ({r['growth']['fraction']:.0%}, no search log: "
        + (
            "pseudo-queries only)"
            if c["pseudo_queries_per_item"]
            else "in-batch negatives only, pseudo_queries_per_item=0)"
        ),
        f"- GSID: {c['n_levels']} x {c['codebook_size']} codes, frozen MiniLM (pooled, cached), "
        f"{c['decoder_layers']}-layer decoder, batch {c['batch_size']}, "
        f"{c['epochs_per_level']} epoch(s)/step"
        + (
            f", at most {c['max_batches_per_level']} batches/step"
            if c["max_batches_per_level"]
            else ""
        )
        + (
            f"; A trained in {r['A']['seconds']} s"
            if r["A"]["seconds"] is not None
            else f"; A loaded from {r['A']['reused_from']} (trained by an earlier run)"
        )
        + " (encoder features, once for all runs: "
        f"{r['features_seconds']} s)",
        f"- fine-tune budget per step: {r['fine_tune_budget']} (short: {r['short_budget']}), "
        f"no warm-up",
        "",
        "Old items keeping their code (share of the old items; `relab.` = first code kept after "
        "the best one-to-one renaming of level 1; AMI = agreement of the first-level groups). "
        "Dev q2i on the full catalogue; `new R@10` = recall of the new relevant items over the "
        "dev queries that have one.",
        "",
        "| variant | full code | first code | first 2 | relab. first | AMI first | new items "
        "sharing an old code | first codes used (top share) | time (s) | dev R@10 | tail R@10 "
        "| new R@10 | l1 acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        s, d = row["stability"], row["dev"]
        lines.append(
            f"| {name}: {row['what']} | {s['keep_full']:.3f} | {s['keep_prefix1']:.3f} | "
            f"{s.get('keep_prefix2', s['keep_full']):.3f} | {s['keep_prefix1_relabelled']:.3f} | "
            f"{s['ami_prefix1']:.3f} | {_cell(s.get('new_sharing_full'))} | "
            f"{row.get('first_codes_used', '?')} ({_cell(row.get('first_code_top_share'))}) | "
            f"{row['seconds']} | {d['R@10']:.3f} | {d['tail_R@10']:.3f} | "
            f"{d['new_items_R@10']:.3f} | {d['code_accuracy']['l1']:.3f} |"
        )
    b = r["retrain_seed_vs_seed"]
    if b is not None:
        lines += [
            "",
            f"Two retrains (seed {r['config']['seed']} vs the other seed) on the same full "
            f"catalogue: full code {b['keep_full']:.3f}, first code {b['keep_prefix1']:.3f} "
            f"({b['keep_prefix1_relabelled']:.3f} after relabelling, AMI "
            f"{b['ami_prefix1']:.3f}).",
        ]
    lines += [
        "",
        f"Dev queries: {next(iter(r['rows'].values()))['dev']['n_queries']}; with a new relevant "
        f"item: {next(iter(r['rows'].values()))['dev']['new_items_n_queries']}. "
        f"Total run time {r['total_seconds']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
