"""Item vectors compressed by product quantisation, scored against exact queries.

    pq = PQVectors.fit(x, "PQ16x4")                 # x (N, D) float32, faiss-factory-style spec
    pq = PQVectors.fit(x, "RPQ32x8", groups=g)      # residuals from each group's mean
    s = pq.dot(q, rows, query)                      # q (B, D); candidate rows (M,) of query (M,)

faiss trains the quantiser and encodes (`faiss.ProductQuantizer`). Scoring is asymmetric: the
query stays exact and meets the centroids once, in a (m, 2**nbits) table of partial inner
products; a candidate's score is the sum of m table entries picked by its codes. "RPQ" specs
quantise each vector's residual from the mean vector of its group (IVF-PQ style: gsid-gr's groups
are the items' first GSID codes), which spends the bits on what tells neighbours apart; the
group means (G, D) and one group id per item (uint8/int16) are stored too. faiss's own
search scans whole code arrays, while re-ranking wants the scores of a few hundred given rows
per query, which is one vectorised gather here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from gsid.errors import ArtifactError, GsidError

_SPEC = re.compile(r"^R?PQ(\d+)(?:x(\d+))?$")


def parse_spec(spec: str, dim: int | None = None) -> tuple[int, int]:
    """ "PQ16x4" -> (16, 4) (m sub-quantisers of nbits bits each; nbits 8 by default). An "R"
    in front ("RPQ32x8") asks for residuals from group means (see `is_residual`)."""
    m_ = _SPEC.match(str(spec))
    if not m_:
        raise GsidError(
            f"vector spec {spec!r} is not of the form '[R]PQ<m>' or '[R]PQ<m>x<nbits>' (e.g. "
            f"'PQ16x4', 'RPQ32x8')"
        )
    m, nbits = int(m_.group(1)), int(m_.group(2) or 8)
    if nbits not in (4, 8) or m < 1:
        raise GsidError(f"{spec!r}: nbits must be 4 or 8 and m >= 1")
    if dim is not None and dim % m:
        raise GsidError(f"{spec!r}: m={m} must divide the vector dimension {dim}")
    return m, nbits


def is_residual(spec: str) -> bool:
    return str(spec).startswith("R")


class PQVectors:
    """centroids (m, 2**nbits, D/m) float32 and codes (N, ceil(m * nbits / 8)) uint8; for
    residual PQ also means (G, D) float32 and group (N,) (the group of each vector)."""

    def __init__(
        self,
        centroids: np.ndarray,
        codes: np.ndarray,
        nbits: int,
        means: np.ndarray | None = None,
        group: np.ndarray | None = None,
    ) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.nbits = int(nbits)
        self.means = None if means is None else np.ascontiguousarray(means, dtype=np.float32)
        self.group = None if group is None else _small_ints(group)
        m, ksub, dsub = self.centroids.shape
        bad = ksub != 1 << self.nbits or self.codes.shape[1] != (m * self.nbits + 7) // 8
        if (self.means is None) != (self.group is None):
            bad = True
        elif self.means is not None:
            bad |= self.means.shape[1] != m * dsub or len(self.group) != len(self.codes)
            bad |= bool(len(self.group)) and int(self.group.max()) >= len(self.means)
        if bad:
            raise ArtifactError(
                f"PQ arrays disagree: centroids {self.centroids.shape}, codes "
                f"{self.codes.shape}, nbits {self.nbits}"
                + ("" if self.means is None else f", means {self.means.shape}")
                + "; re-index to rebuild them"
            )

    @property
    def m(self) -> int:
        return self.centroids.shape[0]

    @property
    def spec(self) -> str:
        return f"{'R' if self.means is not None else ''}PQ{self.m}x{self.nbits}"

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        spec: str,
        groups: np.ndarray | None = None,
        seed: int = 0,
        max_train: int = 65536,
    ) -> PQVectors:
        """Train and encode `x`. A residual spec needs `groups` (N,) ints >= 0: each vector
        is quantised as its offset from its group's mean."""
        import faiss

        x = np.ascontiguousarray(x, dtype=np.float32)
        N, D = x.shape
        m, nbits = parse_spec(spec, D)
        if (1 << nbits) > N:
            raise GsidError(f"{spec!r} needs at least {1 << nbits} vectors to train, got {N}")
        means = group = None
        if is_residual(spec):
            if groups is None or len(groups) != N or (N and np.min(groups) < 0):
                raise GsidError(f"{spec!r} (residual PQ) needs a group id >= 0 for each vector")
            group = np.asarray(groups, dtype=np.int64)
            G = int(group.max()) + 1
            means = np.zeros((G, D), np.float32)
            np.add.at(means, group, x)
            means /= np.maximum(np.bincount(group, minlength=G), 1)[:, None]
            x = np.ascontiguousarray(x - means[group])
        pq = faiss.ProductQuantizer(D, m, nbits)
        pq.cp.seed = seed
        train = x
        if max_train < N:
            train = x[np.random.default_rng(seed).choice(N, max_train, replace=False)]
        pq.train(train)
        cents = faiss.vector_to_array(pq.centroids).reshape(m, 1 << nbits, D // m)
        return cls(cents, pq.compute_codes(x), nbits, means, group)

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
        out = self.centroids[np.arange(self.m), sub].reshape(len(rows), -1)
        return out if self.means is None else out + self.means[self.group[rows]]

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
        out = flat[qi[:, None], idx].sum(1)
        if self.means is not None:  # + q . mean of the candidate's group: one (B, G) table
            g = torch.from_numpy(self.group[np.asarray(rows)].astype(np.int64))
            out += (q @ torch.from_numpy(self.means).T)[qi, g]
        return out.numpy()

    def nbytes(self) -> int:
        """Codes plus centroids (and group means and ids): the centroids and means are a fixed
        cost, not per item."""
        extra = 0 if self.means is None else self.means.nbytes + self.group.nbytes
        return int(self.codes.nbytes + self.centroids.nbytes + extra)

    def save(self, directory: Path, stem: str) -> None:
        for name in _ARRAYS:
            value = getattr(self, name)
            if value is not None:
                np.save(directory / f"{stem}_pq_{name}.npy", value)

    @classmethod
    def load(cls, directory: Path, stem: str, spec: str) -> PQVectors:
        _, nbits = parse_spec(spec)
        wanted = _ARRAYS if is_residual(spec) else _ARRAYS[:2]
        try:
            arrays = {
                n: np.load(directory / f"{stem}_pq_{n}.npy", allow_pickle=False) for n in wanted
            }
        except (OSError, ValueError) as e:
            raise ArtifactError(
                f"{directory}: the product-quantised vectors are missing or corrupted ({e}); "
                f"re-index and save the retriever again"
            ) from e
        return cls(nbits=nbits, **arrays)


_ARRAYS = ("centroids", "codes", "means", "group")


def _small_ints(a: np.ndarray) -> np.ndarray:
    """Group ids in the smallest unsigned type that holds them."""
    a = np.asarray(a)
    top = int(a.max()) if a.size else 0
    return a.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64)
