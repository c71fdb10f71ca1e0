"""SEAL scoring settings of the lexical route on Home Depot `dev` (alpha, coverage, depth),
chosen on one half of the dev queries and reported on the other, on beams generated once.

The dev queries with expected items are split at random (seed 0, the same halves as
lexical_search_tuning.py) into A and B. The saved retriever's beams are generated once for
every query; each scoring setting re-ranks those beams (LexicalRetriever._rank_beams). The
setting chosen on A is the one with the highest tail R@100 on A (the issue's target: lexical
tail R@100 >= BM25's), ties broken by R@10 on A; its figures on B are the check on queries
that took no part in the choice.

    taskset -c 1 python benchmarks/lexical_scoring_tuning.py --lexical runs/lexical_hd_pt/dpo
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--lexical", required=True, help="a saved LexicalRetriever")
    ap.add_argument("--alphas", default="1,2,3")
    ap.add_argument("--coverages", default="0.5,0.8,1.0")
    ap.add_argument("--depths", default="200,500")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_scoring_tuning")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from _dev_halves import METRICS, DevHalves
    from _provenance import provenance, provenance_markdown, write_results

    from gsid.data.importers import import_dataset
    from gsid.retrieval.base import SearchResults, load_retriever
    from gsid.retrieval.bm25 import BM25Retriever

    ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_scoring_tuning.py " + shlex.join(sys.argv[1:])
    halves = DevHalves(ds)  # A (choose), B (check)
    queries, half, scores = halves.queries, halves.half, halves.scores

    bm25 = BM25Retriever().index(ds, show_progress=False)
    rows = {"bm25": scores(bm25.search(queries, 100))}
    lx = load_retriever(args.lexical)
    t0 = time.perf_counter()
    beams = lx._generate(queries, lx.beam_width, show_progress=False)
    beam_s = time.perf_counter() - t0
    default = (lx.alpha, lx.coverage, lx.depth)
    grid = [
        (float(a), float(c), int(d))
        for a, c, d in itertools.product(
            args.alphas.split(","), args.coverages.split(","), args.depths.split(",")
        )
    ]
    if default not in grid:
        grid.insert(0, default)
    rank_s = {}
    for a, c, d in grid:
        lx.alpha, lx.coverage, lx.depth = a, c, d
        res = SearchResults.empty(len(queries), 100)
        t1 = time.perf_counter()
        for i, bs in enumerate(beams):
            items, sc = lx._rank_beams(bs, 100)
            res.ids[i, : len(items)] = lx.item_ids_[items]
            res.scores[i, : len(items)] = sc
        name = f"alpha {a:g}, coverage {c:g}, depth {d}" + (
            " (default)" if (a, c, d) == default else ""
        )
        rank_s[name] = time.perf_counter() - t1
        rows[name] = scores(res)
    tuned = [n for n in rows if n != "bm25"]
    chosen = max(tuned, key=lambda n: (rows[n]["A"]["tail R@100"], rows[n]["A"]["R@10"]))
    cols = (*METRICS, "tail R@100")
    table = ["| setting | A: R@1 / R@10 / R@100 / MRR / tail R@100 | B: the same | "
             "all dev: the same |", "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for name, r in rows.items():
        cells = [" / ".join(f"{r[p][m]:.2f}" for m in cols) for p in ("A", "B", "all")]
        mark = " **(chosen on A)**" if name == chosen else ""
        table.append(f"| {name}{mark} | {' | '.join(cells)} |")
    print("\n".join(table))
    extra = {"chosen": chosen, "beam_seconds": beam_s, "rank_seconds": rank_s,
             "n_queries": {"A": int((half == 0).sum()), "B": int((half == 1).sum())}}  # fmt: skip
    prov = provenance(seed=0, command=command)
    md = [f"# Lexical route: SEAL scoring settings — {ds.name} / dev (chosen on A, checked on B)",
          "", *provenance_markdown(prov), "",
          f"Halves of the {len(queries)} dev queries with expected items: A {extra['n_queries']['A']},"
          f" B {extra['n_queries']['B']} (seeded random split, as in lexical_search_tuning.md). "
          f"Lexical model: `{args.lexical}`, beam {lx.beam_width}, beams generated once "
          f"({beam_s:.0f} s) and re-ranked by each setting. Chosen on A: the highest tail R@100, "
          "ties by R@10.", "", *table, "", "```json", json.dumps(extra, indent=1), "```"]  # fmt: skip
    out = Path(args.out) / f"{args.stem}.json"
    write_results(out, {**prov, "rows": rows, "extra": extra}, "\n".join(md), default=float)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
