"""Span index build time and size for 1 million synthetic titles (token ids drawn from a Zipf
law over a 8,192-piece vocabulary, 4-20 tokens a title, like catalogue titles), plus the cost
of vectorised narrowing and next-token look-ups.

    taskset -c 1 python benchmarks/span_index_build.py [--titles 1000000]
Writes benchmarks/results/span_index_build.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--titles", type=int, default=1_000_000)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    from _provenance import provenance, provenance_markdown, write_results

    from gsid.text.span_index import SpanIndex

    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 21, args.titles)
    flat = np.minimum(rng.zipf(1.2, int(lengths.sum())), args.vocab - 1)
    cuts = np.cumsum(lengths)[:-1]
    titles = np.split(flat, cuts)
    t0 = time.perf_counter()
    index = SpanIndex.build(titles, vocab_size=args.vocab)
    build_s = time.perf_counter() - t0
    # 4,096 beams narrowed by one token from random 1-token spans, and next tokens of 1,000
    starts = rng.integers(1, 200, 4096)
    lo, hi = index.root(4096)
    lo, hi = index.narrow(lo, hi, 0, starts)
    t1 = time.perf_counter()
    index.narrow(lo, hi, 1, rng.integers(1, 200, 4096))
    narrow_ms = (time.perf_counter() - t1) * 1e3
    t2 = time.perf_counter()
    lo2, hi2 = index.narrow(lo, hi, 1, np.full(4096, 1))
    for i in range(1000):
        index.next_tokens(int(lo2[i]), int(hi2[i]), 2)
    next_us = (time.perf_counter() - t2) * 1e6 / 1000
    res = {
        **provenance(seed=0),
        "titles": args.titles,
        "tokens": index.n_tokens,
        "build_s": build_s,
        "bytes": index.nbytes(),
        "bytes_per_token": index.nbytes() / index.n_tokens,
        "narrow_4096_beams_ms": narrow_ms,
        "next_tokens_us": next_us,
    }
    md = ["# Span index build: synthetic titles", "", *provenance_markdown(res), "",
          "| titles | tokens | build s | bytes/token | narrow 4,096 beams (ms) | next_tokens (us) |",
          "|---:|---:|---:|---:|---:|---:|",
          f"| {args.titles:,} | {index.n_tokens:,} | {build_s:.2f} | {res['bytes_per_token']:.2f} "
          f"| {narrow_ms:.1f} | {next_us:.0f} |"]  # fmt: skip
    write_results(Path(args.out) / "span_index_build.json", res, "\n".join(md), default=float)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
