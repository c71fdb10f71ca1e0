"""Residual k-means: the simplest residual quantizer (the 'RQ' of TIGER-style semantic IDs).

    rq = ResidualKMeans(levels=4, codebook_size=128, seed=0).fit(X)     # X: (N, D) float32
    codes = rq.encode(X)                                                 # (N, 4) int32
    X_hat = rq.decode(codes)                                             # (N, D) reconstruction

Level l runs faiss k-means on the residuals left by levels < l; an item's code is its nearest
centroid and the residual subtracts that centroid. Greedy nearest-centroid encoding is what
faiss.ResidualQuantizer does with beam size 1; we keep our own loop because we need per-level
control (codebook sizes, seeds, ranked last-level candidates for collision repair).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._progress import progress
from gsid.errors import ArtifactError, DataValidationError, GsidError, NotFittedError

logger = logging.getLogger(__name__)

KIND = "gsid-residual-kmeans"
FORMAT_VERSION = 1


def as_embeddings(X: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """Check and convert to a C-contiguous (N, D) float32 matrix of finite values."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataValidationError(f"{what} must be a 2-d (N, D) matrix, got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataValidationError(f"{what} are empty (0 rows); pass at least one item")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise DataValidationError(f"{what} row {bad} has NaN or inf values; fix or drop that item")
    return X


def level_sizes(levels: int, codebook_size: int | Sequence[int]) -> list[int]:
    if levels < 1:
        raise GsidError(f"levels must be >= 1, got {levels}")
    sizes = (
        [int(codebook_size)] * levels
        if np.isscalar(codebook_size)
        else [int(k) for k in codebook_size]
    )
    if len(sizes) != levels:
        raise GsidError(f"codebook_size has {len(sizes)} entries for {levels} levels")
    if any(k < 1 for k in sizes):
        raise GsidError(f"codebook sizes must be >= 1, got {sizes}")
    return sizes


def shrink_sizes(sizes: list[int], n: int, on_small: str, what: str) -> list[int]:
    """N < K: k-means cannot place K centroids; shrink K to N (warning) or raise."""
    if on_small not in ("shrink", "error"):
        raise GsidError(f"on_small must be 'shrink' or 'error', got {on_small!r}")
    if all(k <= n for k in sizes):
        return sizes
    if on_small == "error":
        raise DataValidationError(
            f"{what}: {n} items but codebook sizes {sizes}; k-means needs at least as many items "
            f"as codes: lower codebook_size or pass on_small='shrink'"
        )
    new = [min(k, n) for k in sizes]
    msg = f"{what}: only {n} items for codebook sizes {sizes}; shrinking codebooks to {new}"
    warnings.warn(msg, UserWarning, stacklevel=3)
    logger.warning(msg)
    return new


def faiss_kmeans(X: np.ndarray, k: int, niter: int, seed: int, max_points_per_centroid: int):
    """Fitted faiss.Kmeans, seeded; quiet about few points per centroid (our choice, not a bug)."""
    import faiss

    km = faiss.Kmeans(
        X.shape[1],
        k,
        niter=niter,
        seed=seed,
        verbose=False,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=1,
    )
    km.train(X)
    return km


class ResidualKMeans:
    """Residual k-means quantizer: `levels` faiss k-means codebooks fit on successive residuals.

    codebook_size: int or one size per level (4 x 128 default; 3 x 256 works the same).
    niter: k-means iterations per level. max_points_per_centroid: faiss subsamples to
    K * this many points per level (speed). on_small: 'shrink' (warn, use K = N) or 'error'
    when there are fewer items than codes. n_candidates: ranked last-level codes kept for
    collision repair.
    """

    def __init__(
        self,
        levels: int = 4,
        codebook_size: int | Sequence[int] = 128,
        niter: int = 20,
        seed: int = 0,
        max_points_per_centroid: int = 256,
        on_small: str = "shrink",
        n_candidates: int = 16,
    ) -> None:
        self.levels = levels
        self.codebook_size = codebook_size
        self.niter = niter
        self.seed = seed
        self.max_points_per_centroid = max_points_per_centroid
        self.on_small = on_small
        self.n_candidates = n_candidates

    def get_config(self) -> dict:
        cs = self.codebook_size
        return {
            "builder": "rq",
            "levels": self.levels,
            "codebook_size": cs if np.isscalar(cs) else list(cs),
            "niter": self.niter,
            "seed": self.seed,
            "max_points_per_centroid": self.max_points_per_centroid,
            "on_small": self.on_small,
            "n_candidates": self.n_candidates,
        }

    def fit(self, X: np.ndarray, show_progress: bool | None = None) -> ResidualKMeans:
        X = as_embeddings(X)
        sizes = shrink_sizes(
            level_sizes(self.levels, self.codebook_size),
            X.shape[0],
            self.on_small,
            "residual k-means",
        )
        residual = X.copy()
        self.centroids_: list[np.ndarray] = []
        for level in progress(range(self.levels), show_progress, desc="residual k-means"):
            km = faiss_kmeans(
                residual, sizes[level], self.niter, self.seed + level, self.max_points_per_centroid
            )
            C = np.ascontiguousarray(km.centroids, dtype=np.float32)  # (K_l, D)
            _, idx = nearest(C, residual, 1)
            residual -= C[idx[:, 0]]
            self.centroids_.append(C)
            logger.debug(
                "level %d: K=%d, residual MSE %.5f",
                level,
                sizes[level],
                float((residual**2).sum(1).mean()),
            )
        self.codebook_sizes_ = sizes
        return self

    def _check(self) -> None:
        if not hasattr(self, "centroids_"):
            raise NotFittedError("ResidualKMeans is not fitted; call fit(embeddings) first")

    def encode(self, X: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, L) int32 codes (greedy nearest centroid per level)."""
        return self.encode_with_candidates(X, n_candidates=1)[0]

    def encode_with_candidates(
        self, X: np.ndarray, n_candidates: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """codes (N, L), plus the ranked nearest last-level codes (N, C) and their squared
        distances (N, C) — the alternatives that collision repair ('reassign') may use."""
        self._check()
        X = as_embeddings(X)
        c = self.n_candidates if n_candidates is None else n_candidates
        residual = X.copy()
        codes = np.empty((X.shape[0], self.levels), np.int32)
        cand = dist = None
        for level, C in enumerate(self.centroids_):
            k = min(c, C.shape[0]) if level == self.levels - 1 else 1
            d, idx = nearest(C, residual, k)
            codes[:, level] = idx[:, 0]
            residual -= C[idx[:, 0]]
            if level == self.levels - 1:
                cand, dist = idx.astype(np.int32), d
        return codes, cand, dist

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, L) codes -> (N, D) sum of the chosen centroids (codes < 0 contribute nothing)."""
        self._check()
        codes = np.asarray(codes)
        out = np.zeros((codes.shape[0], self.centroids_[0].shape[1]), np.float32)
        for level in range(min(codes.shape[1], self.levels)):
            ok = codes[:, level] >= 0
            out[ok] += self.centroids_[level][codes[ok, level]]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        self._check()
        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            for level, C in enumerate(self.centroids_):
                np.save(tmp / f"centroids_{level}.npy", C)
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                config=self.get_config(),
                codebook_sizes=self.codebook_sizes_,
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResidualKMeans:
        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        cfg = dict(m["config"])
        cfg.pop("builder", None)
        rq = cls(**cfg)
        try:
            rq.centroids_ = [
                np.load(path / f"centroids_{level}.npy", allow_pickle=False)
                for level in range(rq.levels)
            ]
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{path}: centroids unreadable ({e}); refit and save again") from e
        rq.codebook_sizes_ = [int(k) for k in m["codebook_sizes"]]
        if [C.shape[0] for C in rq.centroids_] != rq.codebook_sizes_:
            raise ArtifactError(
                f"{path}: centroid shapes {[C.shape for C in rq.centroids_]} do not match "
                f"codebook sizes {rq.codebook_sizes_}; refit and save again"
            )
        return rq


def nearest(C: np.ndarray, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of C for each row of X (exact L2): distances (N, k), indices (N, k)."""
    import faiss

    index = faiss.IndexFlatL2(C.shape[1])
    index.add(C)
    d, idx = index.search(X, k)
    return d, idx
