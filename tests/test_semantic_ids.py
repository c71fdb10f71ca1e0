"""SemanticIDs: construction checks, prefix lookup vs brute force, persistence, derivations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsid.errors import ArtifactError, DataValidationError
from gsid.ids import SemanticIDs, collision_stats, resolve_collisions


def random_ids(
    seed: int, n: int = 300, levels: int = 3, k: int = 4, variable: bool = True
) -> SemanticIDs:
    """Random codes from a small codebook (many shared prefixes), optionally variable length."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, (n, levels)).astype(np.int32)
    lengths = rng.integers(1, levels + 1, n) if variable else np.full(n, levels)
    codes[np.arange(levels)[None, :] >= lengths[:, None]] = -1
    return SemanticIDs.from_codes([f"item{i}" for i in range(n)], codes, lengths, [k] * levels)


def brute_prefix(ids: SemanticIDs, prefix: list[int]) -> set[str]:
    m = len(prefix)
    return {
        ids.item_ids[i]
        for i in range(ids.n_items)
        if ids.lengths[i] >= m and list(ids.codes[i, :m]) == prefix
    }


def test_small_example() -> None:
    codes = np.array([[1, 2, -1], [1, 2, 3], [0, 5, 5], [1, -1, -1]])
    ids = SemanticIDs.from_codes(["a", "b", "c", "d"], codes, codebook_sizes=[4, 8, 8])
    assert ids.n_items == 4 and ids.n_levels == 3
    assert ids.lengths.tolist() == [2, 3, 3, 1]
    assert ids.code_of("b") == (1, 2, 3)
    assert ids.codes_of(["d", "c"]) == [(1,), (0, 5, 5)]
    # shorter IDs sort before their extensions
    assert ids.item_ids[ids.order_].tolist() == ["c", "d", "a", "b"]
    assert ids.items_with_prefix([1]).tolist() == ["d", "a", "b"]
    assert ids.items_with_prefix([1, 2]).tolist() == ["a", "b"]
    assert ids.items_with_prefix([]).tolist() == ["c", "d", "a", "b"]
    assert ids.items_with_prefix([2]).tolist() == []
    assert ids.id_strings() == ["1-2", "1-2-3", "0-5-5", "1"]
    assert not ids.is_prefix_free()
    frame = ids.to_frame()
    assert frame["id"].tolist() == ids.id_strings() and list(frame.columns[-3:]) == [
        "c0",
        "c1",
        "c2",
    ]
    with pytest.raises(KeyError, match="zzz"):
        ids.code_of("zzz")


@pytest.mark.parametrize("seed", range(6))
def test_prefix_lookup_matches_brute_force(seed: int) -> None:
    ids = random_ids(seed, variable=seed % 2 == 0)
    rng = np.random.default_rng(100 + seed)
    order = ids.order_
    for _ in range(60):
        m = int(rng.integers(0, ids.n_levels + 1))
        prefix = rng.integers(0, 5, m).tolist()  # 4 is outside the codebook: empty answers too
        lo, hi = ids.prefix_range(prefix)
        got = ids.items_with_prefix(prefix)
        assert set(got.tolist()) == brute_prefix(ids, prefix)
        assert len(got) == hi - lo and set(ids.item_ids[order[lo:hi]]) == set(got)
    # sorted order is lexicographic with padding first
    sc, sl, si = ids.sorted_codes()
    rows = [tuple(r) for r in sc.tolist()]
    assert rows == sorted(rows)
    assert [ids.code_of(x) for x in si[:5]] == [
        tuple(r[:n]) for r, n in zip(rows[:5], sl[:5], strict=True)
    ]


def test_collision_rate_and_prefix_free() -> None:
    ids = SemanticIDs.from_codes(["a", "b", "c", "d"], [[0, 1], [0, 1], [0, 2], [1, 1]])
    assert ids.collision_rate() == pytest.approx(0.5)
    st = collision_stats(ids)
    assert st["n_unique_ids"] == 3 and st["max_group_size"] == 2 and st["n_colliding_groups"] == 1


@pytest.mark.parametrize("variable", [False, True])
def test_save_load_roundtrip(tmp_path, variable: bool) -> None:
    ids = random_ids(1, variable=variable)
    ids.config["builder"] = "test"
    ids.provenance["encoder"] = "minilm"
    path = ids.save(tmp_path / "ids")
    back = SemanticIDs.load(path)
    assert back.item_ids.tolist() == ids.item_ids.tolist()
    assert np.array_equal(back.codes, ids.codes) and np.array_equal(back.lengths, ids.lengths)
    assert back.codebook_sizes == ids.codebook_sizes
    assert back.config["builder"] == "test" and back.provenance["encoder"] == "minilm"
    assert back.items_with_prefix([1]).tolist() == ids.items_with_prefix([1]).tolist()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["kind"] == "gsid-semantic-ids" and manifest["format_version"] == 1


def test_corrupted_artifacts_raise_artifact_error(tmp_path, monkeypatch) -> None:
    ids = random_ids(2)
    p = ids.save(tmp_path / "ids")
    # truncated codes file
    (p / "codes.npy").write_bytes((p / "codes.npy").read_bytes()[:40])
    with pytest.raises(ArtifactError, match=r"codes\.npy is corrupted"):
        SemanticIDs.load(p)
    monkeypatch.setenv("GSID_VERIFY", "0")  # the structural checks beneath the checksums
    with pytest.raises(ArtifactError):
        SemanticIDs.load(p)
    # shapes that disagree with the manifest
    p = ids.save(tmp_path / "ids2")
    np.save(p / "lengths.npy", ids.lengths[:-1])
    with pytest.raises(ArtifactError, match="shapes"):
        SemanticIDs.load(p)
    # codes that break the padding rule
    p = ids.save(tmp_path / "ids3")
    bad = ids.codes.copy()
    bad[ids.lengths < ids.n_levels, -1] = 0
    np.save(p / "codes.npy", bad)
    with pytest.raises(ArtifactError, match="inconsistent"):
        SemanticIDs.load(p)
    # missing file / missing manifest / wrong kind
    p = ids.save(tmp_path / "ids4")
    (p / "item_ids.parquet").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        SemanticIDs.load(p)
    with pytest.raises(ArtifactError):
        SemanticIDs.load(tmp_path / "nothing")
    p = ids.save(tmp_path / "ids5")
    (p / "manifest.json").write_text('{"kind": "gsid-dataset", "format_version": 1}')
    with pytest.raises(ArtifactError, match="expected"):
        SemanticIDs.load(p)
    (p / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupted"):
        SemanticIDs.load(p)


def test_construction_validates() -> None:
    with pytest.raises(DataValidationError, match="unique"):
        SemanticIDs.from_codes(["a", "a"], [[0], [1]])
    with pytest.raises(DataValidationError, match="outside"):
        SemanticIDs.from_codes(["a", "b"], [[0], [5]], codebook_sizes=[4])
    with pytest.raises(DataValidationError, match="past an item's length"):
        SemanticIDs(np.array(["a"], object), np.array([[1, 2]]), np.array([1]), [4, 4])
    with pytest.raises(DataValidationError, match="align"):
        SemanticIDs.from_codes(["a"], [[0], [1]])


def test_truncate_and_drop_level() -> None:
    ids = random_ids(3, variable=True)
    t = ids.truncate(2)
    assert t.n_levels == 2 and t.codebook_sizes == ids.codebook_sizes[:2]
    assert t.lengths.max() <= 2 and t.config["derived"][-1] == {"op": "truncate", "n_levels": 2}
    for x in ids.item_ids[:50]:
        assert t.code_of(x) == ids.code_of(x)[:2]
    full = random_ids(4, variable=False)
    d = full.drop_level(1)
    assert d.n_levels == 2 and d.config["derived"][-1]["op"] == "drop_level"
    for x in full.item_ids[:50]:
        c = full.code_of(x)
        assert d.code_of(x) == (c[0], c[2])
    with pytest.raises(ValueError, match="without a code"):
        ids.drop_level(0)  # some items have length 1


def test_resolve_collisions_both_strategies_variable_length() -> None:
    # variable-length input with collisions at short and full length, and a short ID that is a
    # prefix of a longer one: append must not create a clash with the longer one
    codes = [[0, -1], [0, -1], [0, 0], [1, 1], [1, 1], [1, 1], [2, 3]]
    ids = SemanticIDs.from_codes(list("abcdefg"), codes, codebook_sizes=[3, 4])
    out = resolve_collisions(ids, "append")
    assert out.collision_rate() == 0.0
    assert (
        out.code_of("c") == (0, 0) and out.code_of("a")[:1] == (0,) and out.code_of("a") != (0, 0)
    )
    assert sorted(out.code_of(x) for x in "def") == [(1, 1, 0), (1, 1, 1), (1, 1, 2)]
    assert out.codebook_sizes[2] == 3 and out.code_of("g") == (2, 3)
    # reassign: d keeps (1,1) (nearest), e and f move to free last codes
    cand = np.array([[-1, -1]] * 3 + [[1, 2], [1, 2], [1, 3], [3, 0]])
    dist = np.array([[np.inf, np.inf]] * 3 + [[0.1, 0.2], [0.05, 0.3], [0.2, 0.9], [0.0, 1.0]])
    out = resolve_collisions(ids, "reassign", candidates=cand, distances=dist)
    assert out.collision_rate() == 0.0
    assert out.code_of("e") == (1, 1)  # smallest distance keeps its code
    assert {out.code_of("d"), out.code_of("f")} == {(1, 2), (1, 3)}
    assert out.provenance["collisions"]["n_reassigned"] == 2
    kept = resolve_collisions(ids, "none")
    assert kept.collision_rate() == ids.collision_rate()
