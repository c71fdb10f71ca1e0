"""`gsid index build | info`, `gsid search`, `gsid train`: a method trained once on a catalogue,
saved as one index directory, searched from the shell (see README "Use gsid on your catalogue")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gsid.cli.common import add_force, data_path, guard_out, load_data
from gsid.errors import GsidError

RETRIEVER = "gsid-retriever"
SEARCH_BATCH = 256  # queries from standard input searched (and printed) per batch


# ---------------------------------------------------------------- index build / info
def method_options(method: str, specs: list[str] | None) -> dict:
    """--set OPTION=VALUE (or METHOD.OPTION=VALUE) for the one method of `index build`."""
    from gsid.retrieval.registry import METHODS, parse_method_options

    out = {}
    for spec in specs or []:
        prefix = spec.partition("=")[0].partition(".")[0]
        if prefix in METHODS and prefix != method:
            raise GsidError(f"--set {spec!r} names another method; this index is {method!r}")
        parsed = parse_method_options([spec if prefix == method else f"{method}.{spec}"])
        out.update(parsed[method])
    return out


def cmd_index_build(args: argparse.Namespace) -> int:
    from gsid.retrieval.registry import make_retriever

    guard_out(args, RETRIEVER, data_path(args.data))
    options = method_options(args.method, args.set)
    retriever = make_retriever(args.method, options, cache_dir=args.cache, seed=args.seed)
    ds = load_data(args.data, args.seed, args.progress)
    t0 = time.perf_counter()
    retriever.index(ds, show_progress=args.progress)
    took = time.perf_counter() - t0
    retriever.save(args.out)
    n = len(retriever.item_ids_)
    print(
        f"{args.method} index of {n} items ({ds.name}) built in {took:.0f} s, "
        f"{retriever.index_bytes() / max(n, 1):.1f} B/item -> {args.out}"
    )
    return 0


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cmd_index_info(args: argparse.Namespace) -> int:
    from gsid._io import read_manifest
    from gsid.retrieval.base import FORMAT_VERSION, KIND

    path = Path(args.index)
    manifest = read_manifest(path, KIND, FORMAT_VERSION)  # checksums verified (or --no-verify)
    info = {
        "index": str(path),
        "method": manifest.get("name"),
        "class": manifest.get("retriever"),
        "format_version": manifest.get("format_version"),
        "gsid_version": manifest.get("gsid_version"),
        "created": manifest.get("created"),
        "n_items": manifest.get("n_items"),
        "n_added": manifest.get("n_added", 0),
        "dataset": manifest.get("dataset"),
        "bytes_on_disk": _dir_bytes(path),
        "config": manifest.get("config"),
    }
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    for key, value in info.items():
        if key == "config":
            print("config:")
            print("  " + json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n  "))
        elif isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            print(f"{key}: {value}")
    return 0


# ---------------------------------------------------------------- search
def _queries(args: argparse.Namespace):
    """The queries of the command line, else of standard input (one a line, blanks skipped),
    in batches so that a long stream is answered as it is read."""
    if args.queries:
        yield list(args.queries)
        return
    if sys.stdin.isatty():
        raise GsidError("no query given: pass queries as arguments, or one a line on stdin")
    batch: list[str] = []
    for line in sys.stdin:
        if line.strip():
            batch.append(line.rstrip("\n"))
        if len(batch) == SEARCH_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _results(retriever, queries: list[str], k: int, titles: dict, codes) -> list[dict]:
    """One dict per query: its results with rank, item id, title, score and code."""
    from gsid.retrieval.base import ranked_hits

    ids, scores = retriever.search(queries, k)
    return [
        {"query": q, "results": ranked_hits(row, srow, titles, codes)}
        for q, row, srow in zip(queries, ids, scores, strict=True)
    ]


def _print_table(answer: dict) -> None:
    print(f"query: {answer['query']}")
    if not answer["results"]:
        print("  (no results)")
    for hit in answer["results"]:
        code = f"  [{hit['code']}]" if hit.get("code") else ""
        print(
            f"  {hit['rank']:>3}  {hit['item_id']}  {hit['score']:.4f}{code}  {hit['title'] or ''}"
        )


def cmd_search(args: argparse.Namespace) -> int:
    import gsid
    from gsid.retrieval.base import item_titles, items_code_strings

    retriever = gsid.load(args.index)
    titles, codes = item_titles(retriever), items_code_strings(retriever)  # once, not per batch
    for batch in _queries(args):
        for answer in _results(retriever, batch, args.k, titles, codes):
            if args.json:
                print(json.dumps(answer, ensure_ascii=False))
            else:
                _print_table(answer)
        sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from gsid.models.config import GSIDConfig
    from gsid.models.train import train_gsid
    from gsid.retrieval.gsid import cpu_config
    from gsid.retrieval.registry import parse_method_options

    out = Path(args.out)
    checkpoint = out / "checkpoint"
    if out.exists() and not out.is_dir():
        raise GsidError(f"--out {out} is a file; name a directory for the training run")
    if checkpoint.is_dir() and not args.resume:
        raise GsidError(
            f"{out} holds an interrupted training run; pass --resume to continue it, or choose "
            f"another --out"
        )
    finished = (out / "model").is_dir()
    if (
        out.is_dir()
        and any(out.iterdir())
        and not checkpoint.is_dir()
        and not (finished and args.force)
    ):
        hint = (
            "choose another --out, or pass --force to train it again"
            if finished
            else "choose another --out"
        )
        raise GsidError(f"{out} is not empty{' (a finished run)' if finished else ''}; {hint}")
    options = parse_method_options([f"gsid.{s}" for s in args.set or []]).get("gsid", {})
    config = cpu_config(options) if args.cpu_defaults else options
    cfg = GSIDConfig.from_dict({"seed": args.seed, **config})
    ds = load_data(args.data, args.seed, args.progress)
    t0 = time.perf_counter()
    model, ids = train_gsid(ds, cfg, out, args.progress, cache_dir=args.cache, resume=args.resume)
    print(
        f"GSID trained on {ds.name} in {time.perf_counter() - t0:.0f} s: {ids.n_items} items, "
        f"{model.config.n_levels} levels of {model.config.codebook_size} codes -> {out} "
        f"(use it: gsid index build --method gsid-gr --set model_dir={out} ...)"
    )
    return 0


# ---------------------------------------------------------------- parsers
def add_parsers(sub) -> None:
    index = sub.add_parser(
        "index", help="build an index of a catalogue with one method; inspect it"
    )
    isub = index.add_subparsers(dest="index_command", required=True)
    build = isub.add_parser("build", help="train what the method needs and save the index")
    build.add_argument(
        "--data",
        required=True,
        help="dataset directory, synthetic:N, or homedepot|instacart|bestbuy:PATH",
    )
    build.add_argument(
        "--method", required=True, help="bm25, dense, dense-ft, gsid, gsid-gr, gr, hybrid, ..."
    )
    build.add_argument(
        "--set",
        action="append",
        metavar="OPTION=VALUE",
        help="method option, repeatable (e.g. k1=1.2)",
    )
    build.add_argument("--out", required=True, help="index directory to write")
    build.add_argument(
        "--cache", default="cache", help="embedding cache directory (default ./cache)"
    )
    build.add_argument("--seed", type=int, default=0)
    add_force(build)
    build.set_defaults(func=cmd_index_build)

    info = isub.add_parser("info", help="what an index holds: method, config, items, dataset")
    info.add_argument("index", help="an index directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_index_info)

    search = sub.add_parser("search", help="search an index from the shell (queries or stdin)")
    search.add_argument("index", help="an index directory (gsid index build)")
    search.add_argument("queries", nargs="*", help="queries; none: read one a line from stdin")
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    search.add_argument("--json", action="store_true", help="one JSON object per query")
    search.set_defaults(func=cmd_search)

    train = sub.add_parser("train", help="train a GSID model (checkpoints; --resume after a crash)")
    train.add_argument(
        "--data",
        required=True,
        help="dataset directory, synthetic:N, or homedepot|instacart|bestbuy:PATH",
    )
    train.add_argument("--out", required=True, help="run directory: model/, ids/, checkpoint/")
    train.add_argument(
        "--set", action="append", metavar="FIELD=VALUE", help="GSIDConfig field, e.g. n_levels=3"
    )
    train.add_argument("--resume", action="store_true", help="continue an interrupted run at --out")
    train.add_argument(
        "--full-model",
        dest="cpu_defaults",
        action="store_false",
        help="GSIDConfig's own defaults (token memory, trained encoder: for a GPU) instead of "
        "the CPU set-up that gsid-gr trains",
    )
    train.add_argument(
        "--cache", default="cache", help="embedding cache directory (default ./cache)"
    )
    train.add_argument("--seed", type=int, default=0)
    add_force(train)
    train.set_defaults(func=cmd_train)
