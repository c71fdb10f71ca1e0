"""Where the lexical route loses R@100 on Home Depot `dev`: candidate pool or ranking?

For every dev query with expected items, a saved LexicalRetriever's beams (one width per row)
give its distinct spans. Per query:
  * spans per beam, tokens per span, distinct spans;
  * pool: the items holding a generated span of positive SEAL weight (the items the scoring
    can rank), its size and the share of the expected items in it;
  * R@100 of the ranking as searched (depth-limited SEAL scoring; equal scores keep catalogue
    order), and of the full SEAL scores of the whole pool with the items tied with the 100th
    score ordered for the expected items (best case) or against them (worst case);
  * two tie-breaks of the full scores: shorter titles first, and the model's own first-step
    distribution over span-start tokens (sum over an item's distinct title tokens of
    max(0, log P(t | q) - log P(t)));
  * of the expected items found in the searched top 100, and of those in the pool but ranked
    lower, the share whose title holds the query's top-weight span (pooled over queries).
Means over all dev, each bucket and the random halves A / B (benchmarks/_dev_halves.py).

    taskset -c 1 python benchmarks/lexical_tail_diagnosis.py --lexical runs/lexical_hd_pt/dpo \
        [--beam-widths 10,20,40]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
COLS = ("R@100 searched", "R@100 ties for", "R@100 ties against", "R@100 shorter title first",
        "R@100 first-step tie-break", "expected in pool", "pool size", "distinct spans",
        "spans per beam", "tokens per span")  # fmt: skip
# pooled shares: (numerator count, denominator count) per query
SHARES = {"found items holding the top-weight span": ("found top", "found"),
          "missed pool items holding the top-weight span": ("missed top", "missed")}  # fmt: skip


def segment_lengths(index) -> np.ndarray:
    """(segments,) tokens of each segment of a span index, its closing separator included."""
    return np.diff(np.append(index.starts, len(index.text)))


def first_step_logodds(lx, queries: list[str]):
    """(Q, V) max(0, log P(t | q) - log P(t)) of the model's first decoding step over the
    tokens a span may start with, P(t) the share of items whose title holds t; and the (items,
    V) sparse incidence of the items' distinct title tokens."""
    import scipy.sparse as sp
    import torch

    from gsid.retrieval.lexical.span_beam import start_tokens

    m, idx = lx.model_, lx.index_
    V = m.vocab_size
    ok = np.zeros(V, bool)
    s = start_tokens(idx, m.continuation_mask(), m.punctuation_mask())
    ok[: len(s)] = s
    rows = np.repeat(np.arange(idx.n_items), segment_lengths(idx))
    toks = idx.text.astype(np.int64)
    keep = toks < V  # not the title separators
    inc = sp.csr_matrix((np.ones(int(keep.sum())), (lx.row_item_[rows[keep]], toks[keep])),
                        shape=(len(lx.item_ids_), V))  # fmt: skip
    inc.data[:] = 1.0
    df = np.asarray(inc.sum(0)).ravel()
    prior = np.log(np.maximum(df, 1) / len(lx.item_ids_))
    out = []
    with torch.no_grad():
        for b in range(0, len(queries), 64):
            enc, mask = m.encode(queries[b : b + 64])
            lp = m.step(m.start(enc, mask), torch.zeros(len(mask), dtype=torch.long)).numpy()
            lp[:, ~ok] = -np.inf
            lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
            out.append(np.where(ok, np.maximum(0.0, lp - prior), 0.0))
    return np.concatenate(out), inc


def diagnose(lx, halves, width: int, lift, incidence) -> dict[str, np.ndarray]:
    from gsid.retrieval.lexical.scoring import seal_rank, span_weights
    from gsid.retrieval.lexical.span_beam import distinct_spans

    idx = lx.index_
    title_len = np.bincount(lx.row_item_, segment_lengths(idx) - 1)
    pos = {s: i for i, s in enumerate(lx.item_ids_)}
    beams = lx._generate(halves.queries, width, show_progress=False)
    counts = [c for pair in SHARES.values() for c in pair]
    out = {c: np.zeros(len(beams)) for c in (*COLS, *counts)}
    for q, (qid, bs) in enumerate(zip(halves.qids, beams, strict=True)):
        exp = np.array(sorted(pos[i] for i in halves.expected[qid]))
        spans, logp, ivs = distinct_spans(bs)
        if not spans:
            continue
        out["spans per beam"][q] = np.mean([len(b.spans) for b in bs])
        out["tokens per span"][q] = np.mean([len(s) for b in bs for s in b.spans])
        out["distinct spans"][q] = len(spans)
        searched = lx._rank_beams(bs, 100)[0]
        out["R@100 searched"][q] = np.isin(exp, searched).mean()
        # the full SEAL scores of every item holding a positive-weight span
        items, sc = seal_rank(idx, spans, logp, 10**7, lx.row_item_, lx.alpha, lx.coverage,
                              10**7, 10**12, ivs)  # fmt: skip
        out["pool size"][q] = len(items)
        out["expected in pool"][q] = np.isin(exp, items).mean()
        top = int(np.argmax(span_weights(idx, ivs[1] - ivs[0], logp)))
        holders = lx.row_item_[idx.locate(interval=(int(ivs[0][top]), int(ivs[1][top])))[0]]
        found = exp[np.isin(exp, searched)]
        missed = exp[np.isin(exp, items) & ~np.isin(exp, searched)]
        for name, group in (("found", found), ("missed", missed)):
            out[name][q] = len(group)
            out[f"{name} top"][q] = np.isin(group, holders).sum()
        is_exp = np.isin(items, exp)
        if len(sc) > 100:
            cut = np.sort(sc)[::-1][99]
            above, tied = sc > cut, sc == cut
            free = 100 - int(above.sum())
            n_rel = int((tied & is_exp).sum())
            n_other = int((tied & ~is_exp).sum())
            out["R@100 ties for"][q] = ((above & is_exp).sum() + min(n_rel, free)) / len(exp)
            out["R@100 ties against"][q] = ((above & is_exp).sum() + max(0, free - n_other)) / len(
                exp
            )
        else:
            for c in ("R@100 ties for", "R@100 ties against"):
                out[c][q] = is_exp.sum() / len(exp)
        for col, key in (("R@100 shorter title first", title_len[items]),
                         ("R@100 first-step tie-break", -(incidence[items] @ lift[q]))):  # fmt: skip
            order = np.lexsort((key, -sc))[:100]
            out[col][q] = is_exp[order].sum() / len(exp)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--lexical", required=True, help="a saved LexicalRetriever")
    ap.add_argument("--beam-widths", default="10,20,40")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_tail_diagnosis")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from _dev_halves import DevHalves
    from _provenance import provenance, provenance_markdown, write_results

    from gsid.data.importers import import_dataset
    from gsid.retrieval.base import load_retriever

    ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_tail_diagnosis.py " + shlex.join(sys.argv[1:])
    halves = DevHalves(ds)
    lx = load_retriever(args.lexical)
    lift, incidence = first_step_logodds(lx, halves.queries)
    bucket = np.array([halves.buckets.get(q) for q in halves.qids])
    groups = {"all": bucket != "", "head": bucket == "head", "torso": bucket == "torso",
              "tail": bucket == "tail", "A": halves.half == 0, "B": halves.half == 1}  # fmt: skip
    rows = {}
    for width in map(int, args.beam_widths.split(",")):
        per_query = diagnose(lx, halves, width, lift, incidence)
        rows[f"beam {width}"] = {
            c: {g: float(per_query[c][m].mean()) * (1 if c in COLS[6:] else 100)
                for g, m in groups.items()}
            for c in COLS
        } | {
            c: {g: 100 * float(per_query[a][m].sum() / max(per_query[b][m].sum(), 1))
                for g, m in groups.items()}
            for c, (a, b) in SHARES.items()
        }  # fmt: skip
    md = [f"# Lexical route: where R@100 is lost — {ds.name} / dev", "",
          *provenance_markdown(provenance(seed=0, command=command)), "",
          f"Lexical model: `{args.lexical}`; {len(halves.qids)} dev queries with expected items. "
          "Per beam width: percent figures, then means per query. Columns: all dev, head, "
          "torso, tail, half A, half B.", ""]  # fmt: skip
    for name, r in rows.items():
        md += [f"## {name}", "", "| figure | all | head | torso | tail | A | B |",
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        md += [f"| {c} | " + " | ".join(f"{r[c][g]:.2f}" for g in groups) + " |"
               for c in (*COLS, *SHARES)]  # fmt: skip
        md.append("")
    print("\n".join(md))
    out = Path(args.out) / f"{args.stem}.json"
    prov = provenance(seed=0, command=command)
    write_results(out, {**prov, "rows": rows}, "\n".join(md), default=float)
    print(json.dumps({"wrote": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
