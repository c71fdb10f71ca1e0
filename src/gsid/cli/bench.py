"""`gsid bench` and `gsid demo`: every method through the one harness, a table and a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gsid.cli.common import DATASET, guard_out, guard_report_dir, load_data
from gsid.errors import GsidError

DEMO_METHODS = "bm25,dense,dense-ft,gsid,gsid-gr,gr,lexical,seal,hybrid"
# Sizes that keep `gsid demo` within a few minutes on 2 CPU cores (a few thousand items);
# `--set` overrides any of them. `gsid bench` uses each method's own defaults.
DEMO_OPTIONS: dict[str, dict] = {
    "dense-ft": {"max_pairs": 1500},
    "gsid": {"config": {"n_levels": 3, "codebook_size": 32}},
    # the online configuration: queries through the distilled static encoder (~0.4 ms each),
    # a beam over first codes whose items are all re-ranked (id_levels=1: on the demo data and
    # on Home Depot dev, higher recall and faster than beams over whole IDs), the first codes
    # kept until they hold 75% of the probability (the best Home Depot GR-alone row)
    "gsid-gr": {
        "config": {"n_levels": 3, "codebook_size": 32},
        "rescore": "cosine",
        "query_encoder": "static",
        "id_levels": 1,
        "beam_width": 64,
        "beam_mass": 0.75,
        "rescore_depth": 60000,
    },
    "gr": {"levels": 3, "codebook_size": 16, "model": {"epochs": 6, "num_threads": 1}},
}
# lexical / seal: a smaller T5 (d_model 64, 2,048 catalogue word pieces), one epoch and narrow
# beams, so that the two together add about a minute on 2 cores
_SPAN_MODEL = {"d_model": 64, "d_ff": 256, "n_heads": 2, "vocab_size": 2048, "num_threads": 1}
DEMO_OPTIONS["lexical"] = {
    "beam_width": 4,
    "dpo_beam": 3,
    "model": {**_SPAN_MODEL, "epochs": 1, "dpo_epochs": 1},
}
DEMO_OPTIONS["seal"] = {"beam_width": 8, "seal_samples": 1, "model": {**_SPAN_MODEL, "epochs": 1}}
# the hybrid users ask for: the demo's gsid-gr fused with BM25 (RRF)
DEMO_OPTIONS["hybrid"] = {
    "parts": ["gsid-gr", "bm25"],
    "part_options": {"gsid-gr": DEMO_OPTIONS["gsid-gr"]},
}


def _run_methods(
    ds,
    methods: list[str],
    args: argparse.Namespace,
    command: str,
    defaults: dict[str, dict] | None = None,
):
    from gsid.eval.bench import run_bench
    from gsid.retrieval.registry import make_retriever, parse_method_options

    options = parse_method_options(args.set)
    for m, opts in (defaults or {}).items():
        if m in methods:
            options[m] = {**opts, **options.get(m, {})}
    stray = sorted(set(options) - set(methods))
    if stray:
        raise GsidError(f"--set names method(s) {stray} that are not in --methods {methods}")
    factories = {
        m: (lambda m=m: make_retriever(m, options.get(m), cache_dir=args.cache, seed=args.seed))
        for m in methods
    }
    for m in methods:  # fail fast on a bad name or option, before anything is trained
        make_retriever(m, options.get(m), cache_dir=args.cache, seed=args.seed)
    return run_bench(
        ds,
        factories,
        split=args.split,
        timing=not args.no_timing,
        keep_going=args.keep_going,
        command=command,
        show_progress=args.progress,
        latency_sample=args.latency_sample,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    import shlex

    from gsid.eval.report import format_table, write_report

    guard_report_dir(args.out)
    ds = load_data(args.data, args.seed, args.progress)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    command = "gsid " + shlex.join(sys.argv[1:]) if args.command_line is None else args.command_line
    result = _run_methods(ds, methods, args, command)
    paths = write_report(result, args.out, stem=args.stem)
    print(format_table(result))
    print(f"report: {paths[0]} and {paths[1]}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import shlex
    import time

    from gsid.data.synthetic import make_marketplace
    from gsid.eval.report import format_table, write_report

    t0 = time.perf_counter()
    out = Path(args.out)
    guard_report_dir(args.out)
    guard_out(args, DATASET, out=str(out / "data"))
    ds = make_marketplace(n_items=args.items, seed=args.seed, show_progress=args.progress)
    ds.save(out / "data")
    print(
        f"synthetic marketplace: {len(ds.items)} items, {len(ds.queries)} queries "
        f"({ds.summary()['queries']}) -> {out / 'data'}"
    )
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    command = "gsid " + shlex.join(sys.argv[1:])
    result = _run_methods(ds, methods, args, command, DEMO_OPTIONS)
    paths = write_report(result, out, stem="demo")
    print(f"\n{ds.name}, split {args.split}, {result.n_queries} queries:")
    print(format_table(result))
    print(f"report: {paths[1]} (took {time.perf_counter() - t0:.0f} s)")
    return 0


def _add_run_options(p: argparse.ArgumentParser, methods: str) -> None:
    p.add_argument(
        "--methods", default=methods, help=f"comma-separated methods (default {methods})"
    )
    p.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    p.add_argument(
        "--set",
        action="append",
        metavar="METHOD.OPTION=VALUE",
        help="method option, repeatable, e.g. --set dense-ft.epochs=2",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="cache", help="embedding cache directory (default ./cache)")
    p.add_argument("--no-timing", action="store_true", help="skip latency/QPS/memory measurements")
    p.add_argument("--latency-sample", type=int, default=200, help="queries timed one at a time")
    p.add_argument("--keep-going", action="store_true", help="record a failing method and go on")


# ---------------------------------------------------------------- parser
def add_parsers(sub) -> None:
    bench = sub.add_parser(
        "bench", help="compare retrievers on a dataset split; writes JSON + Markdown"
    )
    bench.add_argument(
        "--data",
        required=True,
        help="dataset directory, synthetic:N, or homedepot|instacart|bestbuy:PATH",
    )
    _add_run_options(bench, "bm25,dense")
    bench.add_argument("--out", default="runs/bench", help="report directory (default runs/bench)")
    bench.add_argument("--stem", default="bench", help="report file name stem (default bench)")
    bench.add_argument("--command-line", help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="end to end on the synthetic marketplace; prints the table")
    demo.add_argument("--items", type=int, default=3000, help="catalogue size (default 3000)")
    demo.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    _add_run_options(demo, DEMO_METHODS)
    demo.set_defaults(func=cmd_demo)
