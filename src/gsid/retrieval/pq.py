"""Item vectors compressed by product quantisation, scored against exact queries.

    pq = PQVectors.fit(x, "PQ16x4")                 # x (N, D) float32, faiss-factory-style spec
    s = pq.dot(q, rows, query)                      # q (B, D); candidate rows (M,) of query (M,)

faiss trains the quantiser and encodes (`faiss.ProductQuantizer`). Scoring is asymmetric: the
query stays exact and meets the centroids once, in a (m, 2**nbits) table of partial inner
products; a candidate's score is the sum of m table entries picked by its codes. faiss's own
search scans whole code arrays, while re-ranking wants the scores of a few hundred given rows
per query, which is one vectorised gather here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from gsid.errors import ArtifactError, GsidError

_SPEC = re.compile(r"^PQ(\d+)(?:x(\d+))?$")


def parse_spec(spec: str, dim: int | None = None) -> tuple[int, int]:
    """ "PQ16x4" -> (16, 4) (m sub-quantisers of nbits bits each; nbits 8 by default)."""
    m_ = _SPEC.match(str(spec))
    if not m_:
        raise GsidError(
            f"vector spec {spec!r} is not of the form 'PQ<m>' or 'PQ<m>x<nbits>' (e.g. 'PQ16x4')"
        )
    m, nbits = int(m_.group(1)), int(m_.group(2) or 8)
    if nbits not in (4, 8) or m < 1:
        raise GsidError(f"{spec!r}: nbits must be 4 or 8 and m >= 1")
    if dim is not None and dim % m:
        raise GsidError(f"{spec!r}: m={m} must divide the vector dimension {dim}")
    return m, nbits


class PQVectors:
    """centroids (m, 2**nbits, D/m) float32 and codes (N, ceil(m * nbits / 8)) uint8."""

    def __init__(self, centroids: np.ndarray, codes: np.ndarray, nbits: int) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.nbits = int(nbits)
        m, ksub, _ = self.centroids.shape
        if ksub != 1 << self.nbits or self.codes.shape[1] != (m * self.nbits + 7) // 8:
            raise ArtifactError(
                f"PQ arrays disagree: centroids {self.centroids.shape}, codes "
                f"{self.codes.shape}, nbits {self.nbits}; re-index to rebuild them"
            )

    @property
    def m(self) -> int:
        return self.centroids.shape[0]

    @property
    def spec(self) -> str:
        return f"PQ{self.m}x{self.nbits}"

    @classmethod
    def fit(cls, x: np.ndarray, spec: str, seed: int = 0, max_train: int = 65536) -> PQVectors:
        import faiss

        x = np.ascontiguousarray(x, dtype=np.float32)
        N, D = x.shape
        m, nbits = parse_spec(spec, D)
        if N < 1 << nbits:
            raise GsidError(f"{spec!r} needs at least {1 << nbits} vectors to train, got {N}")
        pq = faiss.ProductQuantizer(D, m, nbits)
        pq.cp.seed = seed
        train = x
        if N > max_train:
            train = x[np.random.default_rng(seed).choice(N, max_train, replace=False)]
        pq.train(train)
        cents = faiss.vector_to_array(pq.centroids).reshape(m, 1 << nbits, D // m)
        return cls(cents, pq.compute_codes(x), nbits)

    def sub_codes(self, rows: np.ndarray) -> np.ndarray:
        """(M,) rows -> (M, m) centroid index per sub-quantiser. faiss packs 4-bit codes two per
        byte, the first in the low nibble."""
        c = self.codes[rows]
        if self.nbits == 8:
            return c
        out = np.empty((len(rows), 2 * c.shape[1]), np.uint8)
        out[:, 0::2], out[:, 1::2] = c & 15, c >> 4
        return out[:, : self.m]

    def decode(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Reconstructed vectors (M, D) (every item when rows is None)."""
        rows = np.arange(len(self.codes)) if rows is None else np.asarray(rows)
        sub = self.sub_codes(rows).astype(np.int64)  # (M, m)
        return self.centroids[np.arange(self.m), sub].reshape(len(rows), -1)

    def dot(self, q: np.ndarray | torch.Tensor, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Inner product of each candidate's reconstruction with its query's exact vector: q
        (B, D), rows (M,) item rows, query (M,) row of q -> (M,) float32."""
        q = torch.as_tensor(np.asarray(q, dtype=np.float32))
        B = q.shape[0]
        cents = torch.from_numpy(self.centroids)  # (m, k, d)
        lut = torch.einsum("bmd,mkd->bmk", q.view(B, self.m, -1), cents)  # (B, m, k)
        sub = torch.from_numpy(self.sub_codes(np.asarray(rows)).astype(np.int64))  # (M, m)
        qi = torch.from_numpy(np.asarray(query, dtype=np.int64))
        ksub = 1 << self.nbits
        flat = lut.reshape(B, -1)  # (B, m*k): entry j*k + c is sub-quantiser j, centroid c
        idx = sub + torch.arange(self.m) * ksub  # (M, m)
        return flat[qi[:, None], idx].sum(1).numpy()

    def nbytes(self) -> int:
        """Codes plus centroids (the centroids are a fixed cost, not per item)."""
        return int(self.codes.nbytes + self.centroids.nbytes)

    def save(self, directory: Path, stem: str) -> None:
        np.save(directory / f"{stem}_pq_codes.npy", self.codes)
        np.save(directory / f"{stem}_pq_centroids.npy", self.centroids)

    @classmethod
    def load(cls, directory: Path, stem: str, spec: str) -> PQVectors:
        _, nbits = parse_spec(spec)
        try:
            codes = np.load(directory / f"{stem}_pq_codes.npy", allow_pickle=False)
            cents = np.load(directory / f"{stem}_pq_centroids.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ArtifactError(
                f"{directory}: the product-quantised vectors are missing or corrupted ({e}); "
                f"re-index and save the retriever again"
            ) from e
        return cls(cents, codes, nbits)
