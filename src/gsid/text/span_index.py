"""A suffix-array index over the token ids of the catalogue's titles: which spans (token n-grams)
occur, how often, which tokens may follow a span, and which items contain it.

    index = SpanIndex.build(token_lists)            # one list of token ids per item
    index.count([[17, 3], [9]])                     # (2,) occurrences of each n-gram
    lo, hi = index.narrow(lo, hi, depth, tokens)    # (B,) intervals, one token further each
    toks, counts = index.next_tokens(lo, hi, depth) # the distinct next tokens of one interval
    items, pos = index.locate([17, 3])              # the items (and offsets) containing it
    index.save("runs/spans"); SpanIndex.load("runs/spans")   # memory-mapped .npy files

Layout. The titles' tokens are concatenated with a sentinel after every title
(`text = t_0 # t_1 # ... t_{N-1} #`, `#` = the largest value of the token dtype, never a real
token), so no n-gram crosses two titles; `sa` is the suffix array of `text` and `starts` the
offset of every title in `text`. The suffix array comes from a library, never a hand-written
sort: pydivsufsort's libdivsufsort (C, the default) or, with `backend="tokengrams"` (the
`gsid[tokengrams]` extra), tokengrams' Rust builder (multi-threaded); both give the same array.
The suffixes that begin with a span P form one contiguous interval [lo, hi) of `sa`, and
within it `text[sa[i] + len(P)]` is sorted: adding one token is two binary searches inside
the interval, so a beam keeps its (lo, hi) and narrows it one token per step, never re-walking
its prefix. `narrow` bisects all beams at once (numpy, ~log2(hi - lo) vectorised steps).

Bytes: int32 `sa` + uint16 `text` (uint32 for vocabularies >= 65,535) = 6 bytes per token,
+ 4 per title (`starts`) + a first-token table of 8 bytes per vocabulary id.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.errors import ArtifactError, DataValidationError, GsidError

BACKENDS = ("divsufsort", "tokengrams")
KIND = "gsid-span-index"
FORMAT_VERSION = 1
_FILES = ("text.npy", "sa.npy", "starts.npy", "first.npy")


def _suffix_array(text: np.ndarray, backend: str) -> np.ndarray:
    """(T,) int32 suffix array of an integer text (uint16 or uint32 tokens)."""
    if backend == "divsufsort":
        from pydivsufsort import divsufsort

        return divsufsort(text).astype(np.int32, copy=False)  # C; integer alphabet
    try:
        import tokengrams
    except ImportError as e:
        raise GsidError(
            "the tokengrams span index backend needs the tokengrams package: "
            "pip install 'gsid[tokengrams]', or use backend='divsufsort'"
        ) from e
    # tokengrams builds from a token file into a file of u64 suffix offsets
    with tempfile.TemporaryDirectory(prefix="gsid-spans-") as tmp:
        tokens, table = os.path.join(tmp, "tokens.bin"), os.path.join(tmp, "table.bin")
        text.astype(text.dtype.newbyteorder("<"), copy=False).tofile(tokens)
        vocab = 2**16 if text.dtype == np.uint16 else 2**32
        with _quiet_stdout():  # its builder prints a progress line whatever `verbose` says
            tokengrams.MemmapIndex.build(tokens, table, vocab=vocab, verbose=False)
        return np.fromfile(table, np.dtype("<u8")).astype(np.int32)


@contextlib.contextmanager
def _quiet_stdout():
    """Send what native code writes to file descriptor 1 to /dev/null meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class SpanIndex:
    """Suffix array over sentinel-separated token-id titles. Build with `SpanIndex.build`."""

    def __init__(
        self, text: np.ndarray, sa: np.ndarray, starts: np.ndarray, first: np.ndarray
    ) -> None:
        # np.asarray: memory-mapped arrays as plain ndarray views (np.memmap's per-slice
        # Python overhead is most of a small lookup's cost)
        self.text = np.asarray(text)  # (T,) uint16/uint32 tokens, sentinel after every title
        self.sa = np.asarray(sa)  # (T,) int32 suffix array of text
        self.starts = np.asarray(starts)  # (N,) int64 offset of each title in text
        self.first = np.asarray(first)  # (V + 1,) int64: tokens t start sa[first[t]:first[t+1]]
        self.sentinel = int(np.iinfo(text.dtype).max)
        self.vocab_size = len(first) - 1
        self._wide: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}  # see children
        self._owner: np.ndarray | None = None  # see suffix_segments

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        token_lists: Sequence[Sequence[int]],
        vocab_size: int | None = None,
        backend: str = "divsufsort",
    ) -> SpanIndex:
        """Index one token-id sequence per item (item i = row i); `backend` builds the suffix
        array: "divsufsort" or "tokengrams". Raises DataValidationError on an empty catalogue
        or when every title is empty."""
        if backend not in BACKENDS:
            raise GsidError(f"span index backend {backend!r} is unknown; choose one of {BACKENDS}")
        n = len(token_lists)
        if n == 0:
            raise DataValidationError(
                "the span index needs at least one item: the catalogue is empty"
            )
        lengths = np.fromiter((len(t) for t in token_lists), np.int64, n)
        if lengths.sum() == 0:
            raise DataValidationError(
                f"all {n} titles tokenise to nothing: the span index would be empty; check the "
                f"title column and the tokenizer (its vocabulary must cover the titles)"
            )
        flat = np.fromiter((t for toks in token_lists for t in toks), np.int64, int(lengths.sum()))
        if flat.min() < 0:
            raise DataValidationError(f"token ids must be >= 0, found {int(flat.min())}")
        top = int(flat.max()) + 1 if vocab_size is None else int(vocab_size)
        if flat.max() >= top:
            raise DataValidationError(f"token id {int(flat.max())} >= vocab_size {top}")
        dtype = np.uint16 if top < np.iinfo(np.uint16).max else np.uint32
        sentinel = np.iinfo(dtype).max
        starts = np.zeros(n, np.int64)
        starts[1:] = np.cumsum(lengths + 1)[:-1]
        text = np.full(int(lengths.sum()) + n, sentinel, dtype)
        # position of each token: its title's start + its offset inside the title
        offs = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        text[np.repeat(starts, lengths) + offs] = flat
        if len(text) > np.iinfo(np.int32).max:
            raise GsidError(f"{len(text)} tokens: more than an int32 suffix array holds")
        sa = _suffix_array(text, backend)
        # first-token table: the interval of every single token (depth 0 is the widest)
        head = text[sa]
        first = np.searchsorted(head, np.arange(top + 1), side="left").astype(np.int64)
        return cls(text, sa, starts, first)

    # ------------------------------------------------------------------ sizes
    @property
    def n_items(self) -> int:
        return len(self.starts)

    @property
    def n_tokens(self) -> int:
        """Real title tokens (sentinels excluded)."""
        return len(self.text) - self.n_items

    def nbytes(self) -> int:
        return int(self.text.nbytes + self.sa.nbytes + self.starts.nbytes + self.first.nbytes)

    # ------------------------------------------------------------------ intervals
    def root(self, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(n,) intervals of the empty span: every suffix that starts with a real token."""
        return np.zeros(n, np.int64), np.full(n, self.first[-1], np.int64)

    def _column(self, idx: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """text[sa[idx] + depth], the sentinel past the end (int64)."""
        pos = self.sa[idx].astype(np.int64) + depth
        out = np.full(len(pos), self.sentinel, np.int64)
        ok = pos < len(self.text)
        out[ok] = self.text[pos[ok]]
        return out

    def _bound(self, lo, hi, depth, tok, right: bool) -> np.ndarray:
        """Vectorised bisection: the first i in [lo, hi) with column(i) > tok (right) or
        >= tok (left). All arrays (B,)."""
        lo, hi = lo.copy(), hi.copy()
        active = lo < hi
        while active.any():
            a = np.flatnonzero(active)
            mid = (lo[a] + hi[a]) // 2
            col = self._column(mid, depth[a])
            go_right = col <= tok[a] if right else col < tok[a]
            lo[a[go_right]] = mid[go_right] + 1
            hi[a[~go_right]] = mid[~go_right]
            active[a] = lo[a] < hi[a]
        return lo

    def narrow(
        self, lo: np.ndarray, hi: np.ndarray, depth: np.ndarray | int, tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Intervals of span + tokens[b] for B spans of length depth[b] with intervals
        [lo[b], hi[b]). An empty result has lo == hi (the extended span does not occur)."""
        lo = np.asarray(lo, np.int64)
        hi = np.asarray(hi, np.int64)
        tok = np.asarray(tokens, np.int64)
        depth = np.broadcast_to(np.asarray(depth, np.int64), lo.shape)
        bad = (tok < 0) | (tok >= self.vocab_size)
        # depth 0 intervals of the whole index come from the first-token table: O(1)
        top = (depth == 0) & (lo == 0) & (hi == self.first[-1]) & ~bad
        new_lo, new_hi = lo.copy(), lo.copy()
        t = tok[top]
        new_lo[top], new_hi[top] = self.first[t], self.first[t + 1]
        rest = ~top & ~bad
        if rest.any():
            a = np.flatnonzero(rest)
            new_lo[a] = self._bound(lo[a], hi[a], depth[a], tok[a], right=False)
            new_hi[a] = self._bound(new_lo[a], hi[a], depth[a], tok[a], right=True)
        return new_lo, new_hi

    def interval(self, ngram: Sequence[int]) -> tuple[int, int]:
        lo, hi = self.root()
        for d, t in enumerate(ngram):
            lo, hi = self.narrow(lo, hi, d, np.array([t]))
            if lo[0] >= hi[0]:
                break
        return int(lo[0]), int(hi[0])

    def intervals(self, ngrams: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(B,) intervals of B n-grams of any lengths, narrowed together step by step."""
        B = len(ngrams)
        lens = np.fromiter((len(g) for g in ngrams), np.int64, B)
        L = int(lens.max()) if B else 0
        grid = np.full((B, max(L, 1)), -1, np.int64)
        for i, g in enumerate(ngrams):
            grid[i, : len(g)] = g
        lo, hi = self.root(B)
        for d in range(L):
            a = np.flatnonzero((lens > d) & (lo < hi))
            if len(a) == 0:
                break
            lo[a], hi[a] = self.narrow(lo[a], hi[a], d, grid[a, d])
        empty = lens == 0
        lo[empty], hi[empty] = 0, 0  # the empty n-gram counts 0: it is no span
        return lo, hi

    def count(self, ngrams: Sequence[Sequence[int]]) -> np.ndarray:
        """(B,) number of occurrences of each n-gram in the titles."""
        lo, hi = self.intervals(ngrams)
        return hi - lo

    def next_tokens(self, lo: int, hi: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct tokens that follow the span of interval [lo, hi) (of length `depth`) and
        how often: (U,) tokens ascending, (U,) counts. The sentinel (title end) is left out."""
        if depth == 0 and lo == 0 and hi == self.first[-1]:
            counts = np.diff(self.first)
            toks = np.flatnonzero(counts)
            return toks, counts[toks]
        if hi <= lo:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        col = self._column(np.arange(lo, hi), np.full(hi - lo, depth))  # sorted ascending
        cut = np.flatnonzero(np.diff(col)) + 1
        begin = np.concatenate([[0], cut])
        end = np.concatenate([cut, [len(col)]])
        toks = col[begin]
        keep = toks != self.sentinel
        return toks[keep], (end - begin)[keep]

    def children(
        self, lo: np.ndarray, hi: np.ndarray, depth: np.ndarray, wide: int = 1024
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every one-token extension of B spans (intervals [lo[b], hi[b]) of length depth[b]):
        (M,) parent b, (M,) token, (M,) child lo, (M,) child hi, grouped by parent in
        ascending order and by ascending token within; the title end is no extension.

        The child intervals are the runs of the sorted column `text[sa[i] + depth]` inside
        the parent's interval, so a caller that picks an extension never bisects for it.
        Intervals up to `wide` suffixes are read all at once; wider ones (the spans of a
        frequent word, met by many queries) are read once and memoised on the index."""
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        depth = np.broadcast_to(np.asarray(depth, np.int64), lo.shape)
        size = np.maximum(hi - lo, 0)
        parts = []
        small = np.flatnonzero((size > 0) & (size <= wide))
        if len(small):
            n = size[small]
            parent = np.repeat(small, n)
            idx = np.repeat(lo[small] - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
            col = self._column(idx, depth[parent])
            cut = np.flatnonzero((col[1:] != col[:-1]) | (parent[1:] != parent[:-1])) + 1
            begin = np.concatenate([[0], cut])
            end = np.concatenate([cut, [len(col)]])
            parts.append((parent[begin], col[begin], idx[begin], idx[end - 1] + 1))
        for b in np.flatnonzero(size > wide):
            key = (int(lo[b]), int(hi[b]), int(depth[b]))
            hit = self._wide.get(key)
            if hit is None:
                toks, counts = self.next_tokens(*key)
                c_hi = key[0] + np.cumsum(counts)  # the title end sorts last: no offset
                if len(self._wide) >= 50_000:  # bounded (and no iteration: threads may search)
                    self._wide.clear()
                hit = self._wide[key] = (toks, c_hi - counts, c_hi)
            parts.append((np.full(len(hit[0]), b), *hit))
        if not parts:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        parent, tok, c_lo, c_hi = (np.concatenate(p) for p in zip(*parts, strict=True))
        if len(parts) > 1:
            order = np.argsort(parent, kind="stable")
            parent, tok, c_lo, c_hi = parent[order], tok[order], c_lo[order], c_hi[order]
        keep = tok != self.sentinel
        return parent[keep], tok[keep], c_lo[keep], c_hi[keep]

    def locate(
        self, ngram: Sequence[int] | None = None, interval: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Items containing the n-gram (or the span of `interval`) and the offset of each
        occurrence in its title: (C,) item rows, (C,) offsets, sorted by item then offset."""
        lo, hi = interval if interval is not None else self.interval(ngram or [])
        if ngram is not None and len(ngram) == 0:
            lo, hi = 0, 0
        pos = np.sort(self.sa[lo:hi].astype(np.int64))
        items = np.searchsorted(self.starts, pos, side="right") - 1
        return items, pos - self.starts[items]

    def suffix_segments(self) -> np.ndarray:
        """(T,) int32: the title (segment) each suffix of `sa` starts in, so the titles that
        hold a span are one slice, owner[lo:hi] (a title holding it twice appears twice).
        Computed on first use and kept in memory (4 bytes per token; not saved)."""
        if self._owner is None:
            lengths = np.diff(np.append(self.starts, len(self.text)))  # sentinel included
            rows = np.repeat(np.arange(self.n_items, dtype=np.int32), lengths)
            self._owner = rows[self.sa]
        return self._owner

    def title(self, item: int) -> np.ndarray:
        """Token ids of item `item`'s title."""
        s = int(self.starts[item])
        e = int(self.starts[item + 1]) - 1 if item + 1 < self.n_items else len(self.text) - 1
        return np.asarray(self.text[s:e], np.int64)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            for name, arr in zip(
                _FILES, (self.text, self.sa, self.starts, self.first), strict=True
            ):
                np.save(tmp / name, np.ascontiguousarray(arr))
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                n_items=self.n_items,
                n_tokens=self.n_tokens,
                vocab_size=self.vocab_size,
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> SpanIndex:
        """Load a saved index; with `mmap` the arrays are memory-mapped (read-only)."""
        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        try:
            arrs = [
                np.load(path / name, mmap_mode="r" if mmap else None, allow_pickle=False)
                for name in _FILES
            ]
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{path}: span index file unreadable ({e}); rebuild it") from e
        text, sa, starts, first = arrs
        if (
            len(text) != len(sa)
            or len(starts) != m.get("n_items")
            or len(text) != m.get("n_tokens", -1) + len(starts)
            or len(first) != m.get("vocab_size", -1) + 1
        ):
            raise ArtifactError(
                f"{path}: span index arrays disagree with its manifest (truncated or mixed "
                f"files); rebuild it"
            )
        return cls(text, sa, starts, first)
