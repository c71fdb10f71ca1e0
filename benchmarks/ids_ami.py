"""Product understanding of semantic IDs: AMI between code prefixes and human categories.

For each catalogue, item titles are embedded with the packaged MiniLM (all-MiniLM-L6-v2), turned
into 4 x 128 semantic IDs by residual k-means ("rq"), RQ-VAE ("rqvae") and hierarchical k-means
("hkmeans"), with uniform random codes ("random") as the floor, and every code prefix length
(1..L) is scored against every category level: AMI (sklearn adjusted_mutual_info_score), purity
and coverage (gsid.ids.product_metrics; coverage: groups >= 5 items and >= 80% one category).

Data (read in place, never copied):
- bestbuy: ../shared/data/bestbuy_mobile, title = `name`, categories = category_path_names
  without the root "Best Buy" (3 levels; a shorter path repeats its deepest label).
- instacart: ../shared/data/instacart, title = `product_name`, categories = department > aisle.
  The 1,258 products of department "missing" are kept as one class by default (stated in the
  output); --drop-missing removes them from the catalogue before building IDs.

    python benchmarks/ids_ami.py                                  # bestbuy + instacart
    python benchmarks/ids_ami.py --datasets bestbuy --methods rq random

Writes benchmarks/results/ids_ami.json and ids_ami.md (command, machine, date, git commit).
Embeddings are cached in --cache (shared with the other gsid tools).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _provenance import provenance, provenance_markdown, write_results

from gsid.data.importers import import_dataset
from gsid.ids import build_ids
from gsid.ids.diagnostics import diagnose
from gsid.ids.product_metrics import product_understanding
from gsid.text.encoders import SentenceEncoder

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("ids_ami")

DATASETS = {
    # name: (folder, importer name, raw file, raw title column, read_csv options)
    "bestbuy": ("bestbuy_mobile", "bestbuy", "products.tsv", "name", {"sep": "\t"}),
    "instacart": ("instacart", "instacart", "products.csv", "product_name", {}),
}
METHODS = ("rq", "rqvae", "hkmeans", "random")


def embed(ds: Any, folder: Path, spec: tuple, cache: str) -> np.ndarray:
    """MiniLM embeddings of the dataset's titles. The raw file's titles are encoded through the
    shared cache (other gsid tools encode the same strings); the few titles the importer cleaned
    (e.g. a trailing no-break space) are re-encoded so rows match the importer's titles."""
    _, _, fname, col, opts = spec
    enc = SentenceEncoder()
    raw = pd.read_csv(folder / fname, dtype=str, keep_default_na=False, **opts)
    titles = ds.item_texts()
    ids_raw = raw[raw.columns[0]].astype(str).tolist()
    if len(raw) == len(titles) and ids_raw == [str(x) for x in ds.item_ids]:
        X = enc.encode_cached(raw[col].tolist(), cache, show_progress=False).copy()
        diff = [i for i, (a, b) in enumerate(zip(raw[col].tolist(), titles, strict=True)) if a != b]
        if diff:
            X[diff] = enc.encode([titles[i] for i in diff], show_progress=False)
        return X
    return enc.encode_cached(titles, cache, show_progress=False)


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = DATASETS[name]
    folder = Path(args.data_root) / spec[0]
    ds = import_dataset(spec[1], folder)
    note = ""
    keep = np.ones(len(ds.items), bool)
    if name == "instacart":
        missing = ds.items["category"].str.startswith("missing").to_numpy()
        if args.drop_missing:
            keep = ~missing
            note = f"department 'missing' dropped ({int(missing.sum())} products removed)"
        else:
            note = f"department 'missing' kept as one class ({int(missing.sum())} products)"
    t0 = time.perf_counter()
    X = embed(ds, folder, spec, args.cache)
    t_embed = time.perf_counter() - t0
    X, item_ids = X[keep], ds.item_ids[keep]
    cats = [c[keep] for c in ds.category_levels()]
    cat_names = [f"level{i + 1}" for i in range(len(cats))]
    out: dict[str, Any] = {
        "dataset": name,
        "n_items": int(keep.sum()),
        "category_levels": [
            {"name": n, "n_classes": len(set(c.tolist()))}
            for n, c in zip(cat_names, cats, strict=True)
        ],
        "note": note,
        "embed_seconds": round(t_embed, 1),
        "methods": {},
    }
    for method in args.methods:
        opts: dict[str, Any] = {}
        if method == "rqvae":
            opts = {"epochs": args.rqvae_epochs}
        t0 = time.perf_counter()
        ids = build_ids(
            method,
            X if method != "random" else None,
            item_ids,
            levels=args.levels,
            codebook_size=args.codebook_size,
            seed=args.seed,
            show_progress=False,
            **opts,
        )
        t_build = time.perf_counter() - t0
        pu = product_understanding(ids, cats, cat_names, prefix_lengths=range(1, args.levels + 1))
        diag = diagnose(ids)
        out["methods"][method] = {
            "build_seconds": round(t_build, 1),
            "collision_rate_raw": ids.provenance.get("collisions_raw", {}).get("collision_rate"),
            "mean_length": diag["mean_length"],
            "n_levels": ids.n_levels,
            "sandglass_score": diag["sandglass"]["score"],
            "per_level_top1": [r["top_share"]["1"] for r in diag["levels"]],
            "product_understanding": pu,
        }
        logger.info(
            "%s %s: AMI level1 by prefix %s (%.0fs)",
            name,
            method,
            [round(r["ami"], 3) for r in pu["levels"][0]["by_prefix"]],
            t_build,
        )
    return out


def to_markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    lines = [
        "# Semantic IDs vs human categories (AMI)",
        "",
        *provenance_markdown(meta),
        f"- IDs: {res['settings']['levels']} levels x {res['settings']['codebook_size']} codes, "
        f"seed {res['settings']['seed']}, collisions appended; embeddings: MiniLM (all-MiniLM-L6-v2) "
        f"of the titles; RQ-VAE epochs {res['settings']['rqvae_epochs']}",
        "- AMI = sklearn adjusted_mutual_info_score between the code prefix of length p and the "
        "category level; purity/coverage at the same prefix (coverage: groups of >= 5 items "
        "with >= 80% one category).",
        "",
    ]
    for d in res["datasets"]:
        lvls = ", ".join(f"{c['name']} {c['n_classes']} classes" for c in d["category_levels"])
        lines += [f"## {d['dataset']} ({d['n_items']} items; {lvls})", ""]
        if d["note"]:
            lines += [f"Note: {d['note']}.", ""]
        L = res["settings"]["levels"]
        for li, c in enumerate(d["category_levels"]):
            lines += [
                f"### AMI vs category {c['name']} ({c['n_classes']} classes)",
                "",
                "| method | "
                + " | ".join(f"AMI p={p}" for p in range(1, L + 1))
                + " | purity p=2 | coverage p=2 | groups p=2 | raw collisions | build s |",
                "|---|" + "---|" * (L + 5),
            ]
            for m, r in d["methods"].items():
                bp = r["product_understanding"]["levels"][li]["by_prefix"]
                p2 = bp[min(1, len(bp) - 1)]
                lines.append(
                    f"| {m} | "
                    + " | ".join(f"{x['ami']:.3f}" for x in bp)
                    + f" | {p2['purity']:.3f} | {p2['coverage']:.3f} | {p2['n_groups']} | "
                    f"{(r['collision_rate_raw'] or 0):.3f} | {r['build_seconds']:.0f} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument(
        "--datasets", nargs="+", default=["bestbuy", "instacart"], choices=list(DATASETS)
    )
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--codebook-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rqvae-epochs", type=int, default=50)
    ap.add_argument(
        "--drop-missing",
        action="store_true",
        help="Instacart: remove the 'missing' department instead of one class",
    )
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="ids_ami", help="output file stem")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not Path(args.data_root).is_dir():
        logger.error("data folder %s not found; pass --data-root", args.data_root)
        return 2
    res: dict[str, Any] = {
        "meta": provenance(seed=args.seed),
        "settings": {
            k: getattr(args, k)
            for k in ("levels", "codebook_size", "seed", "rqvae_epochs", "drop_missing")
        },
        "datasets": [run_dataset(n, args) for n in args.datasets],
    }
    out = Path(args.out)
    write_results(out / f"{args.name}.json", res, to_markdown(res))
    logger.info("wrote %s/%s.{json,md}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
