"""The three baselines (BM25, zero-shot MiniLM, fine-tuned MiniLM) on Home Depot `dev`.

Corpus: all 54,667 products; relevant: relevance >= 2.5; training: relevant pairs of `train`
queries only. Writes benchmarks/results/homedepot_baselines.{json,md}.

    python benchmarks/homedepot_baselines.py [--data ../shared/data/homedepot] [--methods ...]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from gsid.data.importers import import_dataset
from gsid.eval.bench import run_bench
from gsid.eval.report import format_table, write_report
from gsid.retrieval.registry import make_retriever, parse_method_options

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--methods", default="bm25,dense,dense-ft")
    ap.add_argument("--set", action="append", help="METHOD.OPTION=VALUE")
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="homedepot_baselines")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"Home Depot data not found at {args.data}; pass --data", file=sys.stderr)
        return 2
    ds = import_dataset("homedepot", args.data)
    options = parse_method_options(args.set)
    methods = args.methods.split(",")
    factories = {
        m: (lambda m=m: make_retriever(m, options.get(m), cache_dir=args.cache)) for m in methods
    }
    command = "python benchmarks/homedepot_baselines.py " + shlex.join(sys.argv[1:])
    result = run_bench(ds, factories, split="dev", command=command)
    write_report(result, args.out, stem=args.stem)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
