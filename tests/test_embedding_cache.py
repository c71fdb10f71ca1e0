"""The embedding cache is keyed by text: overlapping lists compute only what is new."""

from __future__ import annotations

import numpy as np

from gsid.text import embedding_cache
from gsid.text.embedding_cache import cached_rows


class Counting:
    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def __call__(self, todo: list[str]) -> np.ndarray:
        self.seen.append(list(todo))
        return np.array([[len(t), sum(map(ord, t))] for t in todo], np.float32)


def test_rows_are_reused_by_text(tmp_path):
    f = Counting()
    a = cached_rows("enc-1", ["red drill", "hose", "paint"], tmp_path, f)
    b = cached_rows("enc-1", ["paint", "saw", "red drill", "saw"], tmp_path, f)
    assert f.seen == [["red drill", "hose", "paint"], ["saw"]]  # only the new text, once
    assert np.array_equal(b[0], a[2]) and np.array_equal(b[2], a[0])
    assert np.array_equal(b[1], b[3])
    c = cached_rows("enc-2", ["paint"], tmp_path, f)  # another encoder: its own rows
    assert f.seen[-1] == ["paint"] and np.array_equal(c[0], a[2])
    assert cached_rows("enc-1", [], tmp_path, f).shape[0] == 0
    assert np.array_equal(cached_rows("enc-1", ["hose"], None, f), a[1:2])  # no cache


def test_a_list_seen_before_returns_its_very_rows(tmp_path):
    """The first computation of a list is one call over the whole list (as without a cache)."""
    f = Counting()
    texts = ["b", "a", "b"]  # a repeat inside the list is computed as the caller asked
    assert (
        cached_rows("e", texts, None, f).tolist() == cached_rows("e", texts, tmp_path, f).tolist()
    )
    assert f.seen == [texts, texts]


def test_damaged_shards_are_recomputed_and_many_are_merged(tmp_path, monkeypatch):
    f = Counting()
    cached_rows("e", ["a", "b"], tmp_path, f)
    (shard,) = tmp_path.glob("rows-*/*.npz")
    shard.write_bytes(b"junk")
    cached_rows("e", ["a", "b"], tmp_path, f)
    assert f.seen[-1] == ["a", "b"]
    monkeypatch.setattr(embedding_cache, "MERGE_AT", 4)
    for t in "cdefg":  # each list holds one known text and one new: a small shard each
        cached_rows("e", ["a", t], tmp_path, f)
        assert f.seen[-1] == [t]
    assert len(list(tmp_path.glob("rows-*/shard-*.npz"))) < 4
    # an assembled list is answered the same way later, whatever was cached in between
    before = cached_rows("e", ["a", "z"], tmp_path, f)
    cached_rows("e", ["z", "y"], tmp_path, lambda todo: np.full((len(todo), 2), 9.0, np.float32))
    assert np.array_equal(cached_rows("e", ["a", "z"], tmp_path, f), before)
    n = len(f.seen)
    out = cached_rows("e", list("gfedcba"), tmp_path, f)
    assert len(f.seen) == n  # everything still cached after the merge
    assert out[:, 0].tolist() == [1.0] * 7


def test_a_text_computed_by_two_lists_always_reads_its_first_row(tmp_path):
    def const(v):
        return lambda todo: np.full((len(todo), 1), v, np.float32)

    cached_rows("e", ["a", "b", "c"], tmp_path, const(1.0))
    # mostly new: computed whole, "a" included (a second row for "a", from another batch)
    assert cached_rows("e", ["a", "x", "y", "z"], tmp_path, const(2.0))[0, 0] == 2.0
    for _ in range(3):  # assembled text by text: "a" reads the row written first, every time
        out = cached_rows("e", ["a", "x", "y", "q"], tmp_path, const(3.0))
        assert out[:, 0].tolist() == [1.0, 2.0, 2.0, 3.0]
