"""`gsid data import | files | synth | info`: datasets in, validated, written atomically."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsid.cli.common import DATASET, add_force, guard_out, parse_fractions, parse_map


def cmd_data_import(args: argparse.Namespace) -> int:
    from gsid.data.importers import import_dataset

    guard_out(args, DATASET, args.path)
    options = {"drop_missing": True} if getattr(args, "drop_missing", False) else {}
    ds = import_dataset(args.source, args.path, **options)
    if args.buckets:
        from gsid.data.splits import BucketRule

        ds.bucket_rule = BucketRule.parse(args.buckets)
    ds.save(args.out, force=args.force)
    print(f"imported {args.source}: {len(ds.items)} items, {len(ds.queries)} queries -> {args.out}")
    return 0


def cmd_data_files(args: argparse.Namespace) -> int:
    from gsid.data.loading import Source, build_dataset
    from gsid.data.splits import BucketRule

    guard_out(args, DATASET, args.items, args.log, args.judgments, args.queries)
    fractions = parse_fractions(args.split_fractions)
    buckets = BucketRule.parse(args.buckets) if args.buckets else None

    def src(path, mapping, extra=None):
        if not path:
            return None
        extra = extra or {}
        return Source(path, parse_map(mapping), fmt=args.format, quoting=args.quoting, **extra)

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

    guard_out(args, DATASET)
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


# ---------------------------------------------------------------- parser
def add_parsers(sub) -> None:
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
    add_force(imp)
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
    add_force(fil)
    fil.set_defaults(func=cmd_data_files)

    syn = data.add_parser("synth", help="write a synthetic marketplace")
    syn.add_argument("--items", type=int, default=5000, help="number of items (1k to 1M)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--out", required=True)
    add_force(syn)
    syn.set_defaults(func=cmd_data_synth)

    info = data.add_parser("info", help="summarise a dataset directory")
    info.add_argument("path")
    info.set_defaults(func=cmd_data_info)
