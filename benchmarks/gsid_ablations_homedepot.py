"""GSID ablations on Home Depot: one `gsid_homedepot.py` run per switched-off technique, same
encoder, budget and seed; then one table.

    python benchmarks/gsid_ablations_homedepot.py --encoder runs/hd_align/encoder/model \
        --levels 2 --epochs 0.5

Rows: the full method (CPU setup: no pre-training), then without the KL term, without
prefix-grouped negatives, without multi-query sampling, with gradient codebooks instead of EMA,
and with domain-adaptive pre-training added. Each run writes
benchmarks/results/<stem>_<name>.json (--stem, default gsid_ablation_homedepot); the table goes to
benchmarks/results/<stem>.{json,md}. Runs already written are reused (--force to rerun).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from _provenance import provenance, provenance_markdown, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_kl": ["kl_weight=0"],
    "no_prefix_batches": ["prefix_batches=false"],
    "no_multi_query": ["multi_query=false"],
    "gradient_codebooks": ["ema=false"],
    # the CPU setup runs without pre-training; this row adds it (200 mixed batches, the
    # encoder moves, so its features are recomputed instead of read from the cache)
    "with_pretraining": ["pretrain_batches=200"],
}


def _row(name: str, r: dict) -> str:
    ev = r["eval"]
    o = ev["q2i"]["overall"]
    f = ev.get("q2i_first", {}).get("overall", {})
    acc = ev["code_accuracy"]
    used = " / ".join(str(x["codes_used"]) for x in r["levels"])
    return (
        f"| {name} | {100 * o['R@10']:.2f} | {100 * o['MRR@100']:.2f} | "
        f"{100 * f.get('R@10', float('nan')):.2f} | {100 * acc['l1']:.2f} | "
        f"{100 * acc['l2']:.2f} | {used} | {r['n_distinct_full_codes']} | "
        f"{r['wall_s']['train_incl_features']:.0f} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--encoder", default=None, help="encoder directory (GSIDConfig.model_path)")
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--codebook-size", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=0.5)
    ap.add_argument(
        "--only",
        default=",".join(v for v in VARIANTS if v != "with_pretraining"),
        help=f"comma-separated variant names out of {','.join(VARIANTS)} (pre-training is not "
        f"in the default set: one mixed batch of 128 takes ~5 s on a CPU core, 17 min for 200)",
    )
    ap.add_argument("--force", action="store_true")
    ap.add_argument(
        "--stem", default="gsid_ablation_homedepot", help="results file stem (<stem>_<variant>)"
    )
    args = ap.parse_args()
    base = [
        sys.executable,
        str(ROOT / "benchmarks" / "gsid_homedepot.py"),
        "--levels",
        str(args.levels),
        "--codebook-size",
        str(args.codebook_size),
        "--epochs",
        str(args.epochs),
    ]
    if args.encoder:
        base += ["--encoder", args.encoder]
    rows, runs = [], {}
    for name in args.only.split(","):
        out = RESULTS / f"{args.stem}_{name}.json"
        if args.force or not out.is_file():
            cmd = [
                *base,
                "--out",
                str(out),
                "--run-dir",
                str(ROOT / "runs" / f"{args.stem}_{name}"),
                "--set",
                "memory_skip=true",
                "skip_gate=true",
                *VARIANTS[name],
            ]
            print("+", shlex.join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        runs[name] = json.loads(out.read_text(encoding="utf-8"))
        rows.append(_row(name, runs[name]))
    seeds = {r.get("config", {}).get("seed") for r in runs.values()}  # the runs' GSIDConfig seed
    result = {
        **provenance(seed=seeds.pop() if len(seeds) == 1 else None),
        "setup": {
            "levels": args.levels,
            "codebook_size": args.codebook_size,
            "epochs_per_level": args.epochs,
            "encoder": args.encoder,
            "set": ["memory_skip=true", "skip_gate=true"],
            "torch_threads_per_run": 1,
        },
        "variants": {name: VARIANTS[name] for name in runs},
        "runs": {name: f"{args.stem}_{name}.json" for name in runs},
    }
    md = [
        "# GSID ablations on Home Depot dev (2,000 queries, 54,667 items)",
        "",
        *provenance_markdown(result),
        f"- setup: {args.levels} steps x {args.codebook_size} codes, {args.epochs} epoch per step, "
        f"memory_skip with skip_gate, encoder `{args.encoder or 'packaged MiniLM'}` "
        "(frozen, cached), 1 torch thread per run",
        "",
        "| variant | R@10 (concat) | MRR@100 (concat) | R@10 (d_0) | l1 acc | l2 acc | "
        "codes used per step | distinct IDs | train s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    write_results(RESULTS / f"{args.stem}.json", result, "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
