"""Step-0 encoder variants (FineTuneConfig options) on Home Depot dev, side by side.

    python benchmarks/step0_variants_homedepot.py \
        'e2={"epochs": 2}' 'g4e2={"group_negatives": 4, "epochs": 2}' \
        'g4c128-1024={"group_negatives": 4, "epochs": 2, "group_cells": [128, 1024]}'

Each NAME=JSON argument is one `dense-ft` run (`FineTunedDenseRetriever(finetune=JSON)`, the
baseline's retriever) trained on the train pairs and scored on all 2,000 dev queries. The
fine-tuned models stay in runs/dft_NAME. Writes benchmarks/results/<stem>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help='NAME=JSON, e.g. g4e2={"group_negatives": 4}')
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="step0_variants_homedepot")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"Home Depot data not found at {args.data}; pass --data", file=sys.stderr)
        return 2

    import torch

    from gsid.data.importers import import_dataset
    from gsid.eval.bench import run_bench
    from gsid.eval.report import format_table, write_report
    from gsid.retrieval.dense import FineTunedDenseRetriever

    if args.threads:
        torch.set_num_threads(args.threads)
    factories = {}
    for spec in args.variants:
        name, sep, raw = spec.partition("=")
        if not sep:
            print(f"variant {spec!r} must look like NAME=JSON", file=sys.stderr)
            return 2
        options = json.loads(raw)
        factories[name] = lambda name=name, options=options: FineTunedDenseRetriever(
            cache_dir=args.cache, finetune=options, work_dir=str(ROOT / "runs" / f"dft_{name}")
        )
    ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/step0_variants_homedepot.py " + shlex.join(sys.argv[1:])
    result = run_bench(ds, factories, split="dev", timing=False, command=command)
    write_report(result, args.out, stem=args.stem)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
