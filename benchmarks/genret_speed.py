"""Generative retrieval (RQ semantic IDs + query->ID decoder under a prefix trie) against dense
retrieval (MiniLM + faiss) and BM25 on Home Depot (or the synthetic marketplace) `dev`: recall, QPS at batch 64, single-query
p50/p99 latency and index bytes per item, all in one run (gsid.eval.bench.run_bench).

Corpus: all 54,667 products; training: relevant pairs of `train` queries + one indexing
example per product. Writes benchmarks/results/<stem>.{json,md}.

    python benchmarks/genret_speed.py [--data ../shared/data/homedepot] [--epochs 8]
    python benchmarks/genret_speed.py --dataset synthetic --items 2000 --stem genret_synthetic
        [--levels 3 --codebook-size 64 --beam-width 100] [--max-queries 500]

Both GR and dense encode the query with MiniLM at search time, so their latencies include it.
"""

from __future__ import annotations

import argparse
import copy
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from gsid.data.importers import import_dataset
from gsid.eval.bench import run_bench
from gsid.eval.report import format_table, write_report
from gsid.retrieval.bm25 import BM25Retriever
from gsid.retrieval.dense import DenseRetriever
from gsid.retrieval.fusion import HybridRetriever
from gsid.retrieval.generative import GenerativeRetriever

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["homedepot", "synthetic"], default="homedepot")
    ap.add_argument("--items", type=int, default=5000, help="synthetic marketplace size")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="genret_homedepot")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codebook-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--beam-width", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the decoder")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--latency-sample", type=int, default=100)
    ap.add_argument("--collisions", default="append", help="append | reassign | none")
    ap.add_argument("--only-gr", action="store_true", help="skip the dense and BM25 baselines")
    ap.add_argument("--no-hybrid", action="store_true")
    ap.add_argument("--save", default=None, help="save the fitted GR here")
    ap.add_argument("--id-method", default="rq", choices=["rq", "hkmeans"])
    ap.add_argument(
        "--repair",
        default="none",
        choices=["none", "drop-level", "adaptive"],
        help="sand-glass repair applied to the IDs before training (gsid.ids.sandglass)",
    )
    ap.add_argument("--name", default=None, help="row name of the GR method (default gr-METHOD)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.dataset == "synthetic":
        from gsid.data.synthetic import make_marketplace

        ds = make_marketplace(n_items=args.items, seed=0)
    elif not Path(args.data).is_dir():
        print(f"Home Depot data not found at {args.data}; pass --data", file=sys.stderr)
        return 2
    else:
        ds = import_dataset("homedepot", args.data)
    given = None
    if args.repair != "none":
        # build the IDs here, repair them, and hand them to the retriever
        from gsid.ids.build import build_ids
        from gsid.ids.sandglass import adaptive_variable_length, drop_routing_level
        from gsid.text.encoders import SentenceEncoder

        X = SentenceEncoder().encode_cached(ds.item_texts(), args.cache)
        raw = build_ids(
            args.id_method, X, ds.item_ids, args.levels, args.codebook_size, args.collisions
        )
        repair = drop_routing_level if args.repair == "drop-level" else adaptive_variable_length
        given = repair(raw)
        logging.info("IDs %r -> after %s: %r", raw, args.repair, given)
    gr = GenerativeRetriever(
        id_method=args.id_method,
        levels=args.levels,
        codebook_size=args.codebook_size,
        beam_width=args.beam_width,
        collisions=args.collisions,
        semantic_ids=given,
        model={"epochs": args.epochs, "num_threads": args.threads},
        cache_dir=args.cache,
    )
    name = args.name or f"gr-{args.id_method}"
    methods = {name: gr}
    if not args.only_gr:
        methods.update(dense=lambda: DenseRetriever(cache_dir=args.cache), bm25=BM25Retriever)
    command = "python benchmarks/genret_speed.py " + shlex.join(sys.argv[1:])
    result = run_bench(
        ds,
        methods,
        split="dev",
        command=command,
        max_queries=args.max_queries,
        latency_sample=args.latency_sample,
    )
    if args.save:
        gr.save(args.save)
    # the same fitted model, candidates re-scored by query-item cosine (no retraining)
    from gsid.text.encoders import SentenceEncoder

    gr_cos = copy.copy(gr)
    gr_cos.rescore = "cosine"
    gr_cos.item_emb_ = (
        SentenceEncoder().encode_cached(ds.item_texts(), args.cache).astype(np.float16)
    )
    more = run_bench(
        ds,
        {f"{name} (cosine rescore)": gr_cos},
        split="dev",
        command=command,
        max_queries=args.max_queries,
        latency_sample=args.latency_sample,
    )
    result.methods.update(more.methods)
    if not args.no_hybrid:
        # RRF of the two already-fitted parts (no refit): mark the hybrid as indexed
        t0 = time.perf_counter()
        bm25 = BM25Retriever().index(ds)
        hybrid = HybridRetriever([gr, bm25], depth=100)
        hybrid.item_ids_ = ds.item_ids
        logging.info("hybrid parts ready in %.1fs", time.perf_counter() - t0)
        more = run_bench(
            ds,
            {f"{name}+bm25 (rrf)": hybrid},
            split="dev",
            command=command,
            max_queries=args.max_queries,
            latency_sample=args.latency_sample,
        )
        result.methods.update(more.methods)
    write_report(result, args.out, stem=args.stem)
    print(format_table(result))
    print(
        f"{name} IDs: {gr.ids_!r}; trie nodes {gr.trie_.n_nodes}; "
        f"dense table {gr.trie_.is_dense}; final train loss {gr.model_.history_[-1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
