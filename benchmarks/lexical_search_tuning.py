"""Search-time settings of the lexical route on Home Depot `dev`, chosen on one half of the dev
queries and reported on the other: the beam width, and the RRF fusion of lexical with BM25
(weights and constant c).

The dev queries with expected items are split once at random (seed 0) into halves A and B.
Every lexical beam width and BM25 are searched once (k = 100); each fusion setting is computed
from those lists (gsid.retrieval.fusion.reciprocal_rank_fusion). The fusion chosen on A is
the one whose smallest gain over BM25, over R@1, R@10, R@100 and MRR@100, is largest (the
issue's target: above BM25 on every metric); its figures on B are the check on queries that
took no part in the choice.

    taskset -c 0 python benchmarks/lexical_search_tuning.py --lexical runs/lexical_hd/dpo
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--beam-widths", default="10,20")
    ap.add_argument("--weights", default="1,1.5,2,3", help="BM25's RRF weights (lexical: 1)")
    ap.add_argument("--cs", default="10,30,60", help="RRF constants")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_search_tuning")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from _dev_halves import METRICS, DevHalves
    from _provenance import provenance, provenance_markdown, write_results

    from gsid.data.importers import import_dataset
    from gsid.retrieval.base import load_retriever
    from gsid.retrieval.bm25 import BM25Retriever
    from gsid.retrieval.fusion import reciprocal_rank_fusion

    ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_search_tuning.py " + shlex.join(sys.argv[1:])
    halves = DevHalves(ds)  # A (choose), B (check)
    queries, half = halves.queries, halves.half

    def scores(res) -> dict[str, dict]:
        return halves.scores(res, tail=("R@10", "R@100"))

    bm25 = BM25Retriever().index(ds, show_progress=False)
    lists = {"bm25": bm25.search(queries, 100)}
    lx = load_retriever(args.lexical)
    seconds = {}
    for w in (int(x) for x in args.beam_widths.split(",")):
        lx.beam_width = w
        t0 = time.perf_counter()
        lists[f"lexical beam {w}"] = lx.search(queries, 100)
        seconds[f"lexical beam {w}"] = time.perf_counter() - t0
    rows = {name: scores(res) for name, res in lists.items()}
    base_w = int(args.beam_widths.split(",")[0])
    lex = lists[f"lexical beam {base_w}"]
    fused = {}
    for c in (float(x) for x in args.cs.split(",")):
        for wb in (float(x) for x in args.weights.split(",")):
            name = f"lexical beam {base_w} + bm25 (c {c:g}, bm25 weight {wb:g})"
            fused[name] = scores(reciprocal_rank_fusion([lex, lists["bm25"]], 100, c, [1.0, wb]))
    rows.update(fused)

    def worst_gain(r, part):
        return min(r[part][m] - rows["bm25"][part][m] for m in METRICS)

    chosen = max(fused, key=lambda n: worst_gain(fused[n], "A"))
    table = ["| setting | A: R@1 / R@10 / R@100 / MRR | B: R@1 / R@10 / R@100 / MRR | all dev: "
             "R@1 / R@10 / R@100 / MRR | tail R@10 / R@100 | worst gain over BM25 A / B |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, r in rows.items():
        cells = [" / ".join(f"{r[p][m]:.2f}" for m in METRICS) for p in ("A", "B", "all")]
        tail = f"{r['all']['tail R@10']:.2f} / {r['all']['tail R@100']:.2f}"
        gain = f"{worst_gain(r, 'A'):+.2f} / {worst_gain(r, 'B'):+.2f}"
        mark = " **(chosen on A)**" if name == chosen else ""
        table.append(f"| {name}{mark} | {' | '.join(cells)} | {tail} | {gain} |")
    print("\n".join(table))
    extra = {"chosen": chosen, "search_seconds_2000_queries": seconds,
             "n_queries": {"A": int((half == 0).sum()), "B": int((half == 1).sum())}}  # fmt: skip
    prov = provenance(seed=0, command=command)
    md = [f"# Lexical route: search-time settings — {ds.name} / dev (chosen on A, checked on B)",
          "", *provenance_markdown(prov), "",
          f"Halves of the {len(queries)} dev queries with expected items: A {extra['n_queries']['A']},"
          f" B {extra['n_queries']['B']} (seeded random split). Lexical model: `{args.lexical}`. "
          "Gains are in points over BM25 on the same half; 'worst gain' is the smallest over "
          "the four metrics.", "", *table, "", "```json", json.dumps(extra, indent=1), "```"]  # fmt: skip
    out = Path(args.out) / f"{args.stem}.json"
    write_results(out, {**prov, "rows": rows, "extra": extra}, "\n".join(md), default=float)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
