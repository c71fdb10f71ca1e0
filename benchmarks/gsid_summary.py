"""Markdown tables from the GSID benchmark results (benchmarks/results/gsid_*.json).

python benchmarks/gsid_summary.py > benchmarks/results/gsid_summary.md
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def homedepot() -> list[str]:
    out = [
        "## Home Depot (train -> dev, 2,000 dev queries)",
        "",
        "| run | R@1 | R@10 | R@100 | MRR@100 | l1 acc | l2 acc | i2i R@10 | unique IDs | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(RESULTS.glob("gsid_homedepot*.json")):
        r = json.loads(f.read_text())
        ev = r["eval"]
        for key in ("q2i", "q2i_first", "q2i_last"):
            o = ev[key]["overall"]
            acc = ev["code_accuracy"] if key == "q2i" else {}
            i2i = ev["i2i"].get("R@10") if key == "q2i" else None
            out.append(
                f"| {f.stem} [{key}] | {_f(o['R@1'])} | {_f(o['R@10'])} | {_f(o['R@100'])} | "
                f"{_f(o['MRR@100'])} | {_f(acc.get('l1'))} | {_f(acc.get('l2'))} | {_f(i2i)} | "
                f"{r['n_distinct_full_codes'] if key == 'q2i' else ''} | "
                f"{r['wall_s']['train_incl_features'] if key == 'q2i' else ''} |"
            )
        b = r.get("baseline_frozen_minilm_q2i")
        if b:
            o = b["overall"]
            enc = "aligned encoder" if r["config"].get("align_encoder") else "frozen MiniLM"
            if r["config"].get("model_path"):
                enc = f"encoder `{r['config']['model_path']}`"
            out.append(
                f"| {enc} cosine (same run) | {_f(o['R@1'])} | {_f(o['R@10'])} | "
                f"{_f(o['R@100'])} | {_f(o['MRR@100'])} | | | | | |"
            )
        lv = "; ".join(
            f"step {x['level'] + 1}: {x['codes_used']} codes, top share "
            f"{x['top_code_share']:.3f}, {x['distinct_prefixes']} prefixes"
            for x in r["levels"]
        )
        out.append(f"| ↳ {f.stem} utilisation: {lv} | | | | | | | | | |")
    return out


def synthetic() -> list[str]:
    out = [
        "## Synthetic marketplace (2,000 items; AMI of code prefixes vs categories)",
        "",
        "| run | AMI cat1 vs c1 | AMI deepest vs c1..3 | k-means(32) AMI cat1 / deepest | "
        "R@10 | MRR@100 | MiniLM R@10 / MRR | l1 / l2 | unique IDs | n dev |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(RESULTS.glob("gsid_synthetic*.json")):
        r = json.loads(f.read_text())
        a = r["ami"]
        deep = [v for k, v in sorted(a.items()) if not k.startswith("cat1_")]
        km = list(r["baseline_kmeans_ami"].values())
        o = r["eval_dev"]["q2i"]["overall"]
        b = (r.get("baseline_frozen_minilm_q2i") or {}).get("overall", {})
        acc = r["eval_dev"]["code_accuracy"]
        out.append(
            f"| {f.stem} | {_f(a.get('cat1_vs_codes1'))} | {' / '.join(_f(v) for v in deep)} | "
            f"{' / '.join(_f(v) for v in km)} | {_f(o['R@10'])} | {_f(o['MRR@100'])} | "
            f"{_f(b.get('R@10'))} / {_f(b.get('MRR@100'))} | {_f(acc['l1'])} / {_f(acc['l2'])} | "
            f"{r['collisions']['before']['n_unique_ids']} | {o['n']} |"
        )
    return out


if __name__ == "__main__":
    print("\n".join(["# GSID benchmark summary", "", *homedepot(), "", *synthetic()]))
