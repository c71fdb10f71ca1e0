"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from gsid.errors import GsidError
from gsid.eval.metrics import evaluate, hit_matrix, mrr_at_k, recall_at_k
from gsid.retrieval.base import SearchResults


def ids(*rows):
    return np.array([list(r) for r in rows], dtype=object)


def test_single_hit_at_rank_two():
    r = ids(["a", "b", "c"])
    assert recall_at_k(r, [{"b"}], 1) == 0.0
    assert recall_at_k(r, [{"b"}], 2) == 1.0
    assert mrr_at_k(r, [{"b"}], 3) == 0.5
    assert mrr_at_k(r, [{"b"}], 1) == 0.0


def test_three_expected_two_found_at_ranks_1_and_5():
    r = ids(["a", "x1", "x2", "x3", "b", "x5", "x6", "x7", "x8", "x9"])
    exp = [{"a", "b", "c"}]
    assert recall_at_k(r, exp, 1) == pytest.approx(1 / 3)
    assert recall_at_k(r, exp, 4) == pytest.approx(1 / 3)
    assert recall_at_k(r, exp, 5) == pytest.approx(2 / 3)
    assert recall_at_k(r, exp, 10) == pytest.approx(2 / 3)
    assert mrr_at_k(r, exp, 10) == 1.0


def test_first_hit_at_rank_five_mrr():
    r = ids(["x0", "x1", "x2", "x3", "b"])
    assert mrr_at_k(r, [{"b", "c"}], 5) == pytest.approx(0.2)
    assert mrr_at_k(r, [{"b", "c"}], 4) == 0.0


def test_duplicates_count_once():
    r = ids(["x", "b", "b", "c"])
    exp = [{"b", "c"}]
    assert hit_matrix(r, exp).tolist() == [[False, True, False, True]]
    assert recall_at_k(r, exp, 3) == 0.5  # the repeated b is not a second hit
    assert recall_at_k(r, exp, 4) == 1.0
    assert recall_at_k(ids(["b", "b", "b"]), exp, 3) == 0.5


def test_duplicates_across_rows_are_independent():
    r = ids(["b", "x"], ["x", "b"])
    assert hit_matrix(r, [{"b"}, {"b"}]).tolist() == [[True, False], [False, True]]


def test_none_padding_never_hits():
    r = ids(["a", None, None], [None, None, None])
    exp = [{"a", "z"}, {"a"}]
    hm = hit_matrix(r, exp)
    assert hm.tolist() == [[True, False, False], [False, False, False]]
    assert recall_at_k(r, exp, 3) == pytest.approx((0.5 + 0.0) / 2)
    assert mrr_at_k(r, exp, 3) == pytest.approx(0.5)
    # None in an expected set is not matched by None padding either
    assert recall_at_k(ids([None, "q"]), [{None}], 2) == 0.0


def test_average_over_queries():
    r = ids(["a", "x", "y"], ["x", "y", "b"])
    exp = [{"a"}, {"b"}]
    assert recall_at_k(r, exp, 1) == 0.5
    assert recall_at_k(r, exp, 3) == 1.0
    assert mrr_at_k(r, exp, 3) == pytest.approx((1 + 1 / 3) / 2)


def test_queries_without_expected_are_excluded():
    r = ids(["a", "x"], ["x", "y"])
    assert recall_at_k(r, [{"a"}, set()], 1) == 1.0
    assert mrr_at_k(r, [{"a"}, set()], 2) == 1.0
    assert math.isnan(recall_at_k(r, [set(), set()], 1))


def test_accepts_search_results_and_lists():
    r = SearchResults(ids(["a", "b"]), np.array([[2.0, 1.0]], np.float32))
    assert recall_at_k(r, [["b"]], 2) == 1.0


def test_k_deeper_than_rankings_is_rejected():
    with pytest.raises(GsidError, match="k >= 5"):
        recall_at_k(ids(["a", "b"]), [{"a"}], 5)
    with pytest.raises(GsidError, match="positive"):
        recall_at_k(ids(["a", "b"]), [{"a"}], 0)


def test_misaligned_inputs_are_rejected():
    with pytest.raises(GsidError, match="align"):
        hit_matrix(ids(["a"]), [{"a"}, {"b"}])
    with pytest.raises(GsidError, match="2-d"):
        hit_matrix(np.array(["a", "b"], dtype=object), [{"a"}])


def test_empty_batch():
    r = np.empty((0, 3), dtype=object)
    assert hit_matrix(r, []).shape == (0, 3)
    assert math.isnan(recall_at_k(r, [], 3))


def _brute_force(rows, exp, k):
    rec, rr = [], []
    for row, e in zip(rows, exp, strict=True):
        if not e:
            continue
        top = [x for x in row[:k] if x is not None]
        rec.append(len(set(top) & e) / len(e))
        first = next((i for i, x in enumerate(row[:k]) if x in e), None)
        rr.append(0.0 if first is None else 1 / (first + 1))
    return np.mean(rec), np.mean(rr)


def test_matches_brute_force_on_random_rankings():
    rng = np.random.default_rng(0)
    items = [f"i{j}" for j in range(30)] + [None]
    rows = rng.choice(np.array(items, dtype=object), size=(50, 20))
    exp = [set(rng.choice(items[:30], size=rng.integers(0, 5), replace=False)) for _ in range(50)]
    for k in (1, 5, 20):
        rec, rr = _brute_force(rows, exp, k)
        assert recall_at_k(rows, exp, k) == pytest.approx(rec)
        assert mrr_at_k(rows, exp, k) == pytest.approx(rr)


def test_evaluate_overall_and_buckets():
    r = ids(["a", "x", "y"], ["x", "b", "y"], ["x", "y", "z"], ["c", "x", "y"])
    qids = ["q1", "q2", "q3", "q4"]
    expected = {"q1": {"a"}, "q2": {"b", "bb"}, "q4": {"c"}}  # q3 has none
    buckets = pd.Series({"q1": "head", "q2": "tail", "q3": "tail"})  # q4 unbucketed
    out = evaluate(
        SearchResults(r, np.zeros(r.shape, np.float32)), qids, expected, buckets=buckets, ks=(1, 3)
    )
    assert out["overall"] == {
        "R@1": pytest.approx(2 / 3),
        "R@3": pytest.approx((1 + 0.5 + 1) / 3),
        "MRR@3": pytest.approx((1 + 0.5 + 1) / 3),
        "n": 3,
        "n_no_expected": 1,
    }
    assert out["head"]["R@1"] == 1.0 and out["head"]["n"] == 1
    assert out["tail"] == {"R@1": 0.0, "R@3": 0.5, "MRR@3": 0.5, "n": 1, "n_no_expected": 1}
    assert out["torso"] == {"R@1": None, "R@3": None, "MRR@3": None, "n": 0, "n_no_expected": 0}
    assert out["unbucketed"]["n"] == 1
    assert list(out) == ["overall", "head", "torso", "tail", "unbucketed"]


def test_evaluate_without_buckets_and_checks():
    r = ids(["a", "b"])
    assert list(evaluate(r, ["q"], {"q": {"a"}}, ks=(1, 2))) == ["overall"]
    with pytest.raises(GsidError, match="query ids"):
        evaluate(r, ["q", "p"], {"q": {"a"}}, ks=(1,))
    with pytest.raises(GsidError, match="k >= 10"):
        evaluate(r, ["q"], {"q": {"a"}}, ks=(1, 10))
    with pytest.raises(GsidError, match="ks"):
        evaluate(r, ["q"], {"q": {"a"}}, ks=())


def test_item_to_item_and_code_agreement():
    from gsid.eval.metrics import code_accuracy, evaluate_i2i

    ids = np.array(["a", "b", "c", "d"], dtype=object)
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # a and b answer one query, c and d another: each item's neighbour is its partner
    out = evaluate_i2i(X, ids, {"q1": {"a", "b"}, "q2": {"c", "d"}}, ks=(1, 2))
    assert out["n"] == 4 and out["R@1"] == 1.0 and out["MRR@2"] == 1.0
    swapped = evaluate_i2i(X[[2, 3, 0, 1]], ids, {"q1": {"a", "b"}, "q2": {"c", "d"}}, ks=(1, 2))
    assert swapped["R@1"] == 1.0  # still partners after relabelling both
    crossed = evaluate_i2i(X, ids, {"q1": {"a", "c"}, "q2": {"b", "d"}}, ks=(1,))
    assert crossed["R@1"] == 0.0  # the nearest item is never the expected one
    assert evaluate_i2i(X, ids, {"q1": {"a"}}, ks=(1,)) == {}
    acc = code_accuracy(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]]), [(0, 0), (1, 1)])
    assert acc == {"l1": 1.0, "l2": 0.5}
