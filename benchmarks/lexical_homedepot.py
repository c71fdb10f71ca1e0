"""Lexical generative retrieval (query -> multi-span, SFT then DPO) against the SEAL-style
baseline, BM25 and dense retrieval on Home Depot `dev`, in one run (gsid.eval.bench.run_bench),
every method on 1 torch thread.

Corpus: all 54,667 products; queries: the dev queries with expected items (grade >= 2.5).
Rows: lexical (SFT), lexical (SFT+DPO) (the same SFT model, then DPO), seal, bm25, dense,
lexical (SFT+DPO) + bm25 (RRF), and any saved retriever given with --saved (e.g. dense-ft,
trained once and saved). Also: invalid spans (generated spans of count 0) over all evaluated
queries, paired bootstraps (95% intervals) of DPO - SFT on R@10 and R@100 and of
lexical (SFT+DPO) - BM25 on the tail queries, index bytes per title token, and the training
time of each stage. gr / gsid-gr are quoted from their own results files
(not re-run here).

    taskset -c 1 python benchmarks/lexical_homedepot.py [--epochs 3] [--dpo-epochs 1]
        [--max-queries N] [--data synthetic:1000] [--stem lexical_homedepot]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def per_query_recall(result, method: str, expected: list[set], k: int) -> np.ndarray:
    from gsid.eval.metrics import hit_matrix, recall_per_query

    res = result.methods[method].results
    hits = hit_matrix(res.ids[:, :k], expected)
    return recall_per_query(hits, np.array([len(e) for e in expected]), k)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> dict:
    """Mean of b - a and its 95% percentile interval over query resamples."""
    rng = np.random.default_rng(seed)
    d = b - a
    means = d[rng.integers(0, len(d), (n, len(d)))].mean(1)
    return {"delta": float(d.mean()), "lo": float(np.quantile(means, 0.025)),
            "hi": float(np.quantile(means, 0.975)), "n_boot": n}  # fmt: skip


def main() -> int:  # noqa: C901 (one linear script)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_homedepot")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seal-epochs", type=int, default=2)
    ap.add_argument("--dpo-epochs", type=int, default=1)
    ap.add_argument("--seal-samples", type=int, default=3, help="SEAL n-grams per training pair")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--beam-width", type=int, default=10)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--latency-sample", type=int, default=100)
    ap.add_argument("--dpo-lr", type=float, default=None)
    ap.add_argument("--dpo-beta", type=float, default=None)
    ap.add_argument("--dpo-sft-weight", type=float, default=None)
    ap.add_argument("--dpo-rejected", type=int, default=None, help="rejected sequences a query")
    ap.add_argument("--dpo-chosen", default=None, help="target, policy or policy-only")
    ap.add_argument("--dpo-beam", type=int, default=None, help="beams per query when mining")
    ap.add_argument("--dpo-rounds", type=int, default=None, help="iterative DPO rounds")
    ap.add_argument("--dpo-retrieve-k", type=int, default=None, help="top-k a mined beam retrieves")
    ap.add_argument("--hybrid-c", type=float, default=None, help="RRF constant (default 10)")
    ap.add_argument(
        "--hybrid-bm25-weight", type=float, nargs="+", default=[1.0],
        help="BM25's RRF weight (lexical's is 1); one hybrid row per value",
    )  # fmt: skip
    ap.add_argument(
        "--save-dir",
        default=None,
        help="save the trained SFT and seal retrievers here; a later run with --reuse loads "
        "them (and their recorded training times) instead of training again",
    )
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument(
        "--model-path",
        default=None,
        help="start lexical and seal from this local T5 checkpoint (e.g. the GSID pre-training "
        "checkpoint benchmarks/lexical_pretrained_start.py writes) instead of from scratch",
    )
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument(
        "--saved", action="append", default=[], metavar="LABEL=PATH",
        help="also bench this saved retriever (e.g. dense-ft=runs/dense_ft_hd)",
    )  # fmt: skip
    ap.add_argument("--no-seal", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    torch.set_num_threads(1)
    from _provenance import write_bench_results

    from gsid.eval.bench import run_bench
    from gsid.eval.report import format_table
    from gsid.retrieval.bm25 import BM25Retriever
    from gsid.retrieval.fusion import HybridRetriever
    from gsid.retrieval.lexical import LexicalRetriever, SEALRetriever

    if args.data.startswith("synthetic:"):
        from gsid.data.synthetic import make_marketplace

        ds = make_marketplace(n_items=int(args.data.split(":")[1]), seed=0)
    else:
        from gsid.data.importers import import_dataset

        ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_homedepot.py " + shlex.join(sys.argv[1:])
    model = {"epochs": args.epochs, "dpo_epochs": args.dpo_epochs, "num_threads": 1,
             "batch_size": args.batch_size}  # fmt: skip
    if args.model_path:
        model["model_path"] = args.model_path
    bench = dict(split="dev", command=command, max_queries=args.max_queries,
                 latency_sample=args.latency_sample)  # fmt: skip
    from gsid.retrieval.base import load_retriever

    save = Path(args.save_dir) if args.save_dir else None
    times_path = save / "train_times.json" if save else None
    reuse = bool(args.reuse and save and (save / "sft").is_dir())
    times = json.loads(times_path.read_text()) if reuse and times_path.is_file() else {}
    t0 = time.perf_counter()
    if reuse:
        sft = load_retriever(save / "sft")
    else:
        sft = LexicalRetriever(dpo=False, beam_width=args.beam_width, model=model)
    bm25 = BM25Retriever()
    parts = {"bm25": bm25, "lexical (SFT)": sft}
    if not args.no_dense:
        from gsid.retrieval.dense import DenseRetriever

        parts["dense"] = DenseRetriever(cache_dir=args.cache)
    for label, path in (x.split("=", 1) for x in args.saved):
        parts[label] = load_retriever(path)
    result = run_bench(ds, parts, **bench)
    sft_s = time.perf_counter() - t0
    if not reuse:
        times["lexical (SFT) index_s"] = result.methods["lexical (SFT)"].systems.get("index_s")
        if save:
            sft.save(save / "sft")
    # DPO on a copy of the SFT model: the SFT row stays as it was measured
    t1 = time.perf_counter()
    dpo = copy.deepcopy(sft)
    dpo.dpo = True
    if args.dpo_rejected is not None:
        dpo.dpo_rejected = args.dpo_rejected
    if args.dpo_chosen is not None:
        dpo.dpo_chosen = args.dpo_chosen
    if args.dpo_beam is not None:
        dpo.dpo_beam = args.dpo_beam
    if args.dpo_rounds is not None:
        dpo.dpo_rounds = args.dpo_rounds
    if args.dpo_retrieve_k is not None:
        dpo.dpo_retrieve_k = args.dpo_retrieve_k
    cfg = dpo.model_.config
    for key, value in (("dpo_lr", args.dpo_lr), ("dpo_beta", args.dpo_beta),
                       ("dpo_sft_weight", args.dpo_sft_weight)):  # fmt: skip
        if value is not None:
            setattr(cfg, key, value)
    dpo.optimise_preferences(ds)
    dpo_s = time.perf_counter() - t1
    if save:
        dpo.save(save / "dpo")
    more = {"lexical (SFT+DPO)": dpo}
    hybrids = {}
    for weight in args.hybrid_bm25_weight:
        fusion = {"weights": [1.0, weight]} | ({"c": args.hybrid_c} if args.hybrid_c else {})
        hy = HybridRetriever(retrievers=[dpo, bm25], **fusion)
        hy.item_ids_ = ds.item_ids
        name = "lexical (SFT+DPO) + bm25" + (f" (bm25 weight {weight:g})" if weight != 1 else "")
        more[name] = hybrids[name] = hy
    if not args.no_seal:
        if reuse and (save / "seal").is_dir():
            more["seal"] = load_retriever(save / "seal")
        else:
            more["seal"] = SEALRetriever(beam_width=3 * args.beam_width,
                                         seal_samples=args.seal_samples,
                                         model={**model, "epochs": args.seal_epochs})  # fmt: skip
    result.methods.update(run_bench(ds, more, **bench).methods)
    if "seal" in more and "seal index_s" not in times:
        times["seal index_s"] = result.methods["seal"].systems.get("index_s")
        if save:
            more["seal"].save(save / "seal")
    if save:
        save.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps(times, default=float))
    # invalid spans over every evaluated query, paired bootstrap DPO - SFT
    qmap = dict(zip(ds.queries["query_id"], ds.queries["query"], strict=True))
    queries = [qmap[q] for q in result.query_ids]
    expected_map = ds.expected("dev")
    expected = [expected_map[q] for q in result.query_ids]
    invalid = {}
    for name, r in (("lexical (SFT+DPO)", dpo), ("seal", more.get("seal"))):
        if r is None:
            continue
        spans = r.generated_spans(queries)
        flat = [list(s) for row in spans for s in row]
        invalid[name] = {"spans": len(flat), "invalid": int((r.index_.count(flat) == 0).sum())}
    rec = {(m, k): per_query_recall(result, m, expected, k)
           for m in ("lexical (SFT)", "lexical (SFT+DPO)", "bm25") for k in (10, 100)}  # fmt: skip
    boot = {k: paired_bootstrap(rec["lexical (SFT)", k], rec["lexical (SFT+DPO)", k])
            for k in (10, 100)}  # fmt: skip
    # the tail target (lexical tail R@100 >= BM25's): the same paired interval on tail queries
    tail = (ds.buckets().reindex(result.query_ids) == "tail").to_numpy()
    tail_boot = {k: paired_bootstrap(rec["bm25", k][tail], rec["lexical (SFT+DPO)", k][tail])
                 | {"n_queries": int(tail.sum())}
                 for k in (10, 100)}  # fmt: skip
    extra = {
        "invalid_spans": invalid,
        "dpo_minus_sft": boot,
        "tail_lexical_minus_bm25": tail_boot,
        "bytes_per_title_token": dpo.index_bytes() / dpo.index_.n_tokens,
        "title_tokens": int(dpo.index_.n_tokens),
        "preference_pairs": int(getattr(dpo, "n_preference_pairs_", 0)),
        "train_s": {
            **times,
            "first_stage_incl_bm25_dense_s": sft_s,
            "dpo_mining_and_training_s": dpo_s,
            "reused_models": reuse,
        },
        "dpo_config": {
            k: getattr(cfg, k) for k in ("dpo_lr", "dpo_beta", "dpo_sft_weight", "dpo_epochs")
        }
        | {
            "dpo_rejected": dpo.dpo_rejected,
            "dpo_chosen": dpo.dpo_chosen,
            "dpo_beam": dpo.dpo_beam,
            "dpo_rounds": dpo.dpo_rounds,
            "dpo_retrieve_k": dpo.dpo_retrieve_k,
        },
        "hybrid": {name: {"c": hy.c, "weights": hy.weights} for name, hy in hybrids.items()},
        "model": model,
        "history": dpo.model_.history_,
    }
    table = format_table(result)
    print(table)
    print(json.dumps(extra, indent=1, default=float)[:3000])
    write_bench_results(args.out, args.stem, f"Lexical generative retrieval — {ds.name} / dev",
                        command, result, extra,
                        "Extra (invalid spans, DPO - SFT and tail lexical - BM25 bootstraps, bytes, training time)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
