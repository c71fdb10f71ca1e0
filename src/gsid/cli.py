"""The `gsid` command line: data import, bench, demo, semantic IDs.

Every subcommand is a thin layer over the Python API; see README "CLI reference".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from gsid.errors import GsidError

log = logging.getLogger("gsid")

DEMO_METHODS = "bm25,dense,dense-ft,gsid,gsid-gr,gr,hybrid"
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
# the hybrid users ask for: the demo's gsid-gr fused with BM25 (RRF)
DEMO_OPTIONS["hybrid"] = {
    "parts": ["gsid-gr", "bm25"],
    "part_options": {"gsid-gr": DEMO_OPTIONS["gsid-gr"]},
}


def _parse_map(spec: str | None) -> dict[str, str]:
    """'item_id=sku,title=name' -> {'item_id': 'sku', 'title': 'name'}."""
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise GsidError(f"column mapping {part!r} must look like gsid_column=your_column")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _fractions(spec: str) -> tuple[float, float, float]:
    from gsid.data.splits import check_fractions

    try:
        parts = tuple(float(x) for x in spec.split(","))
        return check_fractions(parts)  # type: ignore[arg-type]
    except ValueError:
        raise GsidError(
            f"--split-fractions needs 3 non-negative numbers summing to 1 (train,dev,test), "
            f"like 0.8,0.1,0.1; got {spec!r}"
        ) from None


DATASET, IDS = "gsid-dataset", "gsid-semantic-ids"


def _check_out(args: argparse.Namespace, kind: str, *inputs: str | None, out: str | None = None):
    """Refuse, before any work, an --out that would lose a user's files (see gsid._io)."""
    from gsid._io import check_out

    check_out(
        out or args.out,
        kind,
        force=getattr(args, "force", False),
        inputs=[i for i in inputs if i],
    )


def _data_path(spec: str | None) -> str | None:
    """The file-system input behind a --data spec (None for synthetic:N)."""
    if spec is None:
        return None
    kind, sep, rest = spec.partition(":")
    if sep and kind == "synthetic":
        return None
    if sep and kind in ("homedepot", "instacart", "bestbuy"):
        return rest
    return spec


def _check_writable_dir(path: str) -> None:
    """A directory that reports go into: writable now, not after an hour of benchmarking."""
    from gsid._io import OutputError, check_writable

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p} is a file; pass a directory for the reports")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p} is not writable; choose another --out")
    check_writable(p)


# ---------------------------------------------------------------- data
def cmd_data_import(args: argparse.Namespace) -> int:
    from gsid.data.importers import import_dataset

    _check_out(args, DATASET, args.path)
    options = {"drop_missing": True} if getattr(args, "drop_missing", False) else {}
    ds = import_dataset(args.source, args.path, **options)
    if args.buckets:
        from gsid.data.splits import BucketRule

        ds.bucket_rule = BucketRule.parse(args.buckets)
    ds.save(args.out, force=args.force)
    log.info("saved %s to %s", ds, args.out)
    print(f"imported {args.source}: {len(ds.items)} items, {len(ds.queries)} queries -> {args.out}")
    return 0


def cmd_data_files(args: argparse.Namespace) -> int:
    from gsid.data.loading import Source, build_dataset
    from gsid.data.splits import BucketRule

    _check_out(args, DATASET, args.items, args.log, args.judgments, args.queries)
    fractions = _fractions(args.split_fractions)
    buckets = BucketRule.parse(args.buckets) if args.buckets else None

    def src(path, mapping, extra=None):
        if not path:
            return None
        extra = extra or {}
        return Source(path, _parse_map(mapping), fmt=args.format, quoting=args.quoting, **extra)

    item_extra = {
        "category_columns": args.category_columns.split(",") if args.category_columns else [],
        "attribute_columns": args.attribute_columns.split(",") if args.attribute_columns else [],
    }
    ds = build_dataset(
        items=src(args.items, args.items_map, item_extra),
        log=src(args.log, args.log_map),
        judgments=src(args.judgments, args.judgments_map),
        queries=src(args.queries, args.queries_map),
        name=args.name or Path(args.out).name,
        relevance_threshold=args.relevance_threshold,
        split_fractions=fractions,
        seed=args.seed,
        bucket_rule=buckets,
    )
    ds.save(args.out, force=args.force)
    print(f"imported {len(ds.items)} items, {len(ds.queries)} queries -> {args.out}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from gsid.data.synthetic import make_marketplace

    _check_out(args, DATASET)
    ds = make_marketplace(n_items=args.items, seed=args.seed, show_progress=args.progress)
    ds.save(args.out, force=args.force)
    print(f"synthetic marketplace: {ds} -> {args.out}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    import json

    from gsid.data import Dataset

    ds = Dataset.load(args.path)
    print(json.dumps(ds.summary(), indent=2))
    return 0


# ---------------------------------------------------------------- bench / demo
def _load_data(spec: str, seed: int = 0, show_progress: bool | None = None):
    """A dataset directory, `synthetic:N`, or `homedepot|instacart|bestbuy:PATH`."""
    from gsid.data import Dataset

    kind, sep, rest = spec.partition(":")
    if sep and kind == "synthetic":
        from gsid.data.synthetic import make_marketplace

        if not rest.strip().isdigit():
            raise GsidError(
                f"--data {spec!r}: synthetic:N needs a whole number of items, e.g. synthetic:3000"
            )
        return make_marketplace(n_items=int(rest), seed=seed, show_progress=show_progress)
    if sep and kind in ("homedepot", "instacart", "bestbuy"):
        from gsid.data.importers import import_dataset

        return import_dataset(kind, rest)
    return Dataset.load(spec)


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

    _check_writable_dir(args.out)
    ds = _load_data(args.data, args.seed, args.progress)
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
    _check_writable_dir(args.out)
    _check_out(args, DATASET, out=str(out / "data"))
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


# ---------------------------------------------------------------- semantic IDs
def _item_embeddings(ds, args: argparse.Namespace):
    from gsid.text.encoders import SentenceEncoder

    enc = SentenceEncoder(args.encoder)
    texts = ds.item_texts(with_description=args.with_description)
    return enc.encode_cached(texts, args.cache, show_progress=args.progress)


def cmd_ids_build(args: argparse.Namespace) -> int:
    from gsid.ids import build_ids
    from gsid.ids.build import check_build_args
    from gsid.retrieval.registry import parse_method_options

    _check_out(args, IDS, _data_path(args.data))
    options = parse_method_options([f"m.{s}" for s in args.set or []]).get("m", {})
    # every option checked before minutes of embedding
    check_build_args(args.method, args.levels, args.codebook_size, args.collisions, **options)
    ds = _load_data(args.data, args.seed, args.progress)
    X = None if args.method == "random" else _item_embeddings(ds, args)
    ids = build_ids(
        args.method,
        X,
        ds.item_ids,
        levels=args.levels,
        codebook_size=args.codebook_size,
        collisions=args.collisions,
        seed=args.seed,
        show_progress=args.progress,
        provenance={
            "dataset": ds.name,
            "encoder": args.encoder,
            "with_description": args.with_description,
        },
        **options,
    )
    ids.save(args.out, force=args.force)
    print(
        f"{args.method} IDs for {ids.n_items} items, {ids.n_levels} levels "
        f"{list(ids.codebook_sizes)}, collision rate {ids.collision_rate():.4f} -> {args.out}"
    )
    return 0


def cmd_ids_report(args: argparse.Namespace) -> int:
    import json

    from gsid._io import OutputError, atomic_write_text, check_writable
    from gsid.ids import SemanticIDs
    from gsid.ids.diagnostics import diagnose, format_report

    if args.json:  # writable? checked before the work, without touching an existing file
        if Path(args.json).is_dir():
            raise OutputError(f"--json {args.json} is a directory; name a file")
        check_writable(Path(args.json))
    if args.plots:
        _check_writable_dir(args.plots)
    ids = SemanticIDs.load(args.ids)
    categories = None
    if args.data:
        ds = _load_data(args.data, 0, args.progress)
        order = {iid: i for i, iid in enumerate(ds.item_ids)}
        missing = [i for i in ids.item_ids if i not in order]
        if missing:
            raise GsidError(
                f"{len(missing)} items of {args.ids} are not in {args.data} "
                f"(e.g. {missing[0]!r}); pass the dataset the IDs were built from"
            )
        rows = [order[i] for i in ids.item_ids]
        categories = [level[rows] for level in ds.category_levels()] or None
    diag = diagnose(ids, categories)
    print(format_report(diag))
    if args.json:
        atomic_write_text(args.json, json.dumps(diag, indent=2, default=float) + "\n")
    if args.plots:
        from gsid.ids.plots import plot_code_distribution, plot_code_tree

        out = Path(args.plots)
        a = plot_code_distribution(ids, out / "code_distribution.png")
        b = plot_code_tree(ids, out / "code_tree.png")
        print(f"plots: {a} {b}")
    return 0


def cmd_ids_repair(args: argparse.Namespace) -> int:
    from gsid.ids import SemanticIDs
    from gsid.ids.sandglass import adaptive_variable_length, drop_routing_level

    _check_out(args, IDS, args.ids)
    ids = SemanticIDs.load(args.ids)
    if args.repair == "drop-level":
        new = drop_routing_level(ids, level=args.level)
    else:
        new = adaptive_variable_length(ids, level=args.level, top_k=args.top_k)
    new.save(args.out, force=args.force)
    print(
        f"{args.repair}: mean ID length {ids.lengths.mean():.2f} -> {new.lengths.mean():.2f}, "
        f"collision rate {new.collision_rate():.4f} -> {args.out}"
    )
    return 0


def _code_text(codes) -> str:
    return "-".join(str(int(c)) for c in codes)


def cmd_ids_assign(args: argparse.Namespace) -> int:
    """Codes from a saved GSID model, no training: a whole (e.g. grown) catalogue or texts."""
    import json

    from gsid.models.assign import encode, to_semantic_ids
    from gsid.models.model import GSIDModel
    from gsid.retrieval.gsid import encode_catalogue

    if (args.data is None) == (not args.text):
        raise GsidError(
            "gsid ids assign needs either --data (a catalogue) or --text (one or more texts)"
        )
    if args.text and (args.out or args.compare):
        raise GsidError("--out and --compare go with --data; --text only prints codes")
    if args.text:
        from gsid.retrieval.base import check_queries

        check_queries(args.text, 1, what="--text")
    if args.out:
        _check_out(args, IDS, args.model, _data_path(args.data), args.keep, args.compare)
    model = GSIDModel.load(args.model, device=args.device)
    if args.text:
        codes = encode(model, args.text, show_progress=args.progress)[0]
        for text, row in zip(args.text, codes, strict=True):
            print(f"{_code_text(row)}\t{text}")
        return 0
    ds = _load_data(args.data, 0, args.progress)
    codes = encode_catalogue(model, ds.item_texts(), args.cache, args.progress)[0]
    if args.keep:
        # items already indexed keep their codes (the model may decode them differently now:
        # the codes of training were frozen step by step); only new items take the model's
        from gsid.ids import SemanticIDs

        kept = SemanticIDs.load(args.keep)
        L = model.config.n_levels
        if kept.n_levels < L:
            raise GsidError(f"--keep {args.keep} has {kept.n_levels} levels; the model has {L}")
        known = set(kept.item_ids)
        for r, iid in enumerate(ds.item_ids):
            if iid in known:
                codes[r] = kept.codes[kept.index_of(iid)][:L]
    ids = to_semantic_ids(
        ds.item_ids,
        codes,
        model.config,
        args.collisions,
        {"dataset": ds.name, "assigned_by": str(args.model)},
    )
    if args.out:
        ids.save(args.out, force=args.force)
        distinct = len({tuple(r) for r in codes.tolist()})
        print(
            f"GSID codes for {ids.n_items} items, {model.config.n_levels} levels, "
            f"{distinct} distinct codes, collisions {args.collisions} -> {args.out}"
        )
    else:
        for iid, row in zip(ds.item_ids, codes, strict=True):
            print(f"{iid}\t{_code_text(row)}")
    if args.compare:
        from gsid.ids import SemanticIDs
        from gsid.models.growth import code_stability

        report = code_stability(SemanticIDs.load(args.compare), ids)
        print(json.dumps({"stability_vs": str(args.compare), **report}, indent=2))
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gsid", description=__doc__.splitlines()[0])
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="never show progress bars (default: shown on a terminal)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the checksum check of loaded artifacts (very large indexes; GSID_VERIFY=0)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    # data
    data = sub.add_parser("data", help="import, synthesise and inspect datasets").add_subparsers(
        dest="data_command", required=True
    )
    imp = data.add_parser(
        "import", help="import a public benchmark data set (homedepot, instacart, bestbuy)"
    )
    imp.add_argument("source", choices=["homedepot", "instacart", "bestbuy"])
    imp.add_argument("path", help="folder with the data set's files, e.g. ../shared/data/homedepot")
    imp.add_argument("--out", required=True, help="dataset directory to write")
    imp.add_argument(
        "--drop-missing", action="store_true", help="instacart: drop department 'missing'"
    )
    imp.add_argument(
        "--buckets", help="head/torso/tail rule, e.g. volume:0.33,0.66 or rank:0.1,0.5"
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    imp.set_defaults(func=cmd_data_import)

    fil = data.add_parser("files", help="import your own catalogue, log and judgments")
    fil.add_argument("--items", required=True, help="catalogue file (csv, tsv, jsonl, parquet)")
    fil.add_argument("--items-map", help="column mapping, e.g. item_id=sku,title=name")
    fil.add_argument("--category-columns", help="columns joined into the category path, top first")
    fil.add_argument("--attribute-columns", help="columns packed into the attributes JSON")
    fil.add_argument(
        "--log", help="query log: query text, item id, weight, [user], [time], [split]"
    )
    fil.add_argument("--log-map")
    fil.add_argument("--judgments", help="graded judgments: query_id or query, item_id, grade")
    fil.add_argument("--judgments-map")
    fil.add_argument("--queries", help="queries file: query_id, query, [split], [frequency]")
    fil.add_argument("--queries-map")
    fil.add_argument(
        "--format", choices=["csv", "tsv", "jsonl", "parquet"], help="default: from suffix"
    )
    fil.add_argument("--quoting", choices=["standard", "none"], default="standard")
    fil.add_argument(
        "--relevance-threshold",
        type=float,
        default=1.0,
        help="grade >= this is relevant (default 1.0)",
    )
    fil.add_argument(
        "--split-fractions", default="0.8,0.1,0.1", help="train,dev,test (default 0.8,0.1,0.1)"
    )
    fil.add_argument("--seed", type=int, default=0)
    fil.add_argument("--buckets", help="head/torso/tail rule, e.g. volume:0.33,0.66")
    fil.add_argument("--name")
    fil.add_argument("--out", required=True)
    fil.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    fil.set_defaults(func=cmd_data_files)

    syn = data.add_parser("synth", help="write a synthetic marketplace")
    syn.add_argument("--items", type=int, default=5000, help="number of items (1k to 1M)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--out", required=True)
    syn.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    syn.set_defaults(func=cmd_data_synth)

    info = data.add_parser("info", help="summarise a dataset directory")
    info.add_argument("path")
    info.set_defaults(func=cmd_data_info)

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

    ids = sub.add_parser("ids", help="build, diagnose and repair semantic IDs").add_subparsers(
        dest="ids_command", required=True
    )
    b = ids.add_parser("build", help="build semantic IDs from item embeddings")
    b.add_argument("--data", required=True, help="dataset directory, synthetic:N or NAME:PATH")
    b.add_argument("--method", required=True, choices=["rq", "rqvae", "hkmeans", "random"])
    b.add_argument("--levels", type=int, default=4)
    b.add_argument("--codebook-size", type=int, default=128)
    b.add_argument("--collisions", choices=["append", "reassign", "none"], default="append")
    b.add_argument(
        "--encoder", default="minilm", help="'minilm' or a local sentence-transformers dir"
    )
    b.add_argument("--with-description", action="store_true", help="embed title + description")
    b.add_argument(
        "--set",
        action="append",
        metavar="OPTION=VALUE",
        help="builder option, e.g. --set niter=30 or --set epochs=50 (rqvae)",
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--cache", default="cache", help="embedding cache directory")
    b.add_argument("--out", required=True)
    b.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    b.set_defaults(func=cmd_ids_build)

    r = ids.add_parser("report", help="diagnose IDs: utilisation, entropy, sand-glass, AMI, plots")
    r.add_argument("ids", help="a SemanticIDs directory")
    r.add_argument("--data", help="the dataset, for AMI against its category levels")
    r.add_argument("--json", help="also write the diagnosis as JSON here")
    r.add_argument("--plots", help="directory for code_distribution.png and code_tree.png")
    r.set_defaults(func=cmd_ids_report)

    f = ids.add_parser(
        "repair", help="sand-glass repairs: drop the routing level, adaptive lengths"
    )
    f.add_argument("ids", help="a SemanticIDs directory")
    f.add_argument("repair", choices=["drop-level", "adaptive"])
    f.add_argument(
        "--level", type=int, help="level to repair (default: the most concentrated middle level)"
    )
    f.add_argument(
        "--top-k", type=int, help="adaptive: remove this many top tokens (default: rule)"
    )
    f.add_argument("--out", required=True)
    f.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    f.set_defaults(func=cmd_ids_repair)

    a = ids.add_parser(
        "assign",
        help="codes from a saved GSID model, no training: a (grown) catalogue or texts",
    )
    a.add_argument("--model", required=True, help="a GSID model directory (train_gsid's model/)")
    a.add_argument("--data", help="dataset directory, synthetic:N or NAME:PATH: its catalogue")
    a.add_argument(
        "--text", action="append", help="a query or item text (repeatable): prints its codes"
    )
    a.add_argument("--out", help="write the catalogue's SemanticIDs here (else print item codes)")
    a.add_argument(
        "--compare", metavar="IDS", help="report the share of items keeping their code vs IDS"
    )
    a.add_argument(
        "--keep",
        metavar="IDS",
        help="items already in IDS keep their codes; only the other items are decoded",
    )
    a.add_argument("--collisions", choices=["append", "none"], default="append")
    a.add_argument("--cache", default="cache", help="embedding cache directory")
    a.add_argument("--device", help="cpu, cuda, ... (default: the model's, else auto)")
    a.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )
    a.set_defaults(func=cmd_ids_assign)
    return p


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that every `with` block cleans up its temporaries."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _fail(error: BaseException, message: str, verbose: int) -> None:
    if verbose:
        traceback.print_exc()
    notes = "".join(f" ({n})" for n in getattr(error, "__notes__", ()))
    print(f"gsid: error: {message}{notes}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 ok; 2 a user's mistake (one line on stderr, -v adds the traceback);
    1 an internal error; 130 interrupted; 141 output pipe closed; 143 terminated."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a one-line usage error (exit 2)
        return int(e.code or 0)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.verbose < 2:  # bm25s sets its own logger to DEBUG when imported
        for handler in logging.getLogger().handlers:
            handler.addFilter(
                lambda r: not (r.name.startswith("bm25s") and r.levelno < logging.WARNING)
            )
    if args.progress is False:
        os.environ["GSID_NO_PROGRESS"] = "1"
    if args.progress is False or not sys.stderr.isatty():
        # Hugging Face libraries draw their own bars ("Loading weights") and load reports.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.verbose == 0:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.no_verify:
        os.environ["GSID_VERIFY"] = "0"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except BrokenPipeError:  # `gsid ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("gsid: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("gsid: terminated", file=sys.stderr)
        return 143
    except GsidError as e:
        _fail(e, str(e), args.verbose)
        return 2
    except OSError as e:  # a path the user gave: missing, a directory, not permitted, ...
        where = f": {e.filename}" if e.filename else ""
        _fail(e, f"{e.strerror or e}{where}", args.verbose)
        return 2
    except ValueError as e:  # the library's argument checks
        _fail(e, str(e), args.verbose)
        return 2
    except Exception as e:
        if args.verbose:
            traceback.print_exc()
        print(
            f"gsid: internal error: {type(e).__name__}: {e} (rerun with -v for the traceback "
            f"and report it)",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
