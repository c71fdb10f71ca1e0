"""HierarchicalKMeans.assign: new vectors descend the fitted tree like the items did."""

from __future__ import annotations

import numpy as np
import pytest

from gsid.errors import GsidError, NotFittedError
from gsid.ids import HierarchicalKMeans


def blobs(n: int = 600, d: int = 16, centers: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d)) * 3
    return (c[rng.integers(0, centers, n)] + rng.normal(size=(n, d))).astype(np.float32)


def brute_force_descent(hk: HierarchicalKMeans, x: np.ndarray) -> list[int]:
    """Reference: walk the tree one node at a time with plain Python loops."""
    path: list[int] = []
    while len(path) < hk.levels and tuple(path) in hk.tree_:
        child_codes, C = hk.tree_[tuple(path)]
        d = [float(((x.astype(np.float64) - c) ** 2).sum()) for c in C]
        path.append(int(child_codes[int(np.argmin(d))]))
    return path


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_assign_reproduces_training_codes(backend: str) -> None:
    X = blobs()
    hk = HierarchicalKMeans(levels=3, codebook_size=8, niter=5, backend=backend)
    codes, lengths = hk.fit_codes(X)
    got, got_len = hk.assign(X)
    # continuous random data: no exact duplicates, so every point finds its own path
    assert np.array_equal(got_len, lengths)
    assert np.array_equal(got, codes)


def test_assign_matches_brute_force_descent_on_new_points() -> None:
    X = blobs(n=300, d=8, centers=4)
    hk = HierarchicalKMeans(levels=3, codebook_size=5, niter=5)
    codes, lengths = hk.fit_codes(X)
    Q = blobs(n=40, d=8, centers=4, seed=1)
    got, got_len = hk.assign(Q)
    known = {tuple(r[:n]) for r, n in zip(codes.tolist(), lengths, strict=True)}
    for q, row, n in zip(Q, got.tolist(), got_len, strict=True):
        ref = brute_force_descent(hk, q)
        assert row[:n] == ref and all(c == -1 for c in row[n:])
        assert tuple(ref) in known  # a query always lands on an existing item path


def test_assign_in_a_single_leaf_takes_the_nearest_item_position() -> None:
    X = blobs(n=6, d=4)
    hk = HierarchicalKMeans(levels=2, codebook_size=8)  # 6 <= 8 items: one leaf of positions
    codes, _ = hk.fit_codes(X)
    q = X[3] + 1e-3
    got, got_len = hk.assign(q[None])
    assert got_len.tolist() == [1] and got[0, 0] == codes[3, 0]


def test_assign_errors() -> None:
    hk = HierarchicalKMeans(levels=2, codebook_size=4)
    with pytest.raises(NotFittedError):
        hk.assign(np.zeros((1, 3), np.float32))
    hk.fit_codes(blobs(n=50, d=3))
    with pytest.raises(GsidError, match="dimension"):
        hk.assign(np.zeros((2, 5), np.float32))
