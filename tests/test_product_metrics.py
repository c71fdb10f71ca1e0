"""Product-understanding metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from gsid.errors import GsidError
from gsid.ids.product_metrics import (
    ami,
    coverage,
    group_table,
    prefix_groups,
    product_understanding,
    purity,
)
from gsid.ids.semantic_ids import SemanticIDs

GROUPS = np.array([0, 0, 0, 1, 1, 2])
CATS = np.array(["a", "a", "b", "b", "b", "c"], dtype=object)


def test_purity_hand_computed():
    # majority counts: group 0 -> 2 (a), group 1 -> 2 (b), group 2 -> 1 (c)
    assert purity(GROUPS, CATS) == pytest.approx(5 / 6)
    t = group_table(GROUPS, CATS)
    assert t.loc[0, "purity"] == pytest.approx(2 / 3)
    assert t["size"].tolist() == [3, 2, 1]
    assert purity(np.arange(6), CATS) == 1.0  # singletons are trivially pure


def test_coverage_hand_computed():
    # group 0: size 3, purity .67; group 1: size 2, purity 1; group 2: size 1
    assert coverage(GROUPS, CATS, min_size=2, min_purity=0.6) == pytest.approx(5 / 6)
    assert coverage(GROUPS, CATS, min_size=2, min_purity=0.8) == pytest.approx(2 / 6)
    assert coverage(GROUPS, CATS, min_size=3, min_purity=0.6) == pytest.approx(3 / 6)
    assert coverage(np.arange(6), CATS) == 0.0  # singletons are too small (default 5)
    with pytest.raises(GsidError):
        coverage(GROUPS, CATS, min_size=0)


def test_ami_extremes():
    assert ami(CATS, np.zeros(6, int)) == pytest.approx(0.0)  # one group says nothing
    assert ami(["x", "x", "y", "y"], [5, 5, 9, 9]) == pytest.approx(1.0)


def test_prefix_groups_keeps_short_ids_apart():
    codes = np.array([[1, 2], [1, -1], [1, 2], [0, 2]])
    g1 = prefix_groups(codes, 1)
    assert g1[0] == g1[1] == g1[2] != g1[3]
    g2 = prefix_groups(codes, 2)
    assert g2[0] == g2[2] and len({g2[0], g2[1], g2[3]}) == 3
    with pytest.raises(GsidError):
        prefix_groups(codes, 3)


def test_product_understanding_table_and_mask():
    codes = np.array([[0, 0], [0, 0], [0, 1], [1, 0], [1, 0], [1, 1]])
    ids = SemanticIDs.from_codes([f"i{i}" for i in range(6)], codes)
    dept = np.array(["d0", "d0", "d0", "d1", "d1", "d1"], object)
    aisle = np.array(["a", "a", "b", "c", "c", None], object)  # one missing label
    rep = product_understanding(ids, [dept, aisle], ["dept", "aisle"], min_size=2, min_purity=1.0)
    d, a = rep["levels"]
    assert d["n_items"] == 6 and d["n_classes"] == 2
    assert d["by_prefix"][0] == {
        "prefix_len": 1,
        "n_groups": 2,
        "ami": pytest.approx(1.0),
        "purity": 1.0,
        "coverage": 1.0,
    }
    assert a["n_items"] == 5  # the missing label is left out
    # prefix 2 groups among the 5: {0,1} a, {2} b, {3,4} c -> pure; big enough: 4 of 5
    assert a["by_prefix"][1]["purity"] == 1.0
    assert a["by_prefix"][1]["coverage"] == pytest.approx(4 / 5)
    mask = np.array([True, True, True, False, False, False])
    rep2 = product_understanding(ids, [dept], mask=mask)
    assert rep2["levels"][0]["n_items"] == 3 and rep2["levels"][0]["n_classes"] == 1
    with pytest.raises(GsidError, match="one label per item"):
        product_understanding(ids, [dept[:3]])
