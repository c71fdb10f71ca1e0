"""`gsid ids build | report | repair | assign`: semantic IDs from embeddings or a GSID model."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsid.cli.common import IDS, add_force, data_path, guard_out, guard_report_dir, load_data
from gsid.errors import GsidError


def _item_embeddings(ds, args: argparse.Namespace):
    from gsid.text.encoders import SentenceEncoder

    enc = SentenceEncoder(args.encoder)
    texts = ds.item_texts(with_description=args.with_description)
    return enc.encode_cached(texts, args.cache, show_progress=args.progress)


def cmd_ids_build(args: argparse.Namespace) -> int:
    from gsid.ids import build_ids
    from gsid.ids.build import check_build_args
    from gsid.retrieval.registry import parse_method_options

    guard_out(args, IDS, data_path(args.data))
    options = parse_method_options([f"m.{s}" for s in args.set or []]).get("m", {})
    # every option checked before minutes of embedding
    check_build_args(args.method, args.levels, args.codebook_size, args.collisions, **options)
    ds = load_data(args.data, args.seed, args.progress)
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
        guard_report_dir(args.plots)
    ids = SemanticIDs.load(args.ids)
    categories = None
    if args.data:
        ds = load_data(args.data, 0, args.progress)
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

    guard_out(args, IDS, args.ids)
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


def _keep_known_codes(codes, item_ids, keep: str, L: int) -> None:
    """Items already in the IDs at `keep` keep their codes (the model may decode them otherwise
    now: the codes of training were frozen step by step); only new items take the model's."""
    from gsid.ids import SemanticIDs

    kept = SemanticIDs.load(keep)
    if kept.n_levels < L:
        raise GsidError(f"--keep {keep} has {kept.n_levels} levels; the model has {L}")
    known = set(kept.item_ids)
    for r, iid in enumerate(item_ids):
        if iid in known:
            codes[r] = kept.codes[kept.index_of(iid)][:L]


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
        guard_out(args, IDS, args.model, data_path(args.data), args.keep, args.compare)
    model = GSIDModel.load(args.model, device=args.device)
    if args.text:
        codes = encode(model, args.text, show_progress=args.progress)[0]
        for text, row in zip(args.text, codes, strict=True):
            print(f"{_code_text(row)}\t{text}")
        return 0
    ds = load_data(args.data, 0, args.progress)
    codes = encode_catalogue(model, ds.item_texts(), args.cache, args.progress)[0]
    if args.keep:
        _keep_known_codes(codes, ds.item_ids, args.keep, model.config.n_levels)
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
def add_parsers(sub) -> None:
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
    add_force(b)
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
    add_force(f)
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
    add_force(a)
    a.set_defaults(func=cmd_ids_assign)
