"""run_bench with tiny fake retrievers on a hand-built dataset, and report writing."""

import json

import numpy as np
import pandas as pd
import pytest

from gsid.data.dataset import Dataset
from gsid.errors import GsidError
from gsid.eval import format_table, load_report, render_markdown, run_bench, write_report
from gsid.eval.sysinfo import current_rss, git_info, run_metadata
from gsid.retrieval.base import Retriever, SearchResults


@pytest.fixture
def dataset():
    items = pd.DataFrame(
        {"item_id": [f"i{j}" for j in range(12)], "title": [f"product {j}" for j in range(12)]}
    )
    queries = pd.DataFrame(
        {
            "query_id": [f"q{j}" for j in range(8)],
            "query": [f"query {j}" for j in range(8)],
            "split": ["dev"] * 6 + ["train"] * 2,
            "frequency": [50.0, 40.0, 10.0, 5.0, 1.0, 1.0, 3.0, 3.0],
        }
    )
    log = pd.DataFrame(
        {
            "query_id": ["q0", "q0", "q1", "q2", "q3", "q3", "q3", "q4", "q6"],
            "item_id": ["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"],
        }
    )  # q5 (dev) has no expected item
    return Dataset(items=items, queries=queries, log=log, name="tiny")


# the oracle's R@1 on `dataset`: q0 (2 expected) and q3 (3 expected) cannot be complete at k=1
ORACLE_R1 = (0.5 + 1 + 1 + 1 / 3 + 1) / 5


class Oracle(Retriever):
    """Returns each query's expected items first (any split), then None padding."""

    name = "oracle"

    def _index(self, dataset, show_progress):
        qtext = dict(zip(dataset.queries["query_id"], dataset.queries["query"], strict=True))
        self.answers_ = {}
        for split in ("train", "dev", "test"):
            for qid, items in dataset.expected(split).items():
                self.answers_[qtext[qid]] = sorted(items)

    def _search(self, queries, k, show_progress):
        out = SearchResults.empty(len(queries), k)
        for i, q in enumerate(queries):
            found = self.answers_.get(q, [])[:k]
            out.ids[i, : len(found)] = found
            out.scores[i, : len(found)] = 1.0
        return out

    def index_bytes(self):
        return 24 * len(self.item_ids_)

    def _save_state(self, directory):
        pass

    def _load_state(self, directory):
        pass


class RandomRetriever(Oracle):
    name = "random"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed

    def config(self):
        return {"seed": self.seed}

    def _index(self, dataset, show_progress):
        self.rng_ = np.random.default_rng(self.seed)

    def _search(self, queries, k, show_progress):
        n = len(self.item_ids_)
        ids = np.stack([self.item_ids_[self.rng_.permutation(n)[:k]] for _ in queries])
        if k > n:
            ids = np.concatenate([ids, np.full((len(queries), k - n), None, object)], axis=1)
        scores = np.where(ids == None, -np.inf, 0.0).astype(np.float32)  # noqa: E711
        return SearchResults(ids.astype(object), scores)


class Broken(Oracle):
    name = "broken"

    def _search(self, queries, k, show_progress):
        raise RuntimeError("model exploded")


class WrongShape(Oracle):
    def _search(self, queries, k, show_progress):
        return SearchResults.empty(len(queries), k - 1)


def test_oracle_has_perfect_recall_and_random_runs(dataset):
    res = run_bench(
        dataset,
        {"oracle": Oracle, "random": lambda: RandomRetriever(seed=3)},
        ks=(1, 5),
        k=5,
        latency_sample=3,
        batch_size=2,
        command="gsid bench tiny",
    )
    assert res.n_queries == 5 and res.n_no_expected == 1
    assert res.query_ids == ["q0", "q1", "q2", "q3", "q4"]
    oracle = res.methods["oracle"]
    ov = oracle.metrics["overall"]
    assert ov["R@5"] == 1.0 and ov["MRR@5"] == 1.0 and ov["n"] == 5
    assert ov["R@1"] == pytest.approx(ORACLE_R1)
    assert sum(oracle.metrics[b]["n"] for b in ("head", "torso", "tail")) == 5
    assert oracle.results.ids.shape == (5, 5)
    s = oracle.systems
    assert s["index_s"] > 0 and 0 < s["p50_ms"] <= s["p99_ms"]
    assert s["qps"] == pytest.approx(len(oracle.results.ids) / s["search_s"])  # batched search
    assert s["latency_n"] == 3 and s["bytes_per_item"] == 24.0 and s["index_bytes"] == 24 * 12
    assert oracle.retriever.endswith(":Oracle")
    rnd = res.methods["random"]
    assert rnd.config == {"seed": 3} and 0.0 <= rnd.metrics["overall"]["R@5"] <= 1.0
    assert res.meta["command"] == "gsid bench tiny"


def test_random_bench_is_seeded(dataset):
    a = run_bench(dataset, {"r": RandomRetriever(seed=1)}, ks=(3,), k=3, timing=False)
    b = run_bench(dataset, {"r": RandomRetriever(seed=1)}, ks=(3,), k=3, timing=False)
    assert a.methods["r"].metrics == b.methods["r"].metrics


def test_prefitted_retriever_is_not_reindexed(dataset):
    fitted = Oracle().index(dataset)
    res = run_bench(dataset, {"o": fitted}, ks=(1,), k=2, timing=False)
    assert res.methods["o"].systems["index_s"] is None
    assert res.methods["o"].metrics["overall"]["R@1"] == pytest.approx(ORACLE_R1)
    assert res.methods["o"].systems["p50_ms"] is None  # timing off


def test_prefitted_on_another_catalogue_is_rejected(dataset):
    other = Dataset(items=dataset.items.iloc[:5], name="other")
    with pytest.raises(GsidError, match="not this"):
        run_bench(dataset, {"o": Oracle().index(other)}, ks=(1,), k=1, timing=False)


def test_errors_are_raised_or_recorded(dataset):
    with pytest.raises(RuntimeError, match="exploded") as info:
        run_bench(dataset, {"b": Broken}, ks=(1,), k=1)
    assert info.value.__notes__ == ["while benchmarking method 'b'"]
    res = run_bench(dataset, {"b": Broken, "o": Oracle}, ks=(1,), k=1, keep_going=True)
    assert res.methods["b"].error == "RuntimeError: model exploded"
    assert res.errors == {"b": "RuntimeError: model exploded"}
    assert res.methods["o"].metrics["overall"]["R@1"] == pytest.approx(ORACLE_R1)
    with pytest.raises(GsidError, match="search contract"):
        run_bench(dataset, {"w": WrongShape}, ks=(1,), k=2, timing=False)
    with pytest.raises(GsidError, match="not a Retriever"):
        run_bench(dataset, {"x": lambda: 42}, ks=(1,), k=1)


def test_bad_arguments(dataset):
    with pytest.raises(GsidError, match="k=5"):
        run_bench(dataset, {"o": Oracle}, ks=(1, 10), k=5)
    with pytest.raises(GsidError, match="no retrievers"):
        run_bench(dataset, {}, ks=(1,), k=1)
    with pytest.raises(GsidError, match="no query with an expected item"):
        run_bench(dataset, {"o": Oracle}, split="test", ks=(1,), k=1)
    with pytest.raises(TypeError):
        run_bench(dataset, {"o": Oracle}, unknown_option=1)


def test_reports_round_trip(dataset, tmp_path):
    res = run_bench(
        dataset,
        {"oracle": Oracle, "broken": Broken},
        ks=(1, 2, 5),
        k=5,
        latency_sample=2,
        keep_going=True,
    )
    jpath, mpath = write_report(res, tmp_path / "out", command="gsid bench --demo")
    doc = json.loads(jpath.read_text())
    assert doc["report_version"] == 1 and doc["split"] == "dev" and doc["ks"] == [1, 2, 5]
    assert doc["meta"]["command"] == "gsid bench --demo"
    assert doc["methods"]["oracle"]["metrics"]["overall"]["R@5"] == 1.0
    assert doc["methods"]["broken"]["error"].startswith("RuntimeError")
    assert "results" not in doc["methods"]["oracle"]
    md = mpath.read_text()
    assert "| method | R@1 | R@2 | R@5 | MRR@5 | p50 ms | p99 ms | QPS@64 | bytes/item |" in md
    # R@1 = (1/2 + 1 + 1 + 1/3 + 1) / 5, R@2 = (1 + 1 + 1 + 2/3 + 1) / 5
    assert "| oracle | 76.67 | 93.33 | 100.00 | 100.00 |" in md
    for bucket in ("Head", "Torso", "Tail"):
        assert f"## {bucket} queries (n = " in md
    assert "| method | R@2 | R@5 | MRR@5 |" in md
    assert "broken" in md and "model exploded" in md
    back = load_report(jpath)
    assert back.methods["oracle"].metrics == res.methods["oracle"].metrics
    assert render_markdown(back) == md
    table = format_table(res)
    assert table.splitlines()[0].split()[:3] == ["method", "R@1", "R@2"]
    assert "oracle" in table and "failed: RuntimeError" in table


def test_load_report_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    from gsid.errors import ArtifactError

    with pytest.raises(ArtifactError, match="not a readable"):
        load_report(bad)


def test_provenance(tmp_path):
    assert git_info(tmp_path) == {"commit": None, "dirty": None}
    meta = run_metadata("cmd")
    assert meta["command"] == "cmd" and meta["date"].endswith("+00:00")
    assert meta["machine"]["cores"] >= 1


def test_peak_rss_sees_an_allocation():
    """In a fresh process: in this one, earlier tests may have left freed memory that the
    allocator hands back without the resident size growing."""
    import subprocess
    import sys

    if current_rss() is None:
        pytest.skip("no /proc on this platform")
    code = (
        "import numpy as np; from gsid.eval.sysinfo import PeakRSS\n"
        "with PeakRSS() as mem:\n"
        "    block = np.ones(8 * 2**20)  # 64 MiB, touched\n"
        "    del block\n"
        "print(mem.increase)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 32 * 2**20


def test_max_queries_takes_a_seeded_sample(dataset):
    a = run_bench(dataset, {"o": Oracle}, ks=(1,), k=1, timing=False, max_queries=3, seed=7)
    b = run_bench(dataset, {"o": Oracle}, ks=(1,), k=1, timing=False, max_queries=3, seed=7)
    assert a.n_queries == 3 and a.query_ids == b.query_ids
    assert set(a.query_ids) <= {"q0", "q1", "q2", "q3", "q4"}
    assert a.settings["queries_with_expected"] == 5
    assert "a seeded sample of 5" in render_markdown(a)
    with pytest.raises(GsidError, match="max_queries"):
        run_bench(dataset, {"o": Oracle}, ks=(1,), k=1, max_queries=0)
