"""Diagnostics of semantic IDs on hand-made codes, and the PNG plots."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from gsid.errors import GsidError
from gsid.ids.diagnostics import (
    diagnose,
    entropy_bits,
    format_report,
    gini,
    quantisation_levels,
)
from gsid.ids.semantic_ids import SemanticIDs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_ids(codes, sizes=None, lengths=None, config=None) -> SemanticIDs:
    codes = np.asarray(codes)
    return SemanticIDs.from_codes(
        [f"i{i}" for i in range(len(codes))],
        codes,
        lengths=lengths,
        codebook_sizes=sizes,
        config=config or {},
    )


def full_product(K: int, L: int) -> SemanticIDs:
    """Every code combination once: each level exactly uniform, given any parent too."""
    return make_ids(list(itertools.product(range(K), repeat=L)), [K] * L)


def sandglass_codes(n: int = 2000, K: int = 8, seed: int = 0) -> np.ndarray:
    """Level 1 puts 80% of the items on token 0; levels 0, 2, 3 are uniform."""
    rng = np.random.default_rng(seed)
    c1 = np.where(rng.random(n) < 0.8, 0, rng.integers(0, K, n))
    return np.stack([rng.integers(0, K, n), c1, rng.integers(0, K, n), rng.integers(0, K, n)], 1)


def test_helpers_entropy_and_gini():
    assert entropy_bits(np.array([5, 5, 5, 5])) == pytest.approx(2.0)
    assert entropy_bits(np.array([7, 0, 0])) == 0.0
    assert entropy_bits(np.array([0, 0])) == 0.0
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)


def test_uniform_levels_have_full_entropy():
    K, L = 4, 4
    d = diagnose(full_product(K, L))
    assert d["n_items"] == K**L and d["collision_rate"] == 0.0
    for r in d["levels"]:
        assert r["entropy_bits"] == pytest.approx(math.log2(K))
        assert r["normalised_entropy"] == pytest.approx(1.0)
        assert r["perplexity"] == pytest.approx(K)
        assert r["utilisation"] == 1.0
        assert r["top_share"]["1"] == pytest.approx(1 / K)
        assert r["gini"] == pytest.approx(0.0, abs=1e-12)
        # given the parent prefix, every child is equally likely too
        assert r["conditional"]["entropy_bits"] == pytest.approx(math.log2(K))
        assert r["conditional"]["top1_share"] == pytest.approx(1 / K)
        assert r["conditional"]["n_parents"] == K ** r["level"]
        assert r["conditional"]["top_token_parent_share"] == 1.0
    sg = d["sandglass"]
    assert sg["score"] == pytest.approx(0.0, abs=1e-12)
    assert sg["score_top1"] == pytest.approx(0.0, abs=1e-12)
    assert sg["middle_levels"] == [1, 2]


def test_one_token_level_and_deterministic_child():
    codes = np.array([[0, 5, 0], [1, 5, 1], [2, 5, 2], [3, 5, 3]])
    d = diagnose(make_ids(codes, [4, 8, 4]))
    lvl1 = d["levels"][1]
    assert lvl1["top_share"]["1"] == 1.0
    assert lvl1["used"] == 1 and lvl1["utilisation"] == 1 / 8
    assert lvl1["entropy_bits"] == 0.0 and lvl1["concentration"] == 1.0
    assert lvl1["gini"] == pytest.approx(7 / 8)
    # level 2 is fully determined by level 0: no information given the parent
    assert d["levels"][2]["entropy_bits"] == pytest.approx(2.0)
    assert d["levels"][2]["conditional"]["entropy_bits"] == 0.0
    assert d["levels"][2]["conditional"]["top1_share"] == 1.0
    assert d["sandglass"]["score"] == pytest.approx(1.0)
    assert d["sandglass"]["routing_level"] == 1


def test_sandglass_score_positive_on_sandglass_and_near_zero_on_uniform():
    rng = np.random.default_rng(1)
    sg = diagnose(make_ids(sandglass_codes(), [8] * 4))["sandglass"]
    assert sg["score"] > 0.2 and sg["score_top1"] > 0.3
    assert sg["routing_level"] == 1
    uniform = make_ids(rng.integers(0, 8, (2000, 4)), [8] * 4)
    su = diagnose(uniform)["sandglass"]
    assert abs(su["score"]) < 0.01 and abs(su["score_top1"]) < 0.03


def test_variable_length_levels_count_only_items_that_reach_them():
    codes = np.array([[0, 1, -1], [0, 2, 3], [1, -1, -1], [1, 0, 0]])
    d = diagnose(make_ids(codes, [2, 3, 4]))
    assert [r["n_items"] for r in d["levels"]] == [4, 3, 2]
    assert [r["n_ending_here"] for r in d["levels"]] == [1, 1, 2]
    assert d["length_histogram"] == {"1": 1, "2": 1, "3": 2}
    assert d["mean_length"] == pytest.approx(9 / 4)


def test_collision_rate_and_unique_ids():
    codes = np.array([[0, 1], [0, 1], [0, 2], [1, 1]])
    d = diagnose(make_ids(codes, [2, 3]))
    assert d["collision_rate"] == pytest.approx(0.5)
    assert d["n_unique_ids"] == 3
    assert d["sandglass"]["score"] is None  # < 3 levels


def test_disambiguation_level_left_out_of_the_score():
    ids = make_ids(np.zeros((3, 4), int), [1, 1, 1, 1], config={"levels": 3})
    assert quantisation_levels(ids) == [0, 1, 2]
    ids2 = make_ids(np.zeros((3, 4), int), [1] * 4, config={"disambiguation_levels": [3]})
    assert quantisation_levels(ids2) == [0, 1, 2]
    assert diagnose(ids)["sandglass"]["levels"] == [0, 1, 2]


def test_ami_by_prefix_and_json_report():
    K = 4
    ids = full_product(K, 3)
    top = ids.codes[:, 0]
    rng = np.random.default_rng(0)
    cats = [np.array([f"c{t}" for t in top], object), rng.integers(0, 3, ids.n_items)]
    d = diagnose(ids, categories=cats, category_names=["dept", "noise"])
    dept = d["ami"][0]
    assert dept["category"] == "dept" and dept["n_classes"] == K
    assert dept["ami_by_prefix"][0] == pytest.approx(1.0)
    assert dept["ami_by_prefix"][2] < dept["ami_by_prefix"][0]
    assert abs(d["ami"][1]["ami_by_prefix"][0]) < 0.05
    json.dumps(d)  # JSON-able
    text = format_report(d)
    assert "sand-glass score" in text and "AMI vs dept" in text


def test_diagnose_rejects_bad_inputs():
    ids = full_product(2, 3)
    with pytest.raises(GsidError, match="labels for"):
        diagnose(ids, categories=[np.zeros(3)])
    with pytest.raises(GsidError, match="top_k"):
        diagnose(ids, top_k=(0,))
    with pytest.raises(GsidError, match="category names"):
        diagnose(ids, categories=[np.zeros(8)], category_names=["a", "b"])


def test_plots_write_valid_pngs(tmp_path):
    from gsid.ids.plots import plot_code_distribution, plot_code_tree

    ids = make_ids(sandglass_codes(300), [8] * 4)
    p1 = plot_code_distribution(ids, tmp_path / "dist.png", title="test")
    p2 = plot_code_tree(ids, tmp_path / "sub" / "tree.png", depth=2)
    # variable-length IDs plot too
    short = make_ids(np.array([[0, 1, -1], [0, 2, 3], [1, -1, -1], [1, 0, 0]]), [2, 3, 4])
    p3 = plot_code_tree(short, tmp_path / "short.png", depth=3)
    for p in (p1, p2, p3):
        data = p.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    with pytest.raises(GsidError, match="depth"):
        plot_code_tree(ids, tmp_path / "x.png", depth=9)
