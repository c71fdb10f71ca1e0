"""Is GSID's d_0 better than the encoder it reads? A paired bootstrap on Home Depot dev.

    python benchmarks/gsid_paired_homedepot.py --model-dir runs/gsid_hd/model

The Table 2 comparison (GSID d_0 against fine-tuned dense) is decided by fractions of a point
on 2,000 queries. This script ranks the same dev queries twice, by the GSID model's d_0 and by
the pooled outputs of its own frozen encoder (the aligned encoder of step 0, which is the
fine-tuned dense baseline: same data, loss and settings), and resamples the queries with
replacement to put a 95% interval on each metric's difference (d_0 minus encoder). Both rankings
are exact inner-product top-100 over the whole catalogue.

    --baseline-encoder runs/gsid_hd/aligned-encoder/model

compares d_0 with another sentence-transformers encoder instead (for a GSID model whose step 0
differs from the fine-tuned dense recipe, e.g. grouped negatives, against the plain recipe).
Writes benchmarks/results/<stem>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _provenance import provenance, provenance_markdown, write_results

ROOT = Path(__file__).resolve().parents[1]


def per_query(Q: np.ndarray, X: np.ndarray, item_ids: np.ndarray, expected: list[set]) -> dict:
    """Per-query R@1/10/100 and RR@100 of exact top-100 inner-product retrieval."""
    from gsid.eval.metrics import hit_matrix, recall_per_query, reciprocal_rank_per_query
    from gsid.models.assign import top_k

    rows, _ = top_k(Q, X, 100)
    hits = hit_matrix(item_ids[rows], expected)
    n = np.asarray([len(e) for e in expected])
    out = {f"R@{k}": recall_per_query(hits, n, k) for k in (1, 10, 100)}
    out["MRR@100"] = reciprocal_rank_per_query(hits, n, 100)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--model-dir", default=str(ROOT / "runs" / "gsid_hd" / "model"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="gsid_paired_homedepot")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--baseline-encoder",
        default=None,
        help="sentence-transformers dir to compare with (default: the model's own encoder)",
    )
    ap.add_argument("--baseline-name", default="encoder")
    args = ap.parse_args()

    import torch

    from gsid.data.importers import import_dataset
    from gsid.models.assign import encode, representation
    from gsid.models.features import pooled_features
    from gsid.models.model import GSIDModel

    torch.set_num_threads(1)
    if not Path(args.data).is_dir() or not Path(args.model_dir).is_dir():
        print(f"need the Home Depot data ({args.data}) and a GSID model ({args.model_dir})")
        return 2
    ds = import_dataset("homedepot", args.data)
    model = GSIDModel.load(args.model_dir).eval()
    if not model.config.cached_features:
        print("this comparison needs a frozen-encoder, pooled-memory GSID model", file=sys.stderr)
        return 2
    qs = ds.split_queries("dev")
    exp = ds.expected("dev")
    qs = qs[qs["query_id"].isin(exp)]
    expected = [set(exp[q]) for q in qs["query_id"]]
    item_f = pooled_features(model, ds.item_texts(), args.cache).numpy()
    query_f = pooled_features(model, qs["query"].tolist(), args.cache).numpy()
    d0 = {
        name: representation(encode(model, [], features=f)[1], "first")
        for name, f in (("items", item_f), ("queries", query_f))
    }

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    item_ids = np.asarray(ds.item_ids, dtype=object)
    a = per_query(d0["queries"], d0["items"], item_ids, expected)
    if args.baseline_encoder:
        from gsid.text.encoders import SentenceEncoder

        base = SentenceEncoder(args.baseline_encoder, max_seq_length=64)
        item_f = base.encode_cached(ds.item_texts(), args.cache)
        query_f = base.encode_cached(qs["query"].tolist(), args.cache)
    b = per_query(unit(query_f), unit(item_f), item_ids, expected)
    rng = np.random.default_rng(args.seed)
    n = len(expected)
    idx = rng.integers(0, n, size=(args.resamples, n))
    rows = {}
    for m in a:
        diff = a[m] - b[m]
        boot = diff[idx].mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        rows[m] = {
            "gsid_d0": 100 * float(a[m].mean()),
            "encoder": 100 * float(b[m].mean()),
            "diff": 100 * float(diff.mean()),
            "ci95": [100 * float(lo), 100 * float(hi)],
            "share_resamples_d0_better": float((boot > 0).mean()),
            "queries_d0_better": int((diff > 0).sum()),
            "queries_encoder_better": int((diff < 0).sum()),
        }
    result = {
        **provenance(seed=args.seed),
        "model_dir": args.model_dir,
        "baseline": args.baseline_encoder or "the model's own encoder",
        "n_queries": n,
        "resamples": args.resamples,
        "metrics": rows,
    }
    lines = [
        f"# GSID d_0 against {args.baseline_name}: paired bootstrap",
        "",
        f"- baseline: {result['baseline']}",
        *provenance_markdown(result),
        f"- {n} Home Depot dev queries, {args.resamples:,} resamples of the queries",
        "",
        f"| metric | GSID d_0 | {args.baseline_name} | d_0 - {args.baseline_name} | 95% interval "
        f"| queries better (d_0 / {args.baseline_name}) |",
        "|:---|---:|---:|---:|:---:|:---:|",
    ]
    for m, r in rows.items():
        lines.append(
            f"| {m} | {r['gsid_d0']:.2f} | {r['encoder']:.2f} | {r['diff']:+.2f} | "
            f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | "
            f"{r['queries_d0_better']} / {r['queries_encoder_better']} |"
        )
    write_results(Path(args.out) / f"{args.stem}.json", result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
