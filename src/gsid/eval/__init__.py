"""Evaluation: ranking metrics, the benchmark harness and its reports."""

from gsid.eval.bench import BenchResult, MethodResult, run_bench
from gsid.eval.metrics import evaluate, hit_matrix, mrr_at_k, recall_at_k
from gsid.eval.report import format_table, load_report, render_markdown, write_report

__all__ = [
    "BenchResult",
    "MethodResult",
    "evaluate",
    "format_table",
    "hit_matrix",
    "load_report",
    "mrr_at_k",
    "recall_at_k",
    "render_markdown",
    "run_bench",
    "write_report",
]
