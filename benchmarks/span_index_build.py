"""Span index build time and size for 1 million synthetic titles (token ids drawn from a Zipf
law over a 8,192-piece vocabulary, 4-20 tokens a title, like catalogue titles) with each
suffix-array backend side by side, plus the cost of vectorised narrowing and next-token look-ups.

    taskset -c 1 python benchmarks/span_index_build.py [--titles 1000000] [--rounds 3]
    python benchmarks/span_index_build.py --stem span_index_build_2cpu   # tokengrams threads
Writes benchmarks/results/<stem>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
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
    ap.add_argument("--backends", nargs="+", default=["divsufsort", "tokengrams"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stem", default="span_index_build")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    from _provenance import provenance, provenance_markdown, write_results

    from gsid.text.span_index import SpanIndex

    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 21, args.titles)
    flat = np.minimum(rng.zipf(1.2, int(lengths.sum())), args.vocab - 1)
    cuts = np.cumsum(lengths)[:-1]
    titles = np.split(flat, cuts)
    # the backends alternate (A B A B ...): build seconds of each, its median reported
    build_s: dict[str, list[float]] = {b: [] for b in args.backends}
    sa = None
    for _ in range(args.rounds):
        for backend in args.backends:
            t0 = time.perf_counter()
            index = SpanIndex.build(titles, vocab_size=args.vocab, backend=backend)
            build_s[backend].append(time.perf_counter() - t0)
            sa = index.sa if sa is None else sa
            assert np.array_equal(index.sa, sa), "the backends disagree"
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
    med = {b: float(np.median(v)) for b, v in build_s.items()}
    res = {
        **provenance(seed=0),
        "titles": args.titles,
        "tokens": index.n_tokens,
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "build_s": med[args.backends[0]],
        "build_s_by_backend": build_s,
        "bytes": index.nbytes(),
        "bytes_per_token": index.nbytes() / index.n_tokens,
        "narrow_4096_beams_ms": narrow_ms,
        "next_tokens_us": next_us,
    }
    md = ["# Span index build: synthetic titles", "", *provenance_markdown(res),
          f"- {res['cpus_allowed']} CPU(s) allowed; {args.rounds} builds per backend, "
          "alternating; median build seconds; both backends give the same suffix array", "",
          "| titles | tokens | backend | build s (median) | builds | bytes/token |",
          "|---:|---:|---|---:|---|---:|"]  # fmt: skip
    for b in args.backends:
        runs = ", ".join(f"{x:.2f}" for x in build_s[b])
        md.append(f"| {args.titles:,} | {index.n_tokens:,} | {b} | {med[b]:.2f} | {runs} "
                  f"| {res['bytes_per_token']:.2f} |")  # fmt: skip
    md += ["", "| narrow 4,096 beams (ms) | next_tokens (us) |", "|---:|---:|",
           f"| {narrow_ms:.1f} | {next_us:.0f} |"]  # fmt: skip
    write_results(Path(args.out) / f"{args.stem}.json", res, "\n".join(md), default=float)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
