"""Search speed side by side (A B A B ...): source trees, or saved retrievers (a lexical one
against dense, say), on the Home Depot dev queries: p50 / p99 of single-query searches
(k = 100) and queries per second in batches of 64, one torch thread, each round a fresh
process per (source, retriever) pair.

    git worktree add /tmp/before <commit>
    taskset -c 0 python benchmarks/lexical_speed_ab.py --model runs/lexical_hd/sft \\
        --src before=/tmp/before/src --src after=src --rounds 2
    taskset -c 0 python benchmarks/lexical_speed_ab.py --src main=src \\
        --model lexical=runs/lexical_hd_pt/dpo --model dense=runs/dense_hd --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PROBE = r"""
import json, sys, time, numpy as np, torch
torch.set_num_threads(1)
from gsid.data.importers import import_dataset
from gsid.retrieval.base import load_retriever
ds = import_dataset("homedepot", sys.argv[2])
lx = load_retriever(sys.argv[1])
dev = ds.split_queries("dev")["query"].tolist()
lx.search(dev[:5], k=100)
lat = []
for q in dev[300:400]:
    t = time.perf_counter(); lx.search([q], k=100); lat.append(time.perf_counter() - t)
batch = dev[:512]
t = time.perf_counter()
for s in range(0, len(batch), 64):
    lx.search(batch[s : s + 64], k=100)
qps = len(batch) / (time.perf_counter() - t)
print(json.dumps({"p50_ms": 1000 * float(np.median(lat)),
                  "p99_ms": 1000 * float(np.quantile(lat, 0.99)), "qps64": qps}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument(
        "--model", action="append", required=True, help="[LABEL=]PATH, a saved retriever"
    )
    ap.add_argument("--src", action="append", required=True, help="LABEL=PATH to a src dir")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_speed_ab")
    args = ap.parse_args()
    from _provenance import provenance, provenance_markdown, write_results

    srcs = dict(s.split("=", 1) for s in args.src)
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    # one configuration per (source, retriever); labels name what varies
    configs = {}
    for sl, sp in srcs.items():
        for ml, mp in models.items():
            label = " · ".join(x for x, n in ((sl, len(srcs)), (ml, len(models))) if n > 1) or sl
            configs[label] = (sp, mp)
    runs: dict[str, list[dict]] = {label: [] for label in configs}
    for _ in range(args.rounds):
        for label, (path, model) in configs.items():
            env = {**os.environ, "PYTHONPATH": str(Path(path).resolve()), "GSID_NO_PROGRESS": "1"}
            out = subprocess.run([sys.executable, "-c", PROBE, model, args.data], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {label: {m: statistics.median(r[m] for r in rs) for m in ("p50_ms", "p99_ms", "qps64")}
           for label, rs in runs.items()}  # fmt: skip
    first = next(iter(med))
    lines = ["| configuration | p50 ms | p99 ms | QPS@64 | QPS ratio to " + first + " |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for label, m in med.items():
        ratio = m["qps64"] / med[first]["qps64"]
        where = " · ".join(f"`{x}`" for x in configs[label])
        lines.append(f"| {label} ({where}) | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
                     f"{m['qps64']:.1f} | {ratio:.2f} |")  # fmt: skip
    print("\n".join(lines))
    command = "python benchmarks/lexical_speed_ab.py " + shlex.join(sys.argv[1:])
    prov = provenance(seed=None, command=command)
    md = ["# Search speed side by side — " + ", ".join(f"`{m}`" for m in models.values()), "",
          *provenance_markdown(prov), "", f"Medians of {args.rounds} alternated rounds, each a "
          "fresh process (100 single-query searches for p50/p99; 512 dev queries in batches "
          "of 64 for QPS), one torch thread.", "", *lines]  # fmt: skip
    write_results(Path(args.out) / f"{args.stem}.json", {**prov, "runs": runs, "median": med},
                  "\n".join(md))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
