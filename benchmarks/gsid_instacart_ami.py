"""Product understanding of GSID codes: AMI of code prefixes vs human categories, against the
clustering baselines (paper, issue #4), on Instacart and on the synthetic marketplace.

    python benchmarks/gsid_instacart_ami.py                          # instacart + synthetic
    python benchmarks/gsid_instacart_ami.py --datasets instacart --max-batches 250

Methods, all of the same shape (instacart 4 x 128, synthetic 3 x 32 by default):
- gsid: GSID trained with the CPU setup of benchmarks/gsid_homedepot.py (frozen packaged MiniLM
  read once through the shared embedding cache, pooled memory, 1-layer code decoder,
  memory_skip=True). Instacart has no query log: every item is trained on
  `--pseudo` pseudo-queries, 2-4 consecutive words cut from its own title
  (gsid.models.sampling.pseudo_query); the synthetic marketplace has a log, and only its items
  without a logged query get pseudo-queries.
- hkmeans: hierarchical k-means (DSI style) of the same zero-shot MiniLM embeddings.
- rq: residual k-means of the same embeddings.
- random: uniform random codes (the floor).
AMI: gsid.models.assign.ami_with_categories (sklearn adjusted_mutual_info_score) between the
code prefix of length p (raw codes, before collision suffixes) and category level 1 and the
deepest level. Instacart's department "missing" (1,258 products) is scored both ways: kept as
one class (all items) and left out of the scoring (IDs still built on the full catalogue).

Writes benchmarks/results/gsid_instacart_ami.{json,md} (command, machine, date).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _provenance import provenance, provenance_markdown, write_results

from gsid.ids import build_ids
from gsid.models.assign import ami_with_categories
from gsid.models.config import GSIDConfig
from gsid.models.sampling import TrainData
from gsid.models.train import train_gsid
from gsid.text.encoders import SentenceEncoder

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("gsid_instacart_ami")

BASELINES = ("hkmeans", "rq", "random")
# per dataset: default (levels, codebook size, epochs per level, warm-up/dead window batches)
SHAPES = {"instacart": (4, 128, 1.0, 50), "synthetic": (3, 32, 4.0, 20)}


class _Cats:
    """The category levels of a subset of items, in the shape ami_with_categories reads."""

    def __init__(self, levels: list[np.ndarray]) -> None:
        self._levels = levels

    def category_levels(self) -> list[np.ndarray]:
        return self._levels


def load(name: str, args: argparse.Namespace):
    if name == "instacart":
        from gsid.data.importers import import_dataset

        return import_dataset("instacart", Path(args.data_root) / "instacart")
    from gsid.data.synthetic import make_marketplace

    return make_marketplace(n_items=args.synthetic_items, seed=args.seed)


def item_embeddings(ds, name: str, args: argparse.Namespace) -> np.ndarray:
    """Zero-shot MiniLM of the item texts, through the shared cache under the key GSID's
    pooled_features uses (same texts, max_seq_length 64). On Instacart the raw-title entry that
    benchmarks/ids_ami.py wrote is reused: only the few titles the importer cleaned are
    re-encoded, and the result is stored under the item-text key."""
    enc = SentenceEncoder(max_seq_length=args.max_seq_length)
    titles = ds.item_texts()
    raw_file = Path(args.data_root) / "instacart" / "products.csv"
    if name == "instacart" and raw_file.is_file():
        raw = pd.read_csv(raw_file, dtype=str, keep_default_na=False)
        if raw["product_id"].tolist() == [str(x) for x in ds.item_ids]:
            base = raw["product_name"].tolist()
            X = enc.encode_cached(base, args.cache, show_progress=False).copy()
            diff = [i for i, (a, b) in enumerate(zip(base, titles, strict=True)) if a != b]
            if diff:
                X[diff] = enc.encode([titles[i] for i in diff], show_progress=False)
            enc.encode = lambda texts, show_progress=None: X  # store X under the item-text key
            return enc.encode_cached(titles, args.cache, show_progress=False)
    return enc.encode_cached(titles, args.cache, show_progress=False)


def score(codes: np.ndarray, cats: list[np.ndarray], keep: np.ndarray | None) -> dict[str, Any]:
    L = codes.shape[1]
    out: dict[str, Any] = {
        "ami": ami_with_categories(codes, _Cats(cats)),
        "distinct_prefixes": [len(np.unique(codes[:, :p], axis=0)) for p in range(1, L + 1)],
    }
    if keep is not None:
        out["ami_without_missing"] = ami_with_categories(
            codes[keep], _Cats([c[keep] for c in cats])
        )
    return out


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    levels, size, epochs, warm = SHAPES[name]
    levels = args.levels or levels
    size = args.codebook_size or size
    epochs = args.epochs or epochs
    ds = load(name, args)
    cats = [np.asarray(c) for c in ds.category_levels()]
    keep = None
    note = ""
    if name == "instacart":
        missing = ds.items["category"].str.startswith("missing").to_numpy()
        keep = ~missing
        note = (
            f"department 'missing' ({int(missing.sum())} products): 'ami' keeps it as one class, "
            f"'ami_without_missing' leaves those products out of the scoring"
        )
    t0 = time.perf_counter()
    X = item_embeddings(ds, name, args)
    out: dict[str, Any] = {
        "dataset": name,
        "n_items": len(ds.items),
        "category_levels": [len(np.unique(c)) for c in cats],
        "shape": {"levels": levels, "codebook_size": size},
        "note": note,
        "embed_seconds": round(time.perf_counter() - t0, 1),
        "methods": {},
    }
    for method in BASELINES:
        if method not in args.methods:
            continue
        t0 = time.perf_counter()
        ids = build_ids(
            method,
            X if method != "random" else None,
            ds.item_ids,
            levels=levels,
            codebook_size=size,
            seed=args.seed,
            show_progress=False,
        )
        r = score(ids.codes[:, :levels], cats, keep)
        r["build_seconds"] = round(time.perf_counter() - t0, 1)
        out["methods"][method] = r
        logger.info("%s %s: %s", name, method, r["ami"])
    if "gsid" in args.methods:
        out["methods"]["gsid"] = run_gsid(ds, name, levels, size, epochs, warm, cats, keep, args)
    return out


def run_gsid(ds, name, levels, size, epochs, warm, cats, keep, args) -> dict[str, Any]:
    cfg = GSIDConfig(
        backbone="minilm",
        memory="pooled",
        freeze_encoder=True,
        memory_skip=True,
        skip_gate=True,
        n_levels=levels,
        codebook_size=size,
        batch_size=args.batch_size,
        epochs_per_level=epochs,
        max_batches_per_level=args.max_batches,
        pseudo_queries_per_item=args.pseudo,
        max_seq_length=args.max_seq_length,
        warmup_batches=warm,
        dead_window=warm,
        lr=1e-3,
        decoder_layers=1,
        decoder_ff_mult=2,
        seed=args.seed,
    )
    data = TrainData.from_dataset(ds, "train", cfg.pseudo_queries_per_item, cfg.seed)
    n_log = int(data.has_log.sum())
    pseudo = {
        "pseudo_queries_per_item": cfg.pseudo_queries_per_item,
        "items_with_logged_queries": n_log,
        "items_on_pseudo_queries": int(data.n_items - n_log),
        "distinct_training_queries": len(data.all_queries()),
        "examples": [
            {"title": data.item_texts[n], "pseudo_queries": data.item_queries[n]}
            for n in np.flatnonzero(~data.has_log)[:3].tolist()
        ],
    }
    t0 = time.perf_counter()
    model, ids = train_gsid(
        ds, cfg, Path(args.run_dir) / name, show_progress=False, cache_dir=args.cache
    )
    wall = time.perf_counter() - t0
    r = score(model.item_codes_, cats, keep)
    per_level: dict[int, int] = {}  # the train log has a record every 25 batches and at the end
    for rec in getattr(model, "train_log_", None) or []:
        per_level[rec["level"]] = max(per_level.get(rec["level"], 0), int(rec["batch"]))
    r.update(
        {
            "train_seconds_incl_features": round(wall, 1),
            "batches_per_level": [per_level.get(lv, 0) for lv in range(levels)],
            "config": cfg.to_dict(),
            "pseudo_queries": pseudo,
            "levels": model.level_summary_,
            "collisions": ids.provenance.get("collisions", {}).get("before"),
        }
    )
    logger.info("%s gsid: %s (%.0fs)", name, r["ami"], wall)
    return r


def previous_synthetic() -> dict[str, Any] | None:
    """The synthetic AMI measured earlier by benchmarks/gsid_synthetic.py (for reference)."""
    f = ROOT / "benchmarks" / "results" / "gsid_synthetic.json"
    if not f.is_file():
        return None
    d = json.loads(f.read_text(encoding="utf-8"))
    return {
        "file": str(f.relative_to(ROOT)),
        "ami": d.get("ami"),
        "baseline_kmeans_ami": d.get("baseline_kmeans_ami"),
        "memory_skip": d.get("config", {}).get("memory_skip", False),
        "shape": [d.get("config", {}).get("n_levels"), d.get("config", {}).get("codebook_size")],
    }


def to_markdown(res: dict[str, Any]) -> str:
    lines = [
        "# GSID vs clustering IDs: AMI of code prefixes against categories",
        "",
        *provenance_markdown(res["meta"]),
        f"- torch threads: {res['settings']['threads']} (machine shared with other jobs)",
        "- AMI = sklearn adjusted_mutual_info_score between the items' code prefix of length p "
        "(raw codes, no collision suffix) and a category level "
        "(gsid.models.assign.ami_with_categories).",
        "- Embeddings for every method: zero-shot packaged MiniLM (all-MiniLM-L6-v2), "
        "max_seq_length 64. GSID: frozen MiniLM pooled memory, 1-layer code decoder, "
        "memory_skip=True, EMA codebooks, multi-query sampling, prefix-grouped batches.",
        "",
    ]
    for d in res["datasets"]:
        L = d["shape"]["levels"]
        lines += [
            f"## {d['dataset']} ({d['n_items']} items; categories "
            + " / ".join(str(c) for c in d["category_levels"])
            + f" classes per level; IDs {L} x {d['shape']['codebook_size']})",
            "",
        ]
        g = d["methods"].get("gsid")
        if g:
            pq = g["pseudo_queries"]
            c = g["config"]
            lines += [
                f"GSID training: {pq['items_on_pseudo_queries']} of {d['n_items']} items trained "
                f"on **pseudo-queries** ({pq['pseudo_queries_per_item']} per item, 2-4 "
                f"consecutive title words), {pq['items_with_logged_queries']} on logged queries; "
                f"{pq['distinct_training_queries']} distinct training queries. Budget: "
                f"epochs_per_level {c['epochs_per_level']}, max_batches_per_level "
                f"{c['max_batches_per_level']}, batch {c['batch_size']}, "
                f"{g['train_seconds_incl_features']:.0f} s wall including query encoding.",
                "",
            ]
        if d["note"]:
            lines += [f"Note: {d['note']}.", ""]
        cats = [1, len(d["category_levels"])]
        variants = [("ami", "")]
        if any("ami_without_missing" in r for r in d["methods"].values()):
            variants.append(("ami_without_missing", " (department 'missing' left out)"))
        for key, title in variants:
            for cl in cats:
                lines += [
                    f"### AMI vs category level {cl}{title}",
                    "",
                    "| method | " + " | ".join(f"p={p}" for p in range(1, L + 1)) + " |",
                    "|---|" + "---|" * L,
                ]
                for meth, r in d["methods"].items():
                    vals = [r[key].get(f"cat{cl}_vs_codes{p}") for p in range(1, L + 1)]
                    lines.append(
                        f"| {meth} | "
                        + " | ".join("-" if v is None else f"{v:.3f}" for v in vals)
                        + " |"
                    )
                lines.append("")
        lines += [
            "distinct prefixes per length: "
            + "; ".join(f"{k} {r['distinct_prefixes']}" for k, r in d["methods"].items()),
            "",
        ]
        if d["dataset"] == "synthetic" and res.get("previous_synthetic"):
            p = res["previous_synthetic"]
            lines += [
                f"Earlier run ({p['file']}, GSID {p['shape'][0]} x {p['shape'][1]}, "
                f"memory_skip={p['memory_skip']}): AMI {json.dumps(p['ami'])}; "
                f"flat k-means baseline {json.dumps(p['baseline_kmeans_ami'])}.",
                "",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-root", default="/work/shared/data")
    ap.add_argument(
        "--datasets", nargs="+", default=["instacart", "synthetic"], choices=list(SHAPES)
    )
    ap.add_argument(
        "--methods", nargs="+", default=["gsid", *BASELINES], choices=["gsid", *BASELINES]
    )
    ap.add_argument("--levels", type=int, default=None, help="default: 4 (instacart), 3 (synth.)")
    ap.add_argument("--codebook-size", type=int, default=None, help="default: 128 / 32")
    ap.add_argument("--epochs", type=float, default=None, help="GSID epochs per level: 1 / 4")
    ap.add_argument("--max-batches", type=int, default=250, help="GSID batches per level cap")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--pseudo", type=int, default=2, help="pseudo-queries per item without a log")
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--synthetic-items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "gsid_instacart_ami"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="gsid_instacart_ami", help="output file stem")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if "instacart" in args.datasets and not (Path(args.data_root) / "instacart").is_dir():
        logger.error("%s/instacart not found; pass --data-root", args.data_root)
        return 2
    res: dict[str, Any] = {
        "meta": provenance(seed=args.seed),
        "settings": {
            k: getattr(args, k)
            for k in (
                "levels",
                "codebook_size",
                "epochs",
                "max_batches",
                "batch_size",
                "pseudo",
                "max_seq_length",
                "seed",
                "threads",
            )
        },
        "datasets": [],
    }
    out = Path(args.out)
    for name in args.datasets:
        res["datasets"].append(run_dataset(name, args))
        if name == "synthetic":
            res["previous_synthetic"] = previous_synthetic()
        # written after every data set so a long run leaves its finished part behind
        write_results(out / f"{args.name}.json", res, to_markdown(res))
    logger.info("wrote %s/%s.{json,md}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
