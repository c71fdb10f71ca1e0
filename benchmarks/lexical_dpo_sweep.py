"""DPO settings for the lexical route, each against the same SFT model, on Home Depot `dev`.

Every setting starts from a copy of one saved SFT LexicalRetriever (e.g. the one
benchmarks/lexical_homedepot.py --save-dir wrote), mines its preference pairs (cached per
(dpo_chosen, dpo_rejected, dpo_beam, dpo_retrieve_k): the SFT model is the same) and runs DPO; all settings and
the SFT row are scored in one run_bench (quality only, timing off) with a paired bootstrap of
each setting minus SFT on R@10 and R@100.

    taskset -c 0 python benchmarks/lexical_dpo_sweep.py --sft runs/lexical_hd/sft \\
        --setting 'dpo_chosen=policy,dpo_lr=2e-4,dpo_beta=0.1' --setting 'dpo_chosen=target'

A setting is comma-separated OPTION=VALUE: dpo_chosen, dpo_rejected, dpo_beam, dpo_rounds,
dpo_retrieve_k (retriever options; rounds after the first mine with the model of the round before) and
dpo_lr, dpo_beta, dpo_sft_weight, dpo_epochs (SpanModelConfig). Besides all of dev, each
setting's bootstrap is also given on the random halves A and B of lexical_search_tuning.py
(seed 0), so that a setting chosen on A can be checked on B.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

RETRIEVER_KEYS = ("dpo_chosen", "dpo_rejected", "dpo_beam", "dpo_rounds", "dpo_retrieve_k")
MODEL_KEYS = ("dpo_lr", "dpo_beta", "dpo_sft_weight", "dpo_epochs")


def parse_setting(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in RETRIEVER_KEYS + MODEL_KEYS:
            raise SystemExit(f"unknown DPO option {key!r}; use {RETRIEVER_KEYS + MODEL_KEYS}")
        out[key] = value if key == "dpo_chosen" else float(value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--sft", required=True, help="a saved SFT LexicalRetriever")
    ap.add_argument("--setting", action="append", required=True)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_dpo_sweep")
    ap.add_argument("--max-queries", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    torch.set_num_threads(1)
    from _dev_halves import DevHalves
    from _provenance import write_bench_results
    from lexical_homedepot import paired_bootstrap, per_query_recall

    from gsid.data.importers import import_dataset
    from gsid.eval.bench import run_bench
    from gsid.eval.report import format_table
    from gsid.retrieval.base import load_retriever

    if args.data.startswith("synthetic:"):  # a quick check of the script itself
        from gsid.data.synthetic import make_marketplace

        ds = make_marketplace(n_items=int(args.data.split(":")[1]), seed=0)
    else:
        ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_dpo_sweep.py " + shlex.join(sys.argv[1:])
    sft = load_retriever(args.sft)
    methods, cache, info = {"SFT": sft}, {}, {}
    spans = sft._title_spans()  # the catalogue's candidate spans: one index, computed once
    for text in args.setting:
        setting = parse_setting(text)
        t0 = time.perf_counter()
        r = copy.deepcopy(sft)
        r.dpo = True
        for key in RETRIEVER_KEYS:
            if key in setting:
                setattr(r, key, setting[key] if key == "dpo_chosen" else int(setting[key]))
        for key in MODEL_KEYS:
            if key in setting:
                value = int(setting[key]) if key == "dpo_epochs" else setting[key]
                setattr(r.model_.config, key, value)
        mine = (r.dpo_chosen, r.dpo_rejected, r.dpo_beam, r.dpo_retrieve_k)
        if mine not in cache:
            cache[mine] = r.preference_pairs(ds, spans)
        src, chosen, rejected = cache[mine]
        r.model_.fit_preferences(src, chosen, rejected)
        for _ in range(1, r.dpo_rounds):  # iterative DPO: mine again with this model
            more = r.preference_pairs(ds, spans)
            r.model_.fit_preferences(*more)
            src = src + more[0]
        name = f"SFT+DPO {text}"
        methods[name] = r
        info[name] = {"pairs": len(src), "seconds": time.perf_counter() - t0,
                      "history": r.model_.history_[-r.model_.config.dpo_epochs:]}  # fmt: skip
        logging.getLogger("sweep").info(
            "%s: %d pairs, %.0f s", name, len(src), info[name]["seconds"]
        )
    result = run_bench(ds, methods, split="dev", timing=False, command=command,
                       max_queries=args.max_queries)  # fmt: skip
    expected_map = ds.expected("dev")
    expected = [expected_map[q] for q in result.query_ids]
    half = DevHalves(ds).of(result.query_ids)  # the halves of lexical_search_tuning.py
    for name in info:
        sft_r = {k: per_query_recall(result, "SFT", expected, k) for k in (10, 100)}
        dpo_r = {k: per_query_recall(result, name, expected, k) for k in (10, 100)}
        info[name]["minus_sft"] = {k: paired_bootstrap(sft_r[k], dpo_r[k]) for k in (10, 100)}
        for part, mask in (("A", half == 0), ("B", half == 1)):
            info[name][f"minus_sft_{part}"] = {
                k: paired_bootstrap(sft_r[k][mask], dpo_r[k][mask]) for k in (10, 100)
            }
    print(format_table(result))
    print(json.dumps(info, indent=1, default=float))
    write_bench_results(args.out, args.stem,
                        f"Lexical route: DPO settings against one SFT model — {ds.name} / dev",
                        command, result, info,
                        "Per setting (pairs, seconds, DPO epochs, bootstrap minus SFT)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
