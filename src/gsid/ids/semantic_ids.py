"""The one artifact every ID builder produces: item ids, a code matrix, per-item lengths.

    ids = SemanticIDs.from_codes(item_ids, codes)          # (N,) str, (N, L) int
    ids.code_of("sku-17")                                   # (17, 3, 88, 41)
    ids.items_with_prefix([17, 3])                          # every item under 17-3, binary search
    ids.save("out/ids"); SemanticIDs.load("out/ids")

Variable-length IDs are first class: `codes[i, lengths[i]:]` is -1. Items sorted by code make
every prefix a contiguous range of the sorted order (padding -1 sorts first, so a short ID comes
right before its own extensions); prefix lookups are binary searches over that order and the
trie for constrained decoding is built from `sorted_codes()`.

On disk (a directory written atomically):
    manifest.json      kind "gsid-semantic-ids", format_version, n_items, n_levels,
                       codebook_sizes, config, provenance
    codes.npy          (N, L) int32, -1 past each item's length
    lengths.npy        (N,) int32 in 1..L
    item_ids.parquet   one column `item_id` (str), row i belongs to codes[i]
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.errors import ArtifactError, DataValidationError

KIND = "gsid-semantic-ids"
FORMAT_VERSION = 1
PAD = -1


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gsid_version() -> str:
    import gsid

    return gsid.__version__


@dataclass(eq=False)
class SemanticIDs:
    """Semantic IDs of a catalogue. Construct with `from_codes` or a builder (`build_ids`).

    item_ids: (N,) object array of str, unique.
    codes: (N, L) int32; entries at positions >= lengths[i] are -1.
    lengths: (N,) int32 in 1..L.
    codebook_sizes: codebook size per level (len L); every code at level l is in [0, size_l).
    config: builder name and its configuration (and derivations such as truncate/drop_level).
    provenance: encoder, dataset, created (UTC), gsid version, collision statistics, ...
    """

    item_ids: np.ndarray
    codes: np.ndarray
    lengths: np.ndarray
    codebook_sizes: list[int]
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(
            [str(x) for x in np.asarray(self.item_ids).ravel()], dtype=object
        )
        self.codes = np.asarray(self.codes)
        if self.codes.ndim != 2:
            raise DataValidationError(
                f"codes must be a 2-d (N, L) integer matrix, got shape {self.codes.shape}; "
                f"reshape a single level with codes[:, None]"
            )
        if self.codes.size and not np.issubdtype(self.codes.dtype, np.integer):
            raise DataValidationError(f"codes must be integers, got dtype {self.codes.dtype}")
        self.codes = self.codes.astype(np.int32, copy=True)
        self.lengths = np.asarray(self.lengths).astype(np.int32, copy=True).ravel()
        self.codebook_sizes = [int(k) for k in self.codebook_sizes]
        self.config = dict(self.config)
        self.provenance = dict(self.provenance)
        self.provenance.setdefault("created", utc_now())
        self.provenance.setdefault("gsid_version", _gsid_version())
        self._validate()
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None
        self._index: dict[str, int] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_codes(
        cls,
        item_ids: Sequence[str] | np.ndarray,
        codes: np.ndarray,
        lengths: np.ndarray | None = None,
        codebook_sizes: Sequence[int] | None = None,
        config: dict | None = None,
        provenance: dict | None = None,
    ) -> SemanticIDs:
        """Build from a code matrix. `lengths` defaults to the count of non-negative codes per
        row (padding must be trailing); `codebook_sizes` defaults to max code + 1 per level."""
        codes = np.asarray(codes)
        if codes.ndim == 1:
            codes = codes[:, None]
        if lengths is None:
            lengths = (codes >= 0).sum(axis=1)
        if codebook_sizes is None:
            codebook_sizes = [
                int(codes[:, j].max()) + 1 if codes.shape[0] else 1 for j in range(codes.shape[1])
            ]
            codebook_sizes = [max(k, 1) for k in codebook_sizes]
        return cls(
            item_ids=np.asarray(item_ids, dtype=object),
            codes=codes,
            lengths=np.asarray(lengths),
            codebook_sizes=list(codebook_sizes),
            config=dict(config or {}),
            provenance=dict(provenance or {}),
        )

    def _validate(self) -> None:
        n, L = self.codes.shape
        if L < 1:
            raise DataValidationError("codes need at least one level (got L=0)")
        if len(self.item_ids) != n:
            raise DataValidationError(
                f"{len(self.item_ids)} item ids but {n} code rows; they must align row by row"
            )
        if self.lengths.shape != (n,):
            raise DataValidationError(f"lengths must have shape ({n},), got {self.lengths.shape}")
        if len(self.codebook_sizes) != L:
            raise DataValidationError(
                f"codebook_sizes has {len(self.codebook_sizes)} entries for {L} levels; give one "
                f"size per level"
            )
        if any(k < 1 for k in self.codebook_sizes):
            raise DataValidationError(f"codebook sizes must be >= 1, got {self.codebook_sizes}")
        if n == 0:
            return
        if self.lengths.min() < 1 or self.lengths.max() > L:
            bad = int(np.flatnonzero((self.lengths < 1) | (self.lengths > L))[0])
            raise DataValidationError(
                f"lengths must be in 1..{L}; item {self.item_ids[bad]!r} has length "
                f"{int(self.lengths[bad])}"
            )
        pos = np.arange(L)[None, :]
        inside = pos < self.lengths[:, None]  # (N, L)
        if (self.codes[~inside] != PAD).any():
            bad = int(np.flatnonzero(((self.codes != PAD) & ~inside).any(axis=1))[0])
            raise DataValidationError(
                f"codes past an item's length must be {PAD}; item {self.item_ids[bad]!r} has "
                f"length {int(self.lengths[bad])} and codes {self.codes[bad].tolist()}"
            )
        sizes = np.asarray(self.codebook_sizes)[None, :]
        out = inside & ((self.codes < 0) | (self.codes >= sizes))
        if out.any():
            i, j = (int(v) for v in np.argwhere(out)[0])
            raise DataValidationError(
                f"item {self.item_ids[i]!r} has code {int(self.codes[i, j])} at level {j}, "
                f"outside [0, {self.codebook_sizes[j]}); raise codebook_sizes[{j}] or fix the codes"
            )
        uniq, counts = np.unique(self.item_ids.astype(str), return_counts=True)
        if (counts > 1).any():
            raise DataValidationError(
                f"item ids must be unique; {uniq[counts > 1][:5].tolist()} appear more than once"
            )

    # ------------------------------------------------------------------ basics
    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return (
            f"SemanticIDs(n_items={self.n_items}, n_levels={self.n_levels}, "
            f"codebook_sizes={self.codebook_sizes}, builder={self.config.get('builder')!r})"
        )

    @property
    def order_(self) -> np.ndarray:
        """(N,) item indices sorted lexicographically by code; -1 padding sorts first. Ties
        (colliding IDs) keep their item order, so the order is deterministic."""
        if self._order is None:
            # lexsort's last key is the primary one: level 0 must come last. Stable.
            self._order = np.lexsort(self.codes.T[::-1]) if self.n_items else np.zeros(0, np.int64)
            self._sorted = self.codes[self._order]
            self._sorted.flags.writeable = False  # shared with callers of sorted_codes()
            self._order.flags.writeable = False
        return self._order

    def index_of(self, item_id: str) -> int:
        """Row of `item_id`; KeyError naming the id when unknown."""
        if self._index is None:
            self._index = {s: i for i, s in enumerate(self.item_ids)}
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise KeyError(
                f"item {item_id!r} has no semantic ID in this artifact ({self.n_items} items, "
                f"built by {self.config.get('builder')!r}); rebuild the IDs with this item"
            ) from None

    def code_of(self, item_id: str) -> tuple[int, ...]:
        i = self.index_of(item_id)
        return tuple(int(c) for c in self.codes[i, : self.lengths[i]])

    def codes_of(self, item_ids: Iterable[str]) -> list[tuple[int, ...]]:
        return [self.code_of(x) for x in item_ids]

    # ------------------------------------------------------------------ prefix lookup
    def prefix_range(self, prefix: Sequence[int]) -> tuple[int, int]:
        """[lo, hi) of the items whose ID starts with `prefix`, in the sorted order (`order_`).

        Within a range that shares the first l codes, column l is sorted, so each level narrows
        the range with one binary search (exact for any codebook size, no key packing)."""
        prefix = [int(c) for c in prefix]
        if len(prefix) > self.n_levels:
            raise ValueError(
                f"prefix {prefix} has {len(prefix)} codes but IDs have at most {self.n_levels} levels"
            )
        if any(c < 0 for c in prefix):
            raise ValueError(f"prefix codes must be >= 0, got {prefix}")
        self.order_  # noqa: B018 -- builds the sorted matrix
        sc = self._sorted
        lo, hi = 0, self.n_items
        for level, c in enumerate(prefix):
            col = sc[lo:hi, level]
            lo, hi = (
                lo + int(np.searchsorted(col, c, "left")),
                lo + int(np.searchsorted(col, c, "right")),
            )
            if lo >= hi:
                return lo, lo
        return lo, hi

    def items_with_prefix(self, prefix: Sequence[int]) -> np.ndarray:
        """Item ids whose ID starts with `prefix` (the whole ID counts as its own prefix),
        in code order."""
        lo, hi = self.prefix_range(prefix)
        return self.item_ids[self.order_[lo:hi]]

    def sorted_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """codes (N, L), lengths (N,), item_ids (N,) in lexicographic code order."""
        order = self.order_
        return self._sorted, self.lengths[order], self.item_ids[order]

    # ------------------------------------------------------------------ views
    def id_strings(self, sep: str = "-") -> list[str]:
        return [
            sep.join(str(int(c)) for c in row[:n])
            for row, n in zip(self.codes, self.lengths, strict=True)
        ]

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(inverse, counts): group index of each item's full ID (groups numbered in code
        order) and the size of each group. Equal IDs are neighbours in the sorted order."""
        if self.n_items == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = self.order_
        sc = self._sorted
        new_group = np.ones(self.n_items, bool)
        new_group[1:] = (sc[1:] != sc[:-1]).any(axis=1)
        gid_sorted = np.cumsum(new_group) - 1
        inverse = np.empty(self.n_items, np.int64)
        inverse[order] = gid_sorted
        counts = np.bincount(gid_sorted)
        return inverse, counts

    def collision_rate(self) -> float:
        """Share of items whose full ID is shared with at least one other item."""
        if self.n_items == 0:
            return 0.0
        inverse, counts = self.groups()
        return float((counts[inverse] > 1).mean())

    def n_unique(self) -> int:
        return len(self.groups()[1])

    def is_prefix_free(self) -> bool:
        """True when no full ID is a strict prefix of another item's ID, i.e. every ID ends at
        a leaf of the code trie (what a constrained decoder wants). Since a short ID sorts
        right before its extensions, checking neighbours in the sorted order is enough."""
        if self.n_items < 2:
            return True
        self.order_  # noqa: B018
        sc, sl = self._sorted, self.lengths[self._order]
        a, b = sc[:-1], sc[1:]
        la, lb = sl[:-1], sl[1:]
        inside = np.arange(self.n_levels)[None, :] < la[:, None]
        same_prefix = ((a == b) | ~inside).all(axis=1)
        return not bool((same_prefix & (lb > la)).any())

    def to_frame(self) -> pd.DataFrame:
        """One row per item: item_id, id (string), length, c0..c{L-1} (-1 = none)."""
        data: dict[str, Any] = {
            "item_id": self.item_ids,
            "id": self.id_strings(),
            "length": self.lengths,
        }
        for j in range(self.n_levels):
            data[f"c{j}"] = self.codes[:, j]
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ derived artifacts
    def derive(
        self,
        codes: np.ndarray,
        lengths: np.ndarray,
        codebook_sizes: Sequence[int],
        step: dict,
        item_ids: np.ndarray | None = None,
        provenance: dict | None = None,
    ) -> SemanticIDs:
        """A new artifact from this one; `step` is appended to config["derived"] so the history
        of repairs (truncate, drop_level, collision resolution, ...) stays on record."""
        config = dict(self.config)
        config["derived"] = [*self.config.get("derived", []), dict(step)]
        prov = dict(self.provenance)
        prov["created"] = utc_now()
        prov.update(provenance or {})
        return SemanticIDs(
            item_ids=self.item_ids if item_ids is None else item_ids,
            codes=codes,
            lengths=lengths,
            codebook_sizes=list(codebook_sizes),
            config=config,
            provenance=prov,
        )

    def extend(
        self, item_ids: Sequence[str], codes: np.ndarray, unique: bool = True
    ) -> SemanticIDs:
        """Append new items with their base codes (M, L0), L0 <= n_levels, leaving every
        existing ID as it is (a growing catalogue: items already indexed keep their codes).
        With `unique`, a new item whose base code is already taken gets the next free suffix
        at level L0 (as collisions="append" does; an old item alone on that code keeps its
        shorter ID, so the IDs may stop being prefix-free); without, items may share IDs."""
        codes = np.asarray(codes, np.int32)
        M, L0 = codes.shape
        if self.n_levels < L0:
            raise DataValidationError(f"new codes have {L0} levels, the IDs {self.n_levels}")
        rows = np.full((M, max(self.n_levels, L0 + int(unique))), -1, np.int32)
        rows[:, :L0] = codes
        lengths = np.full(M, L0, np.int32)
        if unique:
            taken: dict[tuple[int, ...], int] = {}  # base code -> next free suffix
            for code, length in zip(self.codes.tolist(), self.lengths.tolist(), strict=True):
                key = tuple(code[:L0])
                nxt = code[L0] + 1 if length > L0 else 1
                taken[key] = max(taken.get(key, 0), nxt)
            for i, code in enumerate(codes.tolist()):
                key = tuple(code)
                if key in taken:
                    rows[i, L0] = taken[key]
                    lengths[i] = L0 + 1
                    taken[key] += 1
                else:
                    taken[key] = 1
        width = rows.shape[1]
        old = np.full((self.n_items, width), -1, np.int32)
        old[:, : self.n_levels] = self.codes
        sizes = list(self.codebook_sizes) + [1] * (width - self.n_levels)
        for level in range(width):
            top = int(rows[:, level].max(initial=-1)) + 1
            sizes[level] = max(sizes[level], top)
        return self.derive(
            np.concatenate([old, rows]),
            np.concatenate([self.lengths, lengths]),
            sizes,
            {"op": "extend", "n_items": M},
            item_ids=np.concatenate([self.item_ids, np.asarray(item_ids, dtype=object)]),
        )

    def truncate(self, n_levels: int) -> SemanticIDs:
        """Keep the first `n_levels` levels (IDs may collide afterwards: see collision_rate)."""
        if not 1 <= n_levels <= self.n_levels:
            raise ValueError(f"n_levels must be in 1..{self.n_levels}, got {n_levels}")
        return self.derive(
            self.codes[:, :n_levels],
            np.minimum(self.lengths, n_levels),
            self.codebook_sizes[:n_levels],
            {"op": "truncate", "n_levels": int(n_levels)},
        )

    def drop_level(self, level: int) -> SemanticIDs:
        """Remove one level (e.g. a dominant 'routing' level of a sand-glass). Items that have a
        code at that level get one code shorter; IDs may collide afterwards."""
        L = self.n_levels
        if not 0 <= level < L:
            raise ValueError(f"level must be in 0..{L - 1}, got {level}")
        if L == 1:
            raise ValueError("cannot drop the only level of a one-level ID")
        has = self.lengths > level
        new_lengths = self.lengths - has.astype(np.int32)
        if (new_lengths < 1).any():
            bad = self.item_ids[new_lengths < 1][:5].tolist()
            raise ValueError(
                f"dropping level {level} would leave items {bad} without a code (their ID has "
                f"length 1); drop a deeper level or append codes first"
            )
        keep = [j for j in range(L) if j != level]
        return self.derive(
            self.codes[:, keep],
            new_lengths,
            [self.codebook_sizes[j] for j in keep],
            {"op": "drop_level", "level": int(level)},
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write atomically; `force` lets it replace another kind of gsid artifact."""
        path = Path(path)
        with atomic_dir(path, KIND, force=force) as tmp:
            np.save(tmp / "codes.npy", self.codes)
            np.save(tmp / "lengths.npy", self.lengths)
            pq.write_table(
                pa.table({"item_id": pa.array(self.item_ids.tolist(), type=pa.string())}),
                tmp / "item_ids.parquet",
            )
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                n_items=self.n_items,
                n_levels=self.n_levels,
                codebook_sizes=self.codebook_sizes,
                config=self.config,
                provenance=self.provenance,
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SemanticIDs:
        path = Path(path)
        manifest = read_manifest(path, KIND, FORMAT_VERSION)
        fix = "rebuild the IDs (gsid ids build) or restore the directory from a backup"
        for name in ("codes.npy", "lengths.npy", "item_ids.parquet"):
            if not (path / name).is_file():
                raise ArtifactError(f"{path}: {name} is missing; {fix}")
        try:
            codes = np.load(path / "codes.npy", allow_pickle=False)
            lengths = np.load(path / "lengths.npy", allow_pickle=False)
            item_ids = pq.read_table(path / "item_ids.parquet").column("item_id").to_pylist()
        except (ValueError, OSError, KeyError, pa.ArrowException) as e:
            raise ArtifactError(f"{path} is corrupted ({type(e).__name__}: {e}); {fix}") from e
        n, L = manifest.get("n_items"), manifest.get("n_levels")
        if codes.ndim != 2 or codes.shape != (n, L) or lengths.shape != (n,) or len(item_ids) != n:
            raise ArtifactError(
                f"{path}: shapes do not match the manifest (manifest n_items={n}, n_levels={L}; "
                f"codes {codes.shape}, lengths {lengths.shape}, {len(item_ids)} item ids); {fix}"
            )
        if any(x is None for x in item_ids):
            raise ArtifactError(f"{path}: item_ids.parquet has missing ids; {fix}")
        try:
            return cls(
                item_ids=np.asarray(item_ids, dtype=object),
                codes=codes,
                lengths=lengths,
                codebook_sizes=list(manifest.get("codebook_sizes", [])),
                config=manifest.get("config", {}),
                provenance=manifest.get("provenance", {}),
            )
        except DataValidationError as e:
            raise ArtifactError(f"{path} holds inconsistent semantic IDs: {e}; {fix}") from e
