"""The sand-glass measurement on residual-k-means semantic IDs, before and after both repairs.

For each catalogue, titles are embedded with the packaged MiniLM, quantised into 4 x 128 RQ
semantic IDs (gsid build_ids "rq", collisions appended) and diagnosed (gsid.ids.diagnostics):
per-level top-1 share, normalised entropy, utilisation, the sand-glass score, collision rate and
mean ID length. Then the two repairs of gsid.ids.sandglass are applied and diagnosed again:
- drop: drop_routing_level (auto: the most concentrated middle level), collisions re-appended;
- adaptive: adaptive_variable_length with the default rule (share >= 4/K and <= 1 bit given the
  parent), and with fixed top-K overrides (--top-k).
Instacart also gets AMI of every prefix length against department / aisle, before and after.

Data (read in place): homedepot/products.tsv (product_title) and instacart/products.csv
(product_name; department "missing" kept as one class).

    python benchmarks/sandglass.py [--datasets homedepot instacart] [--top-k 8 32]

Writes benchmarks/results/sandglass.{json,md} and PNG plots sandglass_<dataset>_*.png.
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
from gsid.ids import SemanticIDs, build_ids
from gsid.ids.diagnostics import diagnose
from gsid.ids.plots import plot_code_distribution, plot_code_tree
from gsid.ids.product_metrics import product_understanding
from gsid.ids.sandglass import adaptive_variable_length, drop_routing_level, token_table
from gsid.text.encoders import SentenceEncoder

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("sandglass")

DATASETS = {
    # name: (folder, raw file, id column, title column, read_csv options)
    "homedepot": (
        "homedepot",
        "products.tsv",
        "product_uid",
        "product_title",
        {"sep": "\t", "quoting": 3},
    ),
    "instacart": ("instacart", "products.csv", "product_id", "product_name", {}),
}


def embed(ds: Any, folder: Path, spec: tuple, cache: str) -> np.ndarray:
    """MiniLM embeddings of the importer's titles, via the raw strings other tools cache (the
    few titles the importer cleaned are re-encoded)."""
    _, fname, id_col, col, opts = spec
    enc = SentenceEncoder()
    raw = pd.read_csv(folder / fname, dtype=str, keep_default_na=False, **opts)
    titles = ds.item_texts()
    if raw[id_col].astype(str).tolist() == [str(x) for x in ds.item_ids]:
        X = enc.encode_cached(raw[col].tolist(), cache, show_progress=False).copy()
        diff = [i for i, (a, b) in enumerate(zip(raw[col].tolist(), titles, strict=True)) if a != b]
        if diff:
            X[diff] = enc.encode([titles[i] for i in diff], show_progress=False)
        return X
    return enc.encode_cached(titles, cache, show_progress=False)


def summarise(ids: SemanticIDs, cats: list[np.ndarray] | None) -> dict[str, Any]:
    d = diagnose(ids)
    levels = []
    for r in d["levels"]:
        row = {
            "level": r["level"],
            "codebook_size": r["codebook_size"],
            "n_items": r["n_items"],
            "top1": r["top_share"]["1"],
            "top10": r["top_share"]["10"],
            "normalised_entropy": r["normalised_entropy"],
            "utilisation": r["utilisation"],
            "gini": r["gini"],
            "cond_top1": r["conditional"]["top1_share"],
            "cond_entropy_bits": r["conditional"]["entropy_bits"],
            "top_token_parent_share": r["conditional"]["top_token_parent_share"],
        }
        if "native" in r:
            nv = r["native"]
            row["native"] = {
                "codebook_size": nv["codebook_size"],
                "n_items": nv["n_items"],
                "top1": nv["top_share"]["1"],
                "normalised_entropy": nv["normalised_entropy"],
                "utilisation": nv["utilisation"],
            }
        levels.append(row)
    out = {
        "n_levels": d["n_levels"],
        "codebook_sizes": d["codebook_sizes"],
        "quantisation_levels": d["sandglass"]["levels"],
        "sandglass": {
            k: d["sandglass"][k]
            for k in ("score", "score_top1", "score_max", "routing_level", "concentration")
        },
        "collision_rate": d["collision_rate"],
        "mean_length": d["mean_length"],
        "length_histogram": d["length_histogram"],
        "levels": levels,
        "repair": ids.config.get("sandglass_repair"),
    }
    if cats is not None:
        pu = product_understanding(ids, cats, ["department", "aisle"])
        out["ami"] = {lv["category"]: [r["ami"] for r in lv["by_prefix"]] for lv in pu["levels"]}
    return out


def run_dataset(name: str, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    spec = DATASETS[name]
    folder = Path(args.data_root) / spec[0]
    ds = import_dataset(name, folder)
    t0 = time.perf_counter()
    X = embed(ds, folder, spec, args.cache)
    t_embed = time.perf_counter() - t0
    cats = ds.category_levels() if name == "instacart" else None
    t0 = time.perf_counter()
    ids = build_ids(
        "rq",
        X,
        ds.item_ids,
        levels=args.levels,
        codebook_size=args.codebook_size,
        seed=args.seed,
        show_progress=False,
    )
    t_build = time.perf_counter() - t0
    base = summarise(ids, cats)
    routing = base["sandglass"]["routing_level"]
    tt = token_table(ids, routing)
    order = np.argsort(-tt["count"])[:15]
    variants: dict[str, SemanticIDs] = {
        "rq": ids,
        "drop": drop_routing_level(ids),
        "adaptive": adaptive_variable_length(ids),
    }
    for k in args.top_k:
        variants[f"adaptive_top{k}"] = adaptive_variable_length(ids, top_k=k)
    res: dict[str, Any] = {
        "dataset": name,
        "n_items": ids.n_items,
        "embed_seconds": round(t_embed, 1),
        "build_seconds": round(t_build, 1),
        "raw_collision_rate": ids.provenance.get("collisions_raw", {}).get("collision_rate"),
        "routing_level": routing,
        "routing_level_top_tokens": [
            {
                "token": int(t),
                "share": float(tt["share"][t]),
                "info_bits": float(tt["info_bits"][t]),
                "parent_share": float(tt["parent_share"][t]),
            }
            for t in order
        ],
        "variants": {v: (base if v == "rq" else summarise(x, cats)) for v, x in variants.items()},
        "plots": [],
    }
    for v in variants:
        p = plot_code_distribution(
            variants[v], out_dir / f"sandglass_{name}_{v}_levels.png", title=f"{name} {v}"
        )
        res["plots"].append(p.name)
    p = plot_code_tree(
        ids,
        out_dir / f"sandglass_{name}_rq_tree.png",
        depth=2,
        title=f"{name} RQ code tree (levels 0-1)",
    )
    res["plots"].append(p.name)
    for v, s in res["variants"].items():
        logger.info(
            "%s %-16s score %+.3f collisions %.4f mean length %.2f",
            name,
            v,
            s["sandglass"]["score"] or 0.0,
            s["collision_rate"],
            s["mean_length"],
        )
    return res


def _fmt(x: Any, f: str = ".3f") -> str:
    return "n/a" if x is None else format(x, f)


def to_markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    s = res["settings"]
    lines = [
        "# Sand-glass diagnosis of RQ semantic IDs, before and after the repairs",
        "",
        *provenance_markdown(meta),
        f"- IDs: residual k-means {s['levels']} x {s['codebook_size']}, seed {s['seed']}, "
        "collisions appended (one extra code for colliding items; that level is left out of "
        "the sand-glass score); MiniLM (all-MiniLM-L6-v2) embeddings of the titles.",
        "- sand-glass score = mean concentration (1 - H/log2 K) of the middle levels minus the "
        "mean of the first and last level; > 0 = sand-glass. For adaptive IDs a level's "
        "statistics use its own (native) tokens.",
        "",
    ]
    for d in res["datasets"]:
        lines += [
            f"## {d['dataset']} ({d['n_items']} items)",
            "",
            f"Raw collision rate of the 4-code IDs before appending: "
            f"{_fmt(d['raw_collision_rate'], '.4f')}. Most concentrated middle level (routing "
            f"level): {d['routing_level']}. Its most frequent tokens:",
            "",
            "| token | share | info given parent (bits) | share of parents using it |",
            "|---|---|---|---|",
        ]
        for t in d["routing_level_top_tokens"][:8]:
            lines.append(
                f"| {t['token']} | {t['share']:.3f} | {t['info_bits']:.2f} | "
                f"{t['parent_share']:.2f} |"
            )
        lines += [
            "",
            "| variant | score | score top-1 | per-level top-1 share | per-level norm. entropy | "
            "per-level utilisation | collision rate | mean length | removed / dropped |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v, r in d["variants"].items():
            q = r["quantisation_levels"]
            rows = [r["levels"][j].get("native", r["levels"][j]) for j in q]
            rep = r.get("repair") or {}
            what = (
                f"level {rep['level']} dropped"
                if rep.get("method") == "drop_routing_level"
                else f"level {rep['level']}: {len(rep['removed_tokens'])} tokens "
                f"({100 * rep['removed_share']:.1f}% of items)"
                if rep
                else "-"
            )
            lines.append(
                f"| {v} | {_fmt(r['sandglass']['score'], '+.3f')} | "
                f"{_fmt(r['sandglass']['score_top1'], '+.3f')} | "
                + " / ".join(f"{x['top1']:.3f}" for x in rows)
                + " | "
                + " / ".join(f"{x['normalised_entropy']:.3f}" for x in rows)
                + " | "
                + " / ".join(f"{x['utilisation']:.2f}" for x in rows)
                + f" | {r['collision_rate']:.4f} | {r['mean_length']:.2f} | {what} |"
            )
        if any("ami" in r for r in d["variants"].values()):
            lines += [
                "",
                "AMI of each prefix length (1..L) against the categories:",
                "",
                "| variant | department | aisle |",
                "|---|---|---|",
            ]
            for v, r in d["variants"].items():
                lines.append(
                    f"| {v} | "
                    + ", ".join(f"{x:.3f}" for x in r["ami"]["department"])
                    + " | "
                    + ", ".join(f"{x:.3f}" for x in r["ami"]["aisle"])
                    + " |"
                )
        lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in d["plots"]), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument(
        "--datasets", nargs="+", default=["homedepot", "instacart"], choices=list(DATASETS)
    )
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--codebook-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--top-k",
        type=int,
        nargs="*",
        default=[8, 32],
        help="also run adaptive_variable_length with these fixed K",
    )
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not Path(args.data_root).is_dir():
        logger.error("data folder %s not found; pass --data-root", args.data_root)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "meta": provenance(seed=args.seed),
        "settings": {k: getattr(args, k) for k in ("levels", "codebook_size", "seed", "top_k")},
        "datasets": [run_dataset(n, args, out) for n in args.datasets],
    }
    write_results(out / "sandglass.json", res, to_markdown(res))
    logger.info("wrote %s/sandglass.{json,md}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
