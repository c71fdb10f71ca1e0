"""Does the lexical route gain from starting at GSID's domain-adaptive pre-training checkpoint?

SFT runs of the same span model (a T5 of 2 + 2 layers, d_model 128, over the same 4,096-piece
catalogue tokenizer), on Home Depot `dev` in one `run_bench`, one torch thread each:
  * scratch: LexicalRetriever's own T5 from scratch (reused from --scratch when given, e.g. the
    SFT model that benchmarks/lexical_homedepot.py --save-dir wrote);
  * optionally scratch trained for --scratch-epochs (a control with about the pre-training's
    extra compute);
  * pre-trained: a fresh span model runs GSID's pre-training (SpanModel.pretrain:
    `gsid.models.pretrain`'s query generation, item cloze and suffix completion on the
    catalogue and the train queries) for --pretrain-batches; its T5 and tokenizer are written
    as a local checkpoint (--work), and LexicalRetriever trains from it
    (model={"model_path": checkpoint}) with the same SFT budget.
Reported: the bench table, the paired bootstrap (pre-trained - scratch) of R@10 and R@100, and
the pre-training time.

    taskset -c 1 python benchmarks/lexical_pretrained_start.py --scratch runs/lexical_hd/sft \
        [--scratch-epochs 7] [--pretrained runs/lexical_hd_pt/sft]
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def pretrained_checkpoint(ds, out: Path, batches: int, lr: float) -> float:
    """GSID pre-training of a fresh span model (SpanModel.pretrain, the library's path) and its
    T5 + tokenizer saved to `out` as a local checkpoint; returns the seconds it took."""
    from gsid.models.lexical.span_model import SpanModel, SpanModelConfig

    t0 = time.perf_counter()
    cfg = SpanModelConfig(pretrain_batches=batches, pretrain_lr=lr, num_threads=1)
    # the texts LexicalRetriever trains its tokenizer on: titles + train queries
    texts = ds.items["title"].astype(str).tolist()
    texts += ds.training_pairs("train")["query"].drop_duplicates().tolist()
    model = SpanModel(cfg).prepare(texts)
    model.pretrain(ds)
    model.net_.save_pretrained(str(out))
    model.tokenizer_.save_pretrained(str(out))
    seconds = time.perf_counter() - t0
    (out / "pretrain_log.json").write_text(
        json.dumps([h for h in model.history_ if h["stage"] == "pretrain"])
    )
    (out / "pretrain_seconds.json").write_text(json.dumps(seconds))
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "homedepot"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default="lexical_pretrained_start")
    ap.add_argument("--work", default=str(ROOT / "runs" / "lexical_pretrained"))
    ap.add_argument("--scratch", default=None, help="a saved scratch SFT LexicalRetriever")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--scratch-epochs",
        type=int,
        default=0,
        help="also train a scratch model this many epochs (a compute-matched control)",
    )
    ap.add_argument(
        "--pretrained",
        default=None,
        help="a saved LexicalRetriever trained from the checkpoint (else trained here)",
    )
    ap.add_argument("--pretrain-batches", type=int, default=3000)
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--max-queries", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch

    torch.set_num_threads(1)
    from _provenance import write_bench_results
    from lexical_homedepot import paired_bootstrap, per_query_recall

    from gsid.data.importers import import_dataset
    from gsid.eval.bench import run_bench
    from gsid.eval.report import format_table
    from gsid.retrieval.base import load_retriever
    from gsid.retrieval.lexical import LexicalRetriever

    if args.data.startswith("synthetic:"):  # a quick check of the script itself
        from gsid.data.synthetic import make_marketplace

        ds = make_marketplace(n_items=int(args.data.split(":")[1]), seed=0)
    else:
        ds = import_dataset("homedepot", args.data)
    command = "python benchmarks/lexical_pretrained_start.py " + shlex.join(sys.argv[1:])
    work = Path(args.work)
    ckpt = work / "gsid_pretrained_t5"
    work.mkdir(parents=True, exist_ok=True)
    if not (ckpt / "config.json").is_file():
        pretrained_checkpoint(ds, ckpt, args.pretrain_batches, args.pretrain_lr)
    pre_s = json.loads((ckpt / "pretrain_seconds.json").read_text())  # when it was trained
    model = {"epochs": args.epochs, "num_threads": 1, "batch_size": 64}
    pre_model = {**model, "model_path": str(ckpt)}
    e = args.epochs
    methods = {
        f"lexical (SFT {e} epochs, scratch)": (
            load_retriever(args.scratch)
            if args.scratch
            else LexicalRetriever(dpo=False, model=model)
        ),
    }
    if args.scratch_epochs:  # the compute-matched control: scratch, trained longer
        methods[f"lexical (SFT {args.scratch_epochs} epochs, scratch)"] = LexicalRetriever(
            dpo=False, model={**model, "epochs": args.scratch_epochs}
        )
    # a factory: loaded when its turn comes (the saved model may be written meanwhile)
    methods[f"lexical (SFT {e} epochs, from GSID pre-training)"] = (
        (lambda: load_retriever(args.pretrained))
        if args.pretrained
        else LexicalRetriever(dpo=False, model=pre_model)
    )
    result = run_bench(ds, methods, split="dev", command=command, max_queries=args.max_queries)
    expected_map = ds.expected("dev")
    expected = [expected_map[q] for q in result.query_ids]
    names = list(methods)
    boot = {
        f"{names[-1]} minus {a}": {
            k: paired_bootstrap(per_query_recall(result, a, expected, k),
                                per_query_recall(result, names[-1], expected, k))
            for k in (10, 100)
        }
        for a in names[:-1]
    }  # fmt: skip
    log = json.loads((ckpt / "pretrain_log.json").read_text())
    extra = {
        "pretrained_minus_scratch": boot,
        "pretrain_s": pre_s,
        "pretrain_batches": args.pretrain_batches,
        "pretrain_lr": args.pretrain_lr,
        "pretrain_loss_first_last": [log[0], log[-1]] if log else None,
        "sft_index_s": {m: result.methods[m].systems.get("index_s") for m in methods},
        "checkpoint": str(ckpt),
    }
    print(format_table(result))
    print(json.dumps(extra, indent=1, default=float))
    write_bench_results(args.out, args.stem,
                        f"Lexical route: GSID pre-training start vs scratch — {ds.name} / dev",
                        command, result, extra)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
