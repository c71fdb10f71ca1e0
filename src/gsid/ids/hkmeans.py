"""Hierarchical k-means IDs (DSI / NCI style): a recursive tree of k-means clusters.

    hk = HierarchicalKMeans(levels=4, codebook_size=128, seed=0)
    codes, lengths = hk.fit_codes(X)                     # variable-length IDs
    q_codes, q_lengths = hk.assign(Q)                    # new vectors (queries) down the same tree

Cluster all items into K; every cluster with more than K items is clustered again into K, and so
on. A cluster with at most K items ends the recursion: its items get position codes 0..n-1
(ordered by distance to the cluster mean, so the position is mildly meaningful and the result
deterministic). IDs therefore have variable length. At the last allowed level a cluster that is
still larger than K is split by k-means anyway; items that then share a leaf collide, and the
ranked nearest centroids are returned so that collision repair can move them.

`assign` sends new vectors (e.g. queries, as DSI / GSID evaluate k-means IDs) down the fitted
tree: nearest level-1 centroid, then the nearest among that cluster's children, and so on; in a
leaf of position codes the "children" are the leaf's items, so a vector takes the position code
of its nearest item. Only children that received training items are candidates, so every
assigned path exists in the catalogue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from gsid._progress import progress_bar
from gsid.errors import GsidError, NotFittedError
from gsid.ids.residual_kmeans import as_embeddings, faiss_kmeans, level_sizes

logger = logging.getLogger(__name__)

BACKENDS = ("faiss", "sklearn")


class HierarchicalKMeans:
    """Recursive k-means tree. backend: 'faiss' (default, fast) or 'sklearn' (KMeans, n_init=1)."""

    def __init__(
        self,
        levels: int = 4,
        codebook_size: int | Sequence[int] = 128,
        niter: int = 20,
        seed: int = 0,
        backend: str = "faiss",
        max_points_per_centroid: int = 256,
        n_candidates: int = 16,
    ) -> None:
        if backend not in BACKENDS:
            raise GsidError(f"unknown k-means backend {backend!r}; use one of {list(BACKENDS)}")
        self.levels = levels
        self.codebook_size = codebook_size
        self.niter = niter
        self.seed = seed
        self.backend = backend
        self.max_points_per_centroid = max_points_per_centroid
        self.n_candidates = n_candidates

    def get_config(self) -> dict:
        cs = self.codebook_size
        return {
            "builder": "hkmeans",
            "levels": self.levels,
            "codebook_size": cs if np.isscalar(cs) else list(cs),
            "niter": self.niter,
            "seed": self.seed,
            "backend": self.backend,
            "max_points_per_centroid": self.max_points_per_centroid,
            "n_candidates": self.n_candidates,
        }

    def _kmeans(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        """Centroids (k, D)."""
        if self.backend == "faiss":
            return faiss_kmeans(X, k, self.niter, seed, self.max_points_per_centroid).centroids
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=1, max_iter=self.niter, random_state=seed)
        return km.fit(X).cluster_centers_.astype(np.float32)

    def fit_codes(
        self, X: np.ndarray, show_progress: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """codes (N, L) int32 (-1 padded) and lengths (N,). Sets candidates_/distances_:
        ranked last-level alternatives (N, C) for items split by k-means at the last level
        (-1 / inf elsewhere)."""

        X = as_embeddings(X)
        n = X.shape[0]
        sizes = level_sizes(self.levels, self.codebook_size)
        L = self.levels
        codes = np.full((n, L), -1, np.int32)
        lengths = np.zeros(n, np.int32)
        c = max(1, min(self.n_candidates, sizes[-1]))
        self.candidates_ = np.full((n, c), -1, np.int32)
        self.distances_ = np.full((n, c), np.inf, np.float32)
        # prefix -> (child codes (m,), child vectors (m, D)) of every node; read by `assign`
        tree: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        n_runs = 0
        bar = progress_bar(n, "hierarchical k-means", show_progress, unit="item")
        # explicit stack instead of recursion: deep trees must not hit Python's recursion limit
        stack: list[tuple[np.ndarray, int]] = [(np.arange(n), 0)]
        while stack:
            members, depth = stack.pop()
            k = sizes[depth]
            Xm = X[members]
            prefix = tuple(int(x) for x in codes[members[0], :depth])  # shared by all members
            if len(members) <= k:
                # leaf: position codes, nearest to the cluster mean first
                d = ((Xm - Xm.mean(0)) ** 2).sum(1)
                pos = np.argsort(d, kind="stable")
                codes[members[pos], depth] = np.arange(len(members), dtype=np.int32)
                tree[prefix] = (np.arange(len(members), dtype=np.int32), Xm[pos].copy())
                lengths[members] = depth + 1
                bar.update(len(members))
                continue
            C = np.ascontiguousarray(self._kmeans(Xm, k, self.seed + n_runs), np.float32)
            n_runs += 1
            dist = (Xm**2).sum(1)[:, None] - 2 * Xm @ C.T + (C**2).sum(1)[None, :]  # (n_m, k)
            assign = dist.argmin(1)
            codes[members, depth] = assign
            used = np.unique(assign).astype(np.int32)  # empty clusters lead to no item
            tree[prefix] = (used, C[used])
            if depth == L - 1:
                # cap reached: keep the clusters as they are (possible collisions)
                lengths[members] = L
                idx = np.argsort(dist, axis=1, kind="stable")[:, :c]
                self.candidates_[members, : idx.shape[1]] = idx
                self.distances_[members, : idx.shape[1]] = np.take_along_axis(dist, idx, 1)
                bar.update(len(members))
                continue
            # children pushed in reverse so they pop in code order (deterministic run order)
            for child in range(k - 1, -1, -1):
                sub = members[assign == child]
                if len(sub):
                    stack.append((sub, depth + 1))
        bar.close()
        self.tree_ = tree
        self.codebook_sizes_ = sizes
        self.n_kmeans_runs_ = n_runs
        logger.info(
            "hierarchical k-means: %d k-means runs, mean ID length %.2f",
            n_runs,
            float(lengths.mean()),
        )
        return codes, lengths

    def assign(
        self, X: np.ndarray, show_progress: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Codes (N, L) int32 (-1 padded) and lengths (N,) of new vectors X (N, D), found by
        descending the fitted tree (nearest child at every node, squared L2 as in fitting).

        A training vector gets its own fit_codes code back, except when another training vector
        is exactly as close (duplicates in one leaf) and after collision repair moved it."""

        tree = getattr(self, "tree_", None)
        if tree is None:
            raise NotFittedError(
                "HierarchicalKMeans.assign needs a fitted tree: call fit_codes(X) first"
            )
        X = as_embeddings(X, "vectors to assign")
        dim = next(iter(tree.values()))[1].shape[1]
        if X.shape[1] != dim:
            raise GsidError(
                f"vectors to assign have dimension {X.shape[1]}, the tree was fitted on {dim}: "
                f"encode them with the same model as the items"
            )
        n, L = X.shape[0], self.levels
        codes = np.full((n, L), -1, np.int32)
        lengths = np.zeros(n, np.int32)
        bar = progress_bar(n, "hierarchical k-means assign", show_progress, unit="vector")
        stack: list[tuple[np.ndarray, tuple[int, ...]]] = [(np.arange(n), ())]
        while stack:
            rows, prefix = stack.pop()
            depth = len(prefix)
            node = tree.get(prefix) if depth < L else None
            if node is None:  # a leaf position or the last level: the path ends here
                lengths[rows] = depth
                bar.update(len(rows))
                continue
            child_codes, C = node
            Xr = X[rows]
            dist = (Xr**2).sum(1)[:, None] - 2 * Xr @ C.T + (C**2).sum(1)[None, :]  # (n_r, m)
            pick = child_codes[dist.argmin(1)]
            codes[rows, depth] = pick
            for code in np.unique(pick):
                stack.append((rows[pick == code], (*prefix, int(code))))
        bar.close()
        return codes, lengths
