"""Query-level splits and head/torso/tail buckets.

Splits are decided per *normalised query string*, by a seeded hash, so a query string never
sits in two splits and adding queries later does not move existing ones.

Buckets (the rule, configurable through BucketRule):
- method "volume" (default): sort queries by frequency, most frequent first; head = the
  queries that together make the first `cuts[0]` share of all traffic (sum of frequencies),
  torso = up to `cuts[1]`, tail = the rest. Ties go to the same bucket as the first query of
  their frequency, so equal-frequency queries are never split between buckets.
- method "rank": the same, but the cuts are shares of the number of distinct queries.
Frequency is the summed log weight of a query (clicks, purchases) when there is a log, else the
number of judged items of the query, else 1.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from gsid.data.normalize import normalize_text
from gsid.data.schema import SPLITS

BUCKETS = ("head", "torso", "tail")


@dataclass(frozen=True)
class BucketRule:
    method: str = "volume"
    cuts: tuple[float, float] = (1 / 3, 2 / 3)

    def __post_init__(self) -> None:
        if self.method not in ("volume", "rank"):
            raise ValueError(f"bucket method must be 'volume' or 'rank', got {self.method!r}")
        a, b = self.cuts
        if not 0 < a < b < 1:
            raise ValueError(f"bucket cuts must satisfy 0 < head < torso < 1, got {self.cuts}")

    def to_dict(self) -> dict:
        return {"method": self.method, "cuts": list(self.cuts)}

    @classmethod
    def from_dict(cls, d: dict) -> BucketRule:
        return cls(method=d["method"], cuts=tuple(d["cuts"]))

    @classmethod
    def parse(cls, spec: str) -> BucketRule:
        """'volume:0.33,0.66' or 'rank:0.1,0.5'."""
        try:
            method, cuts = spec.split(":")
            a, b = (float(x) for x in cuts.split(","))
        except ValueError as e:
            raise ValueError(
                f"bucket rule {spec!r} is not of the form METHOD:HEAD,TORSO, e.g. 'volume:0.33,0.66'"
            ) from e
        return cls(method=method, cuts=(a, b))


def assign_buckets(frequency: np.ndarray, rule: BucketRule) -> np.ndarray:
    freq = np.asarray(frequency, dtype=np.float64)
    n = len(freq)
    out = np.full(n, "tail", dtype=object)
    if n == 0:
        return out
    order = np.argsort(-freq, kind="stable")
    mass = freq[order] if rule.method == "volume" else np.ones(n)
    # share of mass strictly before each query in frequency order
    before = (np.cumsum(mass) - mass) / max(mass.sum(), 1e-12)
    # ties: every query takes the 'before' share of the first query with its frequency
    f_sorted = freq[order]
    first_of_value = np.r_[0, np.flatnonzero(np.diff(f_sorted)) + 1]
    run_id = np.cumsum(np.r_[1, (np.diff(f_sorted) != 0).astype(int)]) - 1
    before = before[first_of_value][run_id]
    labels = np.where(
        before < rule.cuts[0], "head", np.where(before < rule.cuts[1], "torso", "tail")
    )
    out[order] = labels
    return out


def hash_split(query: str, fractions: tuple[float, float, float], seed: int) -> str:
    """Deterministic split of one query string: the same string always lands in the same split."""
    h = hashlib.blake2b(f"{seed}\x00{normalize_text(query)}".encode(), digest_size=8)
    u = int.from_bytes(h.digest(), "little") / 2**64
    a, b, _ = fractions
    return SPLITS[0] if u < a else SPLITS[1] if u < a + b else SPLITS[2]


def check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    if (
        len(fractions) != 3
        or not all(math.isfinite(f) and f >= 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}"
        )
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]
