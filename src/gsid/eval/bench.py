"""Benchmark retrievers on a dataset split: quality metrics plus systems measurements.

    result = run_bench(dataset, {"bm25": BM25Retriever, "dense": fitted_dense}, split="dev")
    write_report(result, "runs/bench")        # bench.json + bench.md (see gsid.eval.report)

For each method, in this order:
1. index (fit) the catalogue unless the retriever is already indexed — wall time `index_s`;
2. warm-up: a few single-query searches (not timed);
3. search every query of the split that has expected items, in batches of `batch_size`
   (default 64) — these rankings are evaluated, and their wall time gives `qps`;
4. latency: `latency_sample` queries (seeded sample), one `search([q], k)` call each —
   `p50_ms`, `p99_ms`;
5. `bytes_per_item` = retriever.index_bytes() / catalogue size; `peak_mb` = largest RSS increase
   over the method's RSS before step 1, while indexing (`peak_index_mb`) and searching
   (`peak_search_mb`).

Memory of one method can be reused by the next without the RSS growing (the Python and C
allocators keep freed memory), so for exact per-method peaks run one method per process.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gsid._progress import progress, stage
from gsid.errors import GsidError
from gsid.eval.metrics import check_ks, code_accuracy, evaluate, evaluate_i2i
from gsid.eval.sysinfo import PeakRSS, current_rss, run_metadata
from gsid.retrieval.base import Retriever, SearchResults

logger = logging.getLogger(__name__)

RetrieverSpec = Retriever | Callable[[], Retriever]

_MB = 2**20


@dataclass
class MethodResult:
    """One method's outcome. `metrics` is `evaluate`'s dict; `systems` holds index_s, p50_ms,
    p99_ms, qps, batch_size, index_bytes, bytes_per_item, peak_mb, peak_index_mb,
    peak_search_mb, search_s (None where not measured). `error` is set when the method failed
    under keep_going. `results` (the rankings, row i = BenchResult.query_ids[i]) stays in
    memory only."""

    name: str
    retriever: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    systems: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    results: SearchResults | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("results")
        return d


@dataclass
class BenchResult:
    """Everything a report needs: dataset summary, split, settings, provenance, per-method results."""

    dataset: dict[str, Any]
    split: str
    ks: tuple[int, ...]
    k: int
    n_queries: int
    n_no_expected: int
    settings: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, MethodResult] = field(default_factory=dict)
    query_ids: list[str] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = {
            f: getattr(self, f)
            for f in ("dataset", "split", "k", "n_queries", "n_no_expected", "settings", "meta")
        }
        d["ks"] = list(self.ks)
        d["methods"] = {name: m.to_dict() for name, m in self.methods.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchResult:
        """Rebuild from `to_dict()` output (e.g. a report's JSON) to render it again."""
        methods = {name: MethodResult(**m) for name, m in d["methods"].items()}
        fields = {f: d[f] for f in ("dataset", "split", "k", "n_queries", "n_no_expected")}
        return cls(
            **fields,
            ks=tuple(d["ks"]),
            settings=dict(d.get("settings", {})),
            meta=dict(d.get("meta", {})),
            methods=methods,
        )

    @property
    def errors(self) -> dict[str, str]:
        return {n: m.error for n, m in self.methods.items() if m.error}


def _materialise(name: str, spec: RetrieverSpec) -> Retriever:
    if isinstance(spec, Retriever):
        return spec
    if callable(spec):
        obj = spec()
        if not isinstance(obj, Retriever):
            raise GsidError(
                f"method {name!r}: its factory returned a {type(obj).__name__}, not a Retriever; "
                f"pass a Retriever instance, a Retriever class or a function returning one"
            )
        return obj
    raise GsidError(
        f"method {name!r} is a {type(spec).__name__}; pass a Retriever instance, a Retriever "
        f"class or a function returning one"
    )


def _check_same_catalogue(name: str, retriever: Retriever, item_ids: np.ndarray) -> None:
    have = retriever.item_ids_
    if len(have) != len(item_ids) or set(have.tolist()) != set(item_ids.tolist()):
        raise GsidError(
            f"method {name!r} was indexed on a catalogue of {len(have)} items that is not this "
            f"dataset's ({len(item_ids)} items); pass an unfitted retriever or a factory so the "
            f"bench indexes this dataset"
        )


def _search_checked(name: str, retriever: Retriever, queries: list[str], k: int) -> SearchResults:
    res = retriever.search(queries, k=k, show_progress=False)
    width = min(k, len(retriever.item_ids_))  # search never returns more than the catalogue
    if not isinstance(res, SearchResults) or res.ids.shape != (len(queries), width):
        shape = getattr(getattr(res, "ids", None), "shape", None)
        raise GsidError(
            f"method {name!r} broke the search contract: {len(queries)} queries at k={k} must "
            f"give SearchResults with ids of shape ({len(queries)}, {width}), got "
            f"{type(res).__name__} with ids shape {shape}"
        )
    if width < k:  # a catalogue smaller than k: pad, so that every table reads k columns
        pad = SearchResults.empty(len(queries), k - width)
        res = SearchResults(np.hstack([res.ids, pad.ids]), np.hstack([res.scores, pad.scores]))
    return res


def _bench_one(
    name: str,
    spec: RetrieverSpec,
    dataset,
    query_ids: list[str],
    query_texts: list[str],
    expected: dict[str, set[str]],
    buckets,
    ks: tuple[int, ...],
    k: int,
    timing: bool,
    latency_sample: int,
    batch_size: int,
    warmup: int,
    seed: int,
    show_progress: bool | None,
    i2i: bool = False,
) -> MethodResult:
    out = MethodResult(name=name)
    sys_: dict[str, Any] = dict.fromkeys(
        (
            "index_s",
            "search_s",
            "qps",
            "p50_ms",
            "p99_ms",
            "peak_mb",
            "peak_index_mb",
            "peak_search_mb",
            "latency_n",
        )
    )
    sys_["batch_size"] = batch_size
    if timing:
        gc.collect()  # garbage of earlier methods must not count as this one's memory
    baseline = current_rss() if timing else None
    mem_index = PeakRSS(baseline, collect=False)
    mem_search = PeakRSS(baseline, collect=False)

    # 1. build + index (construction counts: a factory may load a model)
    with mem_index if timing else contextlib.nullcontext():
        retriever = _materialise(name, spec)
        if retriever.item_ids_ is None:
            stage(f"{name}: indexing {len(dataset.items):,} items", show_progress)
            t0 = time.perf_counter()
            retriever.index(dataset, show_progress=show_progress)
            sys_["index_s"] = time.perf_counter() - t0
        else:
            _check_same_catalogue(name, retriever, dataset.item_ids)
            logger.info("%s: already indexed; index time not measured", name)
    out.retriever = f"{type(retriever).__module__}:{type(retriever).__qualname__}"
    out.config = retriever.config()

    with mem_search if timing else contextlib.nullcontext():
        # 2. warm-up (caches, lazy model loads, thread pools)
        if timing:
            for q in query_texts[:warmup]:
                _search_checked(name, retriever, [q], k)
        # 3. batched search of the whole split: evaluated, and timed for QPS
        parts = []
        t0 = time.perf_counter()
        starts = range(0, len(query_texts), batch_size)
        for s in progress(starts, show_progress, desc=f"{name} search", unit="batch"):
            parts.append(_search_checked(name, retriever, query_texts[s : s + batch_size], k))
        search_s = time.perf_counter() - t0
        results = SearchResults(
            np.concatenate([p.ids for p in parts]), np.concatenate([p.scores for p in parts])
        )
        sys_["search_s"] = search_s
        # 4. single-query latency over a seeded sample
        if timing:
            sys_["qps"] = len(query_texts) / search_s if search_s > 0 else None
            rng = np.random.default_rng(seed)
            n = min(latency_sample, len(query_texts))
            sample = rng.choice(len(query_texts), size=n, replace=False) if n else []
            lat = []
            for i in progress(sample, show_progress, desc=f"{name} latency", unit="q"):
                t0 = time.perf_counter()
                _search_checked(name, retriever, [query_texts[i]], k)
                lat.append(time.perf_counter() - t0)
            if lat:
                sys_["p50_ms"] = float(np.percentile(lat, 50) * 1e3)
                sys_["p99_ms"] = float(np.percentile(lat, 99) * 1e3)
            sys_["latency_n"] = len(lat)

    if timing and mem_index.increase is not None and mem_search.increase is not None:
        sys_["peak_index_mb"] = mem_index.increase / _MB
        sys_["peak_search_mb"] = mem_search.increase / _MB
        sys_["peak_mb"] = max(mem_index.increase, mem_search.increase) / _MB
    n_items = len(dataset.items)
    sys_["index_bytes"] = int(retriever.index_bytes())
    sys_["bytes_per_item"] = sys_["index_bytes"] / n_items if n_items else None
    out.systems = sys_
    out.metrics = evaluate(results, query_ids, expected, buckets=buckets, ks=ks)
    out.extra = extra_metrics(retriever, query_texts, query_ids, expected, ks, i2i)
    out.results = results
    return out


def extra_metrics(
    retriever: Retriever,
    query_texts: list[str],
    query_ids: list[str],
    expected: Mapping[str, Any],
    ks: tuple[int, ...],
    i2i: bool = False,
) -> dict[str, Any]:
    """What a method knows besides its ranking, measured where it has it:
    - code_accuracy (l1 / l2): the share of (query, relevant item) pairs whose first one / two
      codes agree, for methods that assign codes to texts (`query_codes`, `item_codes`);
    - i2i (with i2i=True): item -> item recall and MRR of the method's item vectors
      (`item_vectors`), an item's expected neighbours being the items relevant to a common query.
    """
    extra: dict[str, Any] = {}
    if callable(getattr(retriever, "query_codes", None)) and callable(
        getattr(retriever, "item_codes", None)
    ):
        qcodes, icodes = retriever.query_codes(query_texts), retriever.item_codes()
        row_of = {iid: n for n, iid in enumerate(retriever.item_ids_)}
        pairs = [(a, row_of[i]) for a, q in enumerate(query_ids) for i in expected[q]]
        extra["code_accuracy"] = code_accuracy(qcodes, icodes, pairs)
    if i2i and callable(getattr(retriever, "item_vectors", None)):
        extra["i2i"] = evaluate_i2i(retriever.item_vectors(), retriever.item_ids_, expected, ks)
    return extra


def run_bench(
    dataset,
    retrievers: Mapping[str, RetrieverSpec],
    split: str = "dev",
    ks: Sequence[int] = (1, 10, 100),
    k: int = 100,
    timing: bool = True,
    latency_sample: int = 200,
    batch_size: int = 64,
    warmup: int = 5,
    seed: int = 0,
    keep_going: bool = False,
    max_queries: int | None = None,
    command: str | None = None,
    show_progress: bool | None = None,
    i2i: bool = False,
) -> BenchResult:
    """Index, search and evaluate each retriever on the queries of `split` with expected items.

    retrievers: name -> a Retriever (indexed or not; an indexed one must cover this dataset's
    catalogue) or a factory (a Retriever class or a zero-argument function) called inside the
    measurement, so model loading counts toward memory.
    timing=False skips warm-up, QPS, latency and memory (quality metrics, index_s and
    bytes_per_item are still reported).
    keep_going: a failing method is logged and recorded in `MethodResult.error` and the bench
    continues; without it the error is logged and re-raised.
    max_queries: evaluate a seeded sample of at most this many queries (in split order) —
    for quick runs of slow methods; the report states the sample size.
    command: the command line to record (default sys.argv).
    i2i: also evaluate item -> item retrieval with the item vectors of methods that have them.
    Methods that assign codes (GSID) also get their query-item code agreement (l1 / l2); both
    land in `MethodResult.extra` (see extra_metrics).
    """
    ks = check_ks(ks)
    if not isinstance(k, int | np.integer) or k < ks[-1]:
        raise GsidError(f"k={k!r} must be an integer >= the largest of ks {ks}; use k={ks[-1]}")
    for arg, value, low in (
        ("latency_sample", latency_sample, 0),
        ("batch_size", batch_size, 1),
        ("warmup", warmup, 0),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise GsidError(f"{arg} must be an integer >= {low}, got {value!r}")
    if max_queries is not None and (
        not isinstance(max_queries, int | np.integer) or max_queries < 1
    ):
        raise GsidError(f"max_queries must be None or an integer >= 1, got {max_queries!r}")
    if not retrievers:
        raise GsidError("no retrievers to benchmark; pass {name: retriever or factory}")

    queries = dataset.split_queries(split)
    expected = dataset.expected(split)
    keep = queries["query_id"].isin(expected.keys()).to_numpy()
    query_ids = queries["query_id"][keep].tolist()
    query_texts = queries["query"][keep].tolist()
    if not query_ids:
        raise GsidError(
            f"split {split!r} of dataset {dataset.name!r} has no query with an expected item "
            f"({len(queries)} queries); choose another split or add log rows / judgments"
        )
    n_available = len(query_ids)
    if max_queries is not None and max_queries < n_available:
        pick = np.sort(np.random.default_rng(seed).choice(n_available, max_queries, replace=False))
        query_ids = [query_ids[i] for i in pick]
        query_texts = [query_texts[i] for i in pick]
    buckets = dataset.buckets()
    settings = {
        "max_queries": max_queries,
        "queries_with_expected": n_available,
        "timing": timing,
        "latency_sample": latency_sample,
        "batch_size": batch_size,
        "warmup": warmup,
        "seed": seed,
        "keep_going": keep_going,
        "i2i": i2i,
    }
    result = BenchResult(
        dataset=dataset.summary(),
        split=split,
        ks=ks,
        k=int(k),
        n_queries=len(query_ids),
        n_no_expected=int(len(queries) - len(query_ids)),
        settings=settings,
        meta=run_metadata(command),
        query_ids=query_ids,
    )
    logger.info(
        "bench on %s/%s: %d queries with expected items, %d methods",
        dataset.name,
        split,
        len(query_ids),
        len(retrievers),
    )
    for name, spec in retrievers.items():
        try:
            mres = _bench_one(
                name,
                spec,
                dataset,
                query_ids,
                query_texts,
                expected,
                buckets,
                ks,
                int(k),
                timing,
                int(latency_sample),
                int(batch_size),
                int(warmup),
                seed,
                show_progress,
                i2i,
            )
        except Exception as e:  # one failing method must not hide the others' results
            if not keep_going:
                e.add_note(f"while benchmarking method {name!r}")
                raise
            logger.error("bench method %r failed: %s", name, e, exc_info=logger.isEnabledFor(10))
            mres = MethodResult(name=name, error=f"{type(e).__name__}: {e}")
        else:
            ov = mres.metrics["overall"]
            stage(f"{name}: done", show_progress)
            logger.info(
                "%s: %s",
                name,
                ", ".join(f"{key}={val:.4f}" for key, val in ov.items() if isinstance(val, float)),
            )
        result.methods[name] = mres
    return result
