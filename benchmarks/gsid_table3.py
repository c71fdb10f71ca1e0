"""The paper's Table 3 on Home Depot: l1/l2 (and l3/l4) code accuracy of the dev
(query, relevant item) pairs, GSID against hierarchical k-means codes of dense embeddings.

    python benchmarks/gsid_table3.py                                     # defaults below
    python benchmarks/gsid_table3.py --gsid-json benchmarks/results/gsid_homedepot.json \\
        benchmarks/results/gsid_homedepot_memory_skip.json --gsid-run runs/gsid_homedepot

Code accuracy l_n = share of (dev query, relevant item) pairs whose first n codes agree
(relevant: mean rating >= 2.5, `Dataset.expected("dev")`).

Baselines: hierarchical k-means (gsid.ids.hkmeans, DSI style, default 4 levels x 128 like GSID)
of the item embeddings of (a) the zero-shot packaged MiniLM and (b) MiniLM fine-tuned on the
train pairs (--finetuned, a sentence-transformers directory), both with max_seq_length 64 and
read through the shared embedding cache. A query gets k-means codes the way the paper assigns
them: it descends the items' tree (nearest level-1 centroid, then the nearest centroid among
that cluster's children, ...; in a leaf of position codes it takes the nearest item's position),
see HierarchicalKMeans.assign. IDs of the tree are variable-length (-1 padded); a query that
reaches the same leaf as an item ends at the same depth, so for n beyond an item's length l_n
counts the pairs that agree on the whole ID.

GSID rows: read from GSID result JSONs (--gsid-json, eval.code_accuracy, as written by
benchmarks/gsid_homedepot.py: l1/l2) and, optionally, recomputed for l1..lL from saved GSID run
directories (--gsid-run DIR with DIR/model): greedy codes of items and dev queries, as
gsid.models.assign.evaluate_gsid computes them.

Writes benchmarks/results/gsid_table3.{json,md} (command, machine, date).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _provenance import provenance, provenance_markdown, write_results

from gsid.eval.metrics import code_accuracy
from gsid.ids.hkmeans import HierarchicalKMeans
from gsid.text.encoders import SentenceEncoder

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("gsid_table3")

PAPER = {  # the paper's Table 3 (not measured here)
    "GSID (paper)": {"l1": 0.8948, "l2": 0.7019},
    "hierarchical k-means (paper)": {"l1": 0.4750, "l2": 0.2031},
}


def dev_pairs(ds) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """Dev query texts and ids (those with a relevant item, in the order gsid_homedepot.py
    encodes them, so the embedding cache is shared) and (query row, item row) pairs."""
    expected = ds.expected("dev")
    qs = ds.split_queries("dev")
    qs = qs[qs["query_id"].isin(expected)]
    qids = qs["query_id"].tolist()
    row_of = {iid: n for n, iid in enumerate(ds.item_ids)}
    pairs = [(a, row_of[i]) for a, q in enumerate(qids) for i in sorted(expected[q])]
    return qs["query"].tolist(), qids, pairs


def prefix_stats(codes: np.ndarray) -> dict[str, Any]:
    """How coarse the item codes are: distinct prefixes per length, and the chance that two
    random items share their first n codes (sum of squared prefix shares). Code accuracy is
    easier to reach with coarse codes, so it is read together with these."""
    out: dict[str, Any] = {"distinct_prefixes": [], "chance_agreement": {}}
    for n in range(1, codes.shape[1] + 1):
        _, counts = np.unique(codes[:, :n], axis=0, return_counts=True)
        out["distinct_prefixes"].append(len(counts))
        out["chance_agreement"][f"l{n}"] = float(((counts / counts.sum()) ** 2).sum())
    return out


def dense_recall(ds, X: np.ndarray, Q: np.ndarray, qids: list[str]) -> dict:
    """Context only: cosine retrieval of the same embeddings (exact top-100)."""
    from gsid.eval.metrics import evaluate
    from gsid.models.assign import pad_ranking, top_k

    rows, _ = top_k(Q, X, 100)
    res = evaluate(pad_ranking(ds.item_ids[rows], 100), qids, ds.expected("dev"), None, (10, 100))
    return res["overall"]


def kmeans_row(
    name: str, encoder: str, ds, qtexts, qids, pairs, args: argparse.Namespace
) -> dict[str, Any]:
    enc = SentenceEncoder(encoder, max_seq_length=args.max_seq_length)
    t0 = time.perf_counter()
    X = enc.encode_cached(ds.item_texts(), args.cache, show_progress=False)
    Q = enc.encode_cached(qtexts, args.cache, show_progress=False)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    hk = HierarchicalKMeans(
        levels=args.levels, codebook_size=args.codebook_size, niter=args.niter, seed=args.seed
    )
    icodes, ilen = hk.fit_codes(X, show_progress=False)
    qcodes, _ = hk.assign(Q)
    t_fit = time.perf_counter() - t0
    levels = range(1, args.levels + 1)
    acc = code_accuracy(qcodes, icodes, pairs, levels)
    i = np.asarray([p[1] for p in pairs])
    q = np.asarray([p[0] for p in pairs])
    row = {
        "method": name,
        "encoder": encoder,
        "code_accuracy": acc,
        "exact_id_match": float((qcodes[q] == icodes[i]).all(1).mean()),
        "item_id_length": {
            "mean": float(ilen.mean()),
            "histogram": dict(
                zip(*(u.tolist() for u in np.unique(ilen, return_counts=True)), strict=True)
            ),
        },
        "pairs_item_length_below": {
            f"l{n}": float((ilen[i] < n).mean()) for n in levels
        },  # pairs where l_n compares the whole (shorter) ID
        "item_codes": prefix_stats(icodes),
        "n_kmeans_runs": hk.n_kmeans_runs_,
        "dense_q2i": dense_recall(ds, X, Q, qids),
        "seconds": {"embed": round(t_embed, 1), "hkmeans_fit_assign": round(t_fit, 1)},
    }
    logger.info("%s: %s", name, acc)
    return row


def gsid_json_row(path: str) -> dict[str, Any]:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    cfg = d.get("config", {})
    ev = d.get("eval", {})
    return {
        "method": f"GSID ({Path(path).stem})",
        "source": path,
        "code_accuracy": ev.get("code_accuracy"),
        "n_queries": ev.get("n_queries"),
        "setup": {
            k: cfg.get(k)
            for k in (
                "n_levels",
                "codebook_size",
                "memory",
                "freeze_encoder",
                "memory_skip",
                "model_path",
                "align_encoder",
                "epochs_per_level",
                "decoder_layers",
            )
        },
        "dense_q2i_of_its_encoder": (d.get("baseline_frozen_minilm_q2i") or {}).get("overall"),
        "item_codes": {
            "distinct_prefixes": [lv.get("distinct_prefixes") for lv in d.get("levels", [])]
        },
    }


def gsid_run_row(run_dir: str, ds, qtexts, pairs, args: argparse.Namespace) -> dict[str, Any]:
    """l1..lL of a saved GSID model: greedy codes of the items and the dev queries."""
    from gsid.models.assign import encode
    from gsid.models.features import pooled_features
    from gsid.models.model import GSIDModel

    model = GSIDModel.load(Path(run_dir) / "model", device="cpu")
    cfg = model.config
    aligned = Path(run_dir) / "aligned-encoder" / "model"
    if cfg.cached_features:
        if aligned.is_dir():  # step 0 saved its encoder there: read features through the cache
            model.encoder_source_ = str(aligned)
        item_x = pooled_features(model, ds.item_texts(), args.cache).numpy()
        query_x = pooled_features(model, list(qtexts), args.cache).numpy()
    else:
        item_x = query_x = None
    icodes, _ = encode(model, ds.item_texts(), item_x)
    qcodes, _ = encode(model, list(qtexts), query_x)
    levels = range(1, cfg.n_levels + 1)
    acc = code_accuracy(qcodes, icodes, pairs, levels)
    logger.info("GSID run %s: %s", run_dir, acc)
    return {
        "method": f"GSID (run {Path(run_dir).name})",
        "source": run_dir,
        "code_accuracy": acc,
        "setup": {
            k: cfg.to_dict().get(k)
            for k in ("n_levels", "codebook_size", "memory_skip", "model_path", "align_encoder")
        },
        "item_codes": prefix_stats(icodes),
        "features_from": str(aligned) if aligned.is_dir() else (cfg.model_path or "minilm"),
    }


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def to_markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    L = s["levels"]
    lines = [
        "# Table 3: code accuracy of dev (query, relevant item) pairs, Home Depot",
        "",
        *provenance_markdown(res["meta"]),
        f"- {res['n_queries']} dev queries, {res['n_pairs']} (query, relevant item) pairs "
        "(relevance >= 2.5); l_n = share of pairs whose first n codes agree, in %.",
        f"- hierarchical k-means: {L} levels x {s['codebook_size']} (faiss, niter {s['niter']}, "
        f"seed {s['seed']}); queries descend the items' tree (nearest centroid per level, "
        "nearest item's position in a leaf). Embeddings: MiniLM (all-MiniLM-L6-v2) zero-shot "
        f"and fine-tuned ({s['finetuned']}), max_seq_length {s['max_seq_length']}.",
        "",
        "| codes | " + " | ".join(f"l{n}" for n in range(1, L + 1)) + " | dense R@10 / R@100 |",
        "|---|" + "---|" * (L + 1),
    ]
    for r in res["rows"]:
        acc = r.get("code_accuracy") or {}
        dq = r.get("dense_q2i") or r.get("dense_q2i_of_its_encoder") or {}
        dense = f"{dq['R@10']:.3f} / {dq['R@100']:.3f}" if "R@10" in dq else ""
        lines.append(
            f"| {r['method']} | "
            + " | ".join(pct(acc.get(f"l{n}")) for n in range(1, L + 1))
            + f" | {dense} |"
        )
    for name, acc in PAPER.items():
        lines.append(
            f"| {name} | " + " | ".join(pct(acc.get(f"l{n}")) for n in range(1, L + 1)) + " | |"
        )
    lines += [
        "",
        "Dense R@10 / R@100: cosine retrieval with the embeddings the codes were built from "
        "(for GSID rows: the frozen encoder of that run), for context.",
        "",
        "How coarse each row's item codes are (code accuracy is easier with coarse codes): "
        "distinct item prefixes of length 1..L, and the chance that two random items share "
        "their first n codes, in %.",
        "",
        "| codes | distinct prefixes | chance "
        + " / ".join(f"l{n}" for n in range(1, L + 1))
        + " |",
        "|---|---|---|",
    ]
    for r in res["rows"]:
        ic = r.get("item_codes") or {}
        ch = ic.get("chance_agreement") or {}
        lines.append(
            f"| {r['method']} | {ic.get('distinct_prefixes', '-')} | "
            + (
                " / ".join(pct(ch.get(f"l{n}")) for n in range(1, L + 1))
                if ch
                else "- (prefixes as logged at the end of each training step)"
            )
            + " |"
        )
    lines.append("")
    for r in res["rows"]:
        if "item_id_length" in r:
            lines.append(
                f"- {r['method']}: mean item ID length {r['item_id_length']['mean']:.2f} "
                f"(histogram {r['item_id_length']['histogram']}); share of pairs whose item ID "
                f"is shorter than n: "
                + ", ".join(f"{k} {v:.3f}" for k, v in r["pairs_item_length_below"].items())
                + f"; query reaches the item's exact ID: {pct(r['exact_id_match'])}%"
            )
        elif "setup" in r:
            lines.append(f"- {r['method']}: {r['source']}; setup {json.dumps(r['setup'])}")
    return "\n".join(lines) + "\n"


def wait_for(path: Path, minutes: float) -> None:
    t_end = time.time() + 60 * minutes
    while not path.exists():
        if time.time() > t_end:
            raise SystemExit(
                f"{path} did not appear within {minutes} min: pass --finetuned DIR of a trained "
                f"encoder or --no-finetuned"
            )
        logger.info("waiting for %s", path)
        time.sleep(60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="/work/shared/data/homedepot")
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--codebook-size", type=int, default=128)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument(
        "--finetuned",
        default=str(ROOT / "runs" / "hd_align" / "encoder" / "model"),
        help="fine-tuned sentence-transformers directory",
    )
    ap.add_argument("--no-finetuned", action="store_true", help="skip the fine-tuned baseline")
    ap.add_argument(
        "--wait-minutes",
        type=float,
        default=0,
        help="wait (polling every 60 s) for finetune.json next to --finetuned",
    )
    ap.add_argument(
        "--gsid-json",
        nargs="*",
        default=[str(ROOT / "benchmarks" / "results" / "gsid_homedepot.json")],
        help="GSID result JSONs (benchmarks/gsid_homedepot.py output)",
    )
    ap.add_argument("--gsid-run", nargs="*", default=[], help="GSID run dirs (with model/)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="gsid_table3", help="output file stem")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    from gsid.data.importers import import_dataset

    if not Path(args.data).is_dir():
        logger.error("%s not found; pass --data", args.data)
        return 2
    ds = import_dataset("homedepot", args.data)
    qtexts, qids, pairs = dev_pairs(ds)
    rows = []
    for p in args.gsid_json:
        rows.append(gsid_json_row(p))
    for run in args.gsid_run:
        rows.append(gsid_run_row(run, ds, qtexts, pairs, args))
    rows.append(
        kmeans_row("hier. k-means, zero-shot MiniLM", "minilm", ds, qtexts, qids, pairs, args)
    )
    if not args.no_finetuned:
        if args.wait_minutes:
            wait_for(Path(args.finetuned).parent / "finetune.json", args.wait_minutes)
        rows.append(
            kmeans_row(
                "hier. k-means, fine-tuned MiniLM", args.finetuned, ds, qtexts, qids, pairs, args
            )
        )
    res = {
        "meta": provenance(seed=args.seed),
        "settings": {
            k: getattr(args, k)
            for k in ("levels", "codebook_size", "niter", "seed", "max_seq_length", "finetuned")
        },
        "n_queries": len(qids),
        "n_pairs": len(pairs),
        "rows": rows,
        "paper": PAPER,
    }
    if not args.no_finetuned:
        ft = Path(args.finetuned).parent / "finetune.json"
        if ft.is_file():
            res["finetune_info"] = json.loads(ft.read_text(encoding="utf-8"))
    out = Path(args.out)
    write_results(out / f"{args.name}.json", res, to_markdown(res))
    logger.info("wrote %s/%s.{json,md}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
