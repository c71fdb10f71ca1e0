"""GSID generative retrieval (gsid-gr: the GSID model generates the query's codes under a prefix
trie) against dense retrieval (zero-shot MiniLM + faiss Flat) and BM25 on Home Depot `dev`:
recall per head/torso/tail, QPS at batch 64, single-query p50/p99 and index bytes per item, all
in one run (gsid.eval.bench.run_bench), every method on 1 torch thread (and 1 faiss thread).

Corpus: all 54,667 products; queries: all dev queries with expected items (relevance >= 2.5).
gsid-gr loads a trained GSID model (`--model-dir`, a train_gsid output or its model/ dir) and
indexes the catalogue with it (greedy codes of every item = its ID, no collision suffix).
Variants: "cosine" (the generated IDs' items re-ranked by the cosine of GSID "first"
representations), "prior" (the same index, items of one ID ordered by the training-log prior;
no item vectors), unless --no-concat "cosine, concat" (the concatenated representation), and
unless --no-static the same with a static query encoder distilled from the model's own
(query_encoder="static"): "static, cosine" (float16 item vectors), "static, cosine, <PQ>"
(product-quantised item vectors, one row per --pq spec), "static, prior" and, one row per
--prefix spec L:W:D[:M], "static, cosine, id_levels=L, beam W[, mass M]" (the beam runs over the
first L codes only; every item under the W generated prefixes is a candidate, the first D
re-ranked; with M, beams are kept only until they hold probability mass M, see beam_mass); every
prefix spec is also fused with BM25.
Writes benchmarks/results/<stem>.{json,md}; the md ends with gsid-gr / dense ratios.

    python benchmarks/gsid_gr_homedepot.py [--model-dir runs/gsid_homedepot_aligned2/model]  (written by gsid_homedepot.py --run-dir runs/gsid_homedepot_aligned2)
        [--beam-width 20] [--rescore-depth 1000] [--max-queries N] [--no-concat] [--no-static]
        [--pq RPQ32x8 ...] [--prefix 1:10:4000 2:100:8000 1:64:60000:0.75 1:128:60000:0.7]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"qps_ratio": 2.0, "p50_ms": 10.0, "bytes_ratio": 100.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--model-dir", default=str(ROOT / "runs" / "gsid_homedepot_aligned2" / "model"))
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="gsid_gr_homedepot")
    ap.add_argument("--beam-width", type=int, default=20)
    ap.add_argument("--rescore-depth", type=int, default=1000)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--latency-sample", type=int, default=200)
    ap.add_argument("--no-concat", action="store_true", help="skip the concat-cosine variant")
    ap.add_argument("--no-static", action="store_true", help="skip the static-query variants")
    ap.add_argument(
        "--pq", nargs="+", default=["RPQ32x8"], help="PQ specs of the compressed-vector variants"
    )
    ap.add_argument(
        "--prefix",
        nargs="*",
        default=["1:10:4000", "2:100:8000", "1:64:60000:0.75", "1:128:60000:0.7"],
        help="id_levels:beam_width:rescore_depth[:beam_mass] of the prefix-beam static variants",
    )
    args = ap.parse_args()
    prefix_specs = [parse_prefix(spec) for spec in args.prefix]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import faiss
    import torch

    # one thread for every method while timing: fair between methods and stable on a shared box
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    from gsid.data.importers import import_dataset
    from gsid.eval.bench import run_bench
    from gsid.eval.report import format_table, write_report
    from gsid.retrieval.bm25 import BM25Retriever
    from gsid.retrieval.dense import DenseRetriever
    from gsid.retrieval.fusion import HybridRetriever
    from gsid.retrieval.generative import GSIDGenerativeRetriever
    from gsid.retrieval.pq import PQVectors

    if not Path(args.data).is_dir():
        print(f"Home Depot data not found at {args.data}; pass --data", file=sys.stderr)
        return 2
    if not Path(args.model_dir).is_dir():
        print(f"no GSID model at {args.model_dir}; pass --model-dir", file=sys.stderr)
        return 2
    ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/gsid_gr_homedepot.py " + shlex.join(sys.argv[1:])
    load_before = os.getloadavg()

    def gsid_gr(representation: str, **kw) -> GSIDGenerativeRetriever:
        return GSIDGenerativeRetriever(
            model_dir=args.model_dir,
            beam_width=args.beam_width,
            rescore="cosine",
            representation=representation,
            rescore_depth=args.rescore_depth,
            num_threads=1,
            cache_dir=args.cache,
            **kw,
        )

    cos = gsid_gr("first")
    bench = dict(
        split="dev",
        command=command,
        max_queries=args.max_queries,
        latency_sample=args.latency_sample,
    )
    result = run_bench(
        ds,
        {
            "bm25": BM25Retriever,
            "dense": lambda: DenseRetriever(cache_dir=args.cache),
            "gsid-gr (cosine)": cos,
        },
        **bench,
    )
    # the same index ranked by the prior alone: no item vectors, so a smaller index
    prior = copy.copy(cos)
    prior.rescore, prior.item_reps_ = "prior", None
    more = {"gsid-gr (prior)": prior}
    if not args.no_concat:
        more["gsid-gr (cosine, concat)"] = gsid_gr("concat")
    result.methods.update(run_bench(ds, more, **bench).methods)
    static = {}
    if not args.no_static:
        # one distillation; the other static variants share it (and the trie)
        sc = gsid_gr("first", query_encoder="static")
        result.methods.update(run_bench(ds, {"gsid-gr (static, cosine)": sc}, **bench).methods)
        static = {"gsid-gr (static, cosine)": sc}
        first = sc.ids_.sorted_codes()[0][:, 0]  # residual PQ groups: first codes (trie order)
        for spec in args.pq:
            spq = copy.copy(sc)
            spq.vectors = spec
            spq.item_reps_ = PQVectors.fit(sc.item_reps_.astype("float32"), spec, first)
            static[f"gsid-gr (static, cosine, {spec})"] = spq
        sp = copy.copy(sc)
        sp.rescore, sp.item_reps_ = "prior", None
        static["gsid-gr (static, prior)"] = sp
        fused = {"gsid-gr (static, cosine)": sc}  # each also fused with BM25
        for levels, width, depth, mass in prefix_specs:
            spx = copy.copy(sc)
            spx.id_levels, spx.beam_width, spx.rescore_depth = levels, width, depth
            spx.beam_mass = mass
            spx.trie_ = spx._trie()
            beam = f"beam {width}" if mass is None else f"beam <= {width}, mass {mass:g}"
            name = f"gsid-gr (static, cosine, id_levels={levels}, {beam})"
            static[name] = spx
            fused[name] = spx
        # the hybrid users ask for: RRF of the static variant and BM25 (parts already indexed)
        bm25 = BM25Retriever().index(ds, show_progress=False)
        more = dict(list(static.items())[1:])
        for name, part in fused.items():
            hybrid = HybridRetriever([part, bm25], depth=100)
            hybrid.item_ids_ = sc.item_ids_
            more[f"{name} + BM25 (RRF)"] = hybrid
        result.methods.update(run_bench(ds, more, **bench).methods)
        result.settings["static_encoder"] = {
            "distill_s": result.methods["gsid-gr (static, cosine)"].systems.get("index_s"),
            "weights_bytes": sc.static_.bag.weight.numel() * 4,
            "final_cosine_loss": float(sum(sc.static_.history_[-20:]) / 20),
            "note": "index_s of 'static, cosine' includes the distillation",
        }
    result.settings["load_average_1_5_15"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    result.settings["gsid_gr"] = {
        "model_dir": _short(args.model_dir),
        "beam_width": args.beam_width,
        "rescore_depth": args.rescore_depth,
        "prefix_specs (id_levels, beam_width, rescore_depth, beam_mass)": prefix_specs,
        "n_ids": int(cos.trie_.is_end.sum()),
        "largest_id_items": int(cos.trie_.n_end.max()),
        "trie_nodes": cos.trie_.n_nodes,
        "scorer": type(cos.scorer).__name__,
        "torch_threads": 1,
        "faiss_threads": 1,
    }
    # run_bench keeps no retriever it built from a factory: dense again (embeddings cached)
    dense = DenseRetriever(cache_dir=args.cache).index(ds, show_progress=False)
    timed = {"dense": dense, "gsid-gr (prior)": prior, "gsid-gr (cosine)": cos, **static}
    result.settings["time_breakdown_ms"] = breakdown(
        timed, ds.split_queries("dev")["query"].tolist()
    )
    widths = (1, 5, 10, args.beam_width, 50)
    result.settings["id_recall"] = id_recall(cos, ds, widths)
    if static:
        result.settings["id_recall_static"] = id_recall(
            static["gsid-gr (static, cosine)"], ds, widths
        )
    ratios = ratio_rows(result)
    result.settings["gsid_gr_vs_dense"] = ratios
    _, md_path = write_report(result, args.out, stem=args.stem)
    md_path.write_text(md_path.read_text(encoding="utf-8") + ratio_markdown(result, ratios))
    print(format_table(result))
    print(ratio_markdown(result, ratios))
    return 0


def parse_prefix(spec: str) -> tuple[int, int, int, float | None]:
    """'L:W:D' or 'L:W:D:M' -> (id_levels, beam_width, rescore_depth, beam_mass or None)."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"--prefix {spec!r}: expected L:W:D or L:W:D:M")
    mass = float(parts[3]) if len(parts) == 4 else None
    return int(parts[0]), int(parts[1]), int(parts[2]), mass


def breakdown(retrievers: dict, queries: list[str], n_single: int = 200, n_batches: int = 10):
    """Paired timings: the methods take turns on every query / batch (so they share the load of
    a busy machine), each turn = query encoding alone (MiniLM, which dense and gsid-gr both run)
    then the full search. Returns median ms per call at batch 1 and 64."""
    import time

    import numpy as np
    import torch

    def encoder(name, r):
        if name == "dense":
            return r.encode_queries

        def encode(batch):
            with torch.inference_mode():
                return r.query_memory(batch)

        return encode

    encoders = {name: encoder(name, r) for name, r in retrievers.items()}
    out: dict[str, dict] = {name: {} for name in retrievers}
    for label, size, n in (("batch1", 1, n_single), ("batch64", 64, n_batches)):
        batches = [queries[i * size : (i + 1) * size] for i in range(n)]
        enc = {name: [] for name in retrievers}
        total = {name: [] for name in retrievers}
        for r in retrievers.values():
            r.search(batches[0], k=100)  # warm
        for b in batches:
            for name, r in retrievers.items():
                t0 = time.perf_counter()
                encoders[name](b)
                t1 = time.perf_counter()
                r.search(b, k=100)
                t2 = time.perf_counter()
                enc[name].append(t1 - t0)
                total[name].append(t2 - t1)
        for name in retrievers:
            e, t = float(np.median(enc[name]) * 1e3), float(np.median(total[name]) * 1e3)
            out[name][label] = {
                "search_ms": round(t, 2),
                "encode_ms": round(e, 2),
                "rest_ms": round(t - e, 2),
                "n_calls": n,
            }
    return out


def id_recall(r, ds, widths) -> dict[str, dict[str, float]]:
    """Where gsid-gr loses recall: share of a query's expected items whose ID (L codes) is among
    the top-W generated IDs (averaged over queries, like R@k), and the mean number of items under
    those IDs. Beam width = the largest W; smaller W read the same beams' top."""
    import numpy as np
    import torch

    from gsid.retrieval.beam import constrained_beam_search

    qs = ds.split_queries("dev")
    expected = ds.expected("dev")
    qs = qs[qs["query_id"].isin(expected)]
    texts, qids = qs["query"].tolist(), qs["query_id"].tolist()
    W = max(widths)
    fn = r.scorer
    nodes = []
    with torch.inference_mode():
        for s in range(0, len(texts), 64):
            mem, mask = r.query_memory(texts[s : s + 64])
            res = constrained_beam_search(
                lambda st, tok: fn.step(st, tok)[0], fn.start(mem, mask), r.trie_, len(mem), W
            )
            nodes.append(res.nodes)
    nodes = torch.cat(nodes)  # (Q, W)
    codes = r.trie_.node_codes(nodes.reshape(-1)).view(len(qids), W, -1).numpy()
    n_items = np.where(nodes >= 0, r.trie_.n_end[nodes.clamp(min=0)], 0)  # (Q, W)
    item_code = dict(zip(r.ids_.item_ids, map(tuple, r.ids_.codes.tolist()), strict=True))
    out = {}
    for w in sorted(set(widths)):
        hits = []
        for q, qid in enumerate(qids):
            gen = {tuple(c) for c in codes[q, :w].tolist()}
            hits.append(np.mean([item_code[i] in gen for i in expected[qid]]))
        out[f"W={w}"] = {
            "id_recall": float(np.mean(hits)),
            "mean_items_under_ids": float(n_items[:, :w].sum(1).mean()),
        }
    return out


def ratio_rows(result) -> dict[str, dict[str, float | None]]:
    dense = result.methods["dense"].systems
    paired = result.settings.get("time_breakdown_ms", {})
    out = {}
    for name, m in result.methods.items():
        if not name.startswith("gsid-gr") or m.error:
            continue
        s = m.systems
        out[name] = {
            "qps_ratio": _div(s.get("qps"), dense.get("qps")),
            "p50_ratio": _div(s.get("p50_ms"), dense.get("p50_ms")),
            "bytes_ratio": _div(dense.get("bytes_per_item"), s.get("bytes_per_item")),
            "p50_ms": s.get("p50_ms"),
        }
        if name in paired and "dense" in paired:
            a, d = paired[name], paired["dense"]
            out[name]["paired_qps_ratio"] = _div(
                d["batch64"]["search_ms"], a["batch64"]["search_ms"]
            )
            out[name]["paired_p50_ratio"] = _div(a["batch1"]["search_ms"], d["batch1"]["search_ms"])
            out[name]["paired_p50_ms"] = a["batch1"]["search_ms"]
    return out


def _short(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _pct(v: dict | None) -> str:
    return "–" if v is None else f"{100 * v['id_recall']:.2f}"  # noqa: RUF001 (en dash: missing value)


def _div(a, b):
    return None if a is None or not b else a / b


def ratio_markdown(result, ratios) -> str:
    load = result.settings["load_average_1_5_15"]
    g = result.settings["gsid_gr"]
    paired = result.settings.get("time_breakdown_ms", {})
    lines = [
        "",
        "## gsid-gr against dense",
        "",
        f"Targets (issue #5): QPS@64 >= {TARGETS['qps_ratio']:g}x dense; single-query p50 <= "
        f"{TARGETS['p50_ms']:g} ms; index >= {TARGETS['bytes_ratio']:g}x smaller than the "
        f"dense index (bytes/item). 'bench' = the tables above (methods timed one after "
        f"another); 'paired' = the methods taking turns on the same queries (see below), the "
        f"fairer comparison on a machine whose load changes during the run.",
        "",
        "| method | QPS@64 / dense (bench) | QPS@64 / dense (paired) | p50 ms (bench) | "
        "p50 ms (paired) | dense bytes / method bytes | QPS target | p50 target | "
        "bytes target |",
        "|:---|---:|---:|---:|---:|---:|:---:|:---:|:---:|",
    ]

    def fmt(x, d=2):
        return "–" if x is None else f"{x:,.{d}f}"  # noqa: RUF001 (en dash: missing value)

    def met(ok):
        return "–" if ok is None else ("met" if ok else "not met")  # noqa: RUF001 (en dash: n/a)

    for name, r in ratios.items():
        q, qp, b = r["qps_ratio"], r.get("paired_qps_ratio"), r["bytes_ratio"]
        p, pp = r["p50_ms"], r.get("paired_p50_ms")
        # both timings must pass where both exist (the hybrids have no paired timing)
        q_ok = None if q is None else min(q, qp or q) >= TARGETS["qps_ratio"]
        p_ok = None if p is None else max(p, pp or p) <= TARGETS["p50_ms"]
        lines.append(
            f"| {name} | {fmt(q)}x | {fmt(qp)}x | {fmt(p)} | {fmt(pp)} | {fmt(b, 1)}x | "
            f"{met(q_ok)} | {met(p_ok)} | "
            f"{met(None if b is None else b >= TARGETS['bytes_ratio'])} |"
        )
    bm = result.methods["bm25"].metrics
    lines += [
        "",
        "### Quality targets (issue #5): at least BM25's R@100, above BM25 on tail R@100",
        "",
        "| method | R@100 | BM25 R@100 | tail R@100 | BM25 tail R@100 | R@100 target | "
        "tail target |",
        "|:---|---:|---:|---:|---:|:---:|:---:|",
    ]
    for name in ratios:
        m = result.methods[name].metrics
        r, t = m["overall"]["R@100"], m["tail"]["R@100"]
        lines.append(
            f"| {name} | {100 * r:.2f} | {100 * bm['overall']['R@100']:.2f} | {100 * t:.2f} | "
            f"{100 * bm['tail']['R@100']:.2f} | {met(r >= bm['overall']['R@100'])} | "
            f"{met(t > bm['tail']['R@100'])} |"
        )
    lines += [
        "",
        f"gsid-gr setup: model `{g['model_dir']}`, beam width {g['beam_width']}, cosine "
        f"re-ranks the first {g['rescore_depth']} candidates; {g['n_ids']} distinct IDs "
        f"(the largest holds {g['largest_id_items']} items), trie of {g['trie_nodes']} nodes; "
        f"step scorer {g['scorer']}. All methods ran with 1 torch thread and 1 faiss thread; "
        f"every method encodes each query inside the timed search (MiniLM; the static "
        f"variants their distilled bag of tokens). The "
        f"machine is shared: load average (1/5/15 min) {load['before']} before and "
        f"{load['after']} after the run, so absolute times are inflated. gsid-gr (prior) "
        f"reuses the index of gsid-gr (cosine) (index s shown once); its bytes/item are the "
        f"trie only (items are stored in trie order).",
        "",
        "### Where the time goes (paired: median ms per search call)",
        "",
        "| method | batch | calls | search ms | query encoding ms | rest ms |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for name, row in paired.items():
        for label, b in row.items():
            lines.append(
                f"| {name} | {label.removeprefix('batch')} | {b['n_calls']} | "
                f"{b['search_ms']:.2f} | {b['encode_ms']:.2f} | {b['rest_ms']:.2f} |"
            )
    lines += [
        "",
        "Each turn times the query encoding alone, then the whole search on the same queries; "
        "rest = search - encoding: the faiss scan for dense; the beam search, item expansion "
        "and re-scoring for gsid-gr. Single-query calls: the first "
        f"{next(iter(paired.values()))['batch1']['n_calls'] if paired else 0} dev queries; "
        "batches: consecutive dev queries.",
        "",
        "### Where gsid-gr loses recall: ID recall of the beam (gsid-gr model, all dev queries)",
        "",
        "| top-W generated IDs | share of expected items whose ID is among them | "
        "mean items under those IDs | the same, static query encoder |",
        "|---:|---:|---:|---:|",
    ]
    static = result.settings.get("id_recall_static", {})
    for w, v in result.settings.get("id_recall", {}).items():
        st = static.get(w)
        lines.append(
            f"| {w.removeprefix('W=')} | {100 * v['id_recall']:.2f} | "
            f"{v['mean_items_under_ids']:,.1f} | "
            f"{_pct(st)} |"
        )
    lines += [
        "",
        "An item can only be found if its ID is generated; R@k below the ID recall is lost "
        "inside the IDs (items that share an ID are ordered by the prior or re-ranked by cosine).",
        "",
        "### R@1 per bucket",
        "",
        "| method | head | torso | tail |",
        "|:---|---:|---:|---:|",
    ]
    for name, m in result.methods.items():
        if m.error:
            continue
        cells = [m.metrics.get(b, {}).get("R@1") for b in ("head", "torso", "tail")]
        lines.append(
            f"| {name} | " + " | ".join(fmt(None if c is None else 100 * c) for c in cells) + " |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
