"""Sand-glass repairs: drop the routing level; adaptive variable-length IDs."""

from __future__ import annotations

import numpy as np
import pytest

from gsid.errors import GsidError
from gsid.ids.collisions import resolve_collisions
from gsid.ids.diagnostics import diagnose
from gsid.ids.sandglass import (
    adaptive_variable_length,
    drop_routing_level,
    routing_tokens,
    token_table,
)
from gsid.ids.semantic_ids import SemanticIDs


def sandglass_ids(n: int = 3000, K: int = 8, seed: int = 0) -> SemanticIDs:
    """Unique 4-level IDs whose level 1 puts ~80% of the items on token 0 (a routing token)."""
    rng = np.random.default_rng(seed)
    c1 = np.where(rng.random(n) < 0.8, 0, rng.integers(0, K, n))
    codes = np.stack([rng.integers(0, K, n), c1, rng.integers(0, K, n), rng.integers(0, K, n)], 1)
    ids = SemanticIDs.from_codes(
        [f"i{i}" for i in range(n)],
        codes,
        codebook_sizes=[K] * 4,
        config={"builder": "test", "levels": 4},
    )
    return resolve_collisions(ids, "append")  # as build_ids hands them out


def test_routing_token_rule_picks_the_dominant_token():
    ids = sandglass_ids()
    t = token_table(ids, 1)
    assert t["share"][0] > 0.75
    assert t["info_bits"][0] < 0.5  # taken by most items of every parent
    assert t["parent_share"][0] == 1.0
    assert routing_tokens(ids, 1).tolist() == [0]
    assert len(routing_tokens(ids, 1, top_k=3)) == 3
    assert routing_tokens(ids, 1, top_k=3)[0] == 0
    # a uniform level has no routing token under the default rule
    assert routing_tokens(ids, 2).tolist() == []


def test_drop_routing_level_auto():
    ids = sandglass_ids()
    before = diagnose(ids)
    assert before["sandglass"]["routing_level"] == 1 and before["sandglass"]["score"] > 0.2
    out = drop_routing_level(ids)
    rep = out.config["sandglass_repair"]
    assert rep["method"] == "drop_routing_level" and rep["level"] == 1
    assert out.collision_rate() == 0.0
    assert out.config["levels"] == 3
    # every ID is its old ID without level 1, plus a disambiguation code where needed
    n_q = 3
    base = np.delete(ids.codes[:, :4], 1, axis=1)
    assert (out.codes[:, :n_q] == base).all()
    assert (out.lengths >= 3).all() and (out.lengths <= ids.lengths).all()
    assert rep["collision_rate_after_drop"] > 0  # dropping made collisions, which were resolved
    after = diagnose(out)
    assert after["sandglass"]["levels"] == [0, 1, 2]
    assert max(after["sandglass"]["concentration"]) < 0.1  # the concentrated level is gone
    assert [s["op"] for s in out.config["derived"]][-2:] == ["drop_level", "collisions"]


def test_adaptive_variable_length_auto():
    ids = sandglass_ids()
    before = diagnose(ids)["levels"][1]
    out = adaptive_variable_length(ids)
    rep = out.config["sandglass_repair"]
    assert rep["method"] == "adaptive_variable_length" and rep["level"] == 1
    assert rep["removed_tokens"] == [0]
    hit = ids.codes[:, 1] == 0
    assert rep["n_shortened"] == int(hit.sum())
    assert out.collision_rate() == 0.0
    # unaffected IDs are unchanged; shortened ones lose one code (a disambiguation code may follow)
    assert (
        out.codes[~hit]
        == np.pad(ids.codes[~hit], ((0, 0), (0, out.n_levels - ids.n_levels)), constant_values=-1)
    ).all()
    assert (out.lengths[hit] <= ids.lengths[hit]).all()
    assert (out.lengths[hit] >= ids.lengths[hit] - 1).all()
    # shifted codes: level-2 and level-3 tokens, offset by the native size of their new position
    K = 8
    assert (out.codes[hit, 1] == ids.codes[hit, 2] + K).all()
    assert (out.codes[hit, 2] == ids.codes[hit, 3] + K).all()
    assert rep["token_offsets"]["1"] == K and rep["token_offsets"]["2"] == K
    assert out.codebook_sizes[:3] == [K, 2 * K, 2 * K]
    # the target level's own tokens are no longer concentrated
    d = diagnose(out)
    native = d["levels"][1]["native"]
    assert native["top_share"]["1"] < before["top_share"]["1"] / 2
    assert native["concentration"] < before["concentration"] / 4
    assert d["sandglass"]["score"] < diagnose(ids)["sandglass"]["score"]
    assert d["mean_length"] < diagnose(ids)["mean_length"]


def test_adaptive_hand_made_case_with_collision():
    # level 1 counts: token 0 x2 (A, C), token 2 x2 (D, E), token 1 x1 (B)
    codes = np.array(
        [
            [0, 0, 1, 2],  # A
            [0, 1, 1, 2],  # B
            [1, 0, 3, 3],  # C
            [1, 2, 0, 0],  # D
            [0, 2, 1, 2],  # E
        ]
    )
    ids = SemanticIDs.from_codes(list("ABCDE"), codes, codebook_sizes=[2, 3, 4, 4])
    out = adaptive_variable_length(ids, level=1, top_k=1)
    assert out.config["sandglass_repair"]["removed_tokens"] == [0]
    assert out.code_of("A") == (0, 1 + 3, 2 + 4)
    assert out.code_of("C") == (1, 3 + 3, 3 + 4)
    assert out.code_of("B") == (0, 1, 1, 2) and out.code_of("D") == (1, 2, 0, 0)
    assert out.codebook_sizes == [2, 7, 8, 4]
    # removing tokens 0 and 2 makes A and E collide: both get a disambiguation code
    out2 = adaptive_variable_length(ids, level=1, top_k=2)
    assert out2.config["sandglass_repair"]["removed_tokens"] == [0, 2]
    assert out2.collision_rate() == 0.0
    assert out2.config["sandglass_repair"]["collision_rate_after_shortening"] == pytest.approx(0.4)
    a, e = out2.code_of("A"), out2.code_of("E")
    assert a[:3] == e[:3] == (0, 4, 6) and len(a) == len(e) == 4 and a != e
    # their disambiguation codes sit past the native codes of position 3 (K_3 = 4)
    assert (a[3], e[3]) == (4, 5)
    assert out2.config["sandglass_repair"]["disambiguation_offsets"] == {"3": 4}
    assert out2.codebook_sizes == [2, 7, 8, 6]
    assert diagnose(out2)["levels"][3]["native"]["n_items"] == 1  # only B keeps a level-3 token
    assert out2.code_of("D") == (1, 0 + 3, 0 + 4)


def test_top_k_zero_changes_nothing_and_bad_levels_raise():
    ids = sandglass_ids(500)
    same = adaptive_variable_length(ids, level=1, top_k=0)
    assert (same.codes == ids.codes).all() and (same.lengths == ids.lengths).all()
    with pytest.raises(GsidError, match="level must be in"):
        drop_routing_level(ids, level=0)
    with pytest.raises(GsidError, match="level must be in"):
        adaptive_variable_length(ids, level=7)
    two = SemanticIDs.from_codes(["a", "b"], np.array([[0, 1], [1, 0]]))
    with pytest.raises(GsidError, match="pass level="):
        drop_routing_level(two)
