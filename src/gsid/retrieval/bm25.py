"""BM25 over item text, on bm25s, with gsid's lexical tokeniser (English stemming, CJK aware).

    bm25 = BM25Retriever(k1=1.5, b=0.75, method="lucene").index(dataset)
    ids, scores = bm25.search(["cordless drill", "无线电钻"], k=10)
    bm25.save("runs/bm25"); BM25Retriever.load("runs/bm25")

bm25s builds the index (a sparse term x item matrix of precomputed BM25 contributions) and
saves/loads it. Search multiplies a sparse batch of query-term counts by that matrix with scipy:
one sparse product per batch of queries instead of bm25s's per-query loop, and only items that
share a term with the query come back (rows are padded with None / -inf), so a query whose
terms are all unknown to the catalogue returns an empty row instead of arbitrary items.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from gsid._progress import progress, progress_enabled
from gsid.errors import GsidError
from gsid.retrieval.base import Retriever, SearchResults
from gsid.text.tokenize import LexicalTokenizer

logger = logging.getLogger(__name__)

#: bm25s's scoring variants (Kamphuis et al., ECIR 2020)
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FIELDS = ("title", "description")
_BM25S_DIR = "bm25s"


class BM25Retriever(Retriever):
    """Okapi BM25 (bm25s) over the chosen item fields.

    k1, b: term-frequency saturation and length normalisation. method: one of METHODS.
    delta: the extra parameter of bm25l / bm25+ (ignored by the others).
    fields: item fields concatenated into the indexed text ("title", "description").
    stem, stopwords, cjk: LexicalTokenizer options (the same tokeniser reads items and queries).
    batch_size: queries scored per sparse product.
    """

    name = "bm25"
    can_add = True

    def __init__(
        self,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        delta: float = 0.5,
        fields: Sequence[str] = ("title",),
        stem: bool = True,
        stopwords: bool = True,
        cjk: str = "auto",
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise GsidError(f"BM25 method {method!r} is unknown; choose one of {list(METHODS)}")
        if isinstance(fields, str):
            fields = [fields]
        fields = list(fields)
        bad = [f for f in fields if f not in FIELDS]
        if bad or not fields:
            raise GsidError(
                f"BM25 fields {fields!r} are not allowed; choose one or more of {list(FIELDS)}"
            )
        if k1 < 0 or not 0 <= b <= 1:
            raise GsidError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if batch_size < 1:
            raise GsidError(f"batch_size must be a positive integer, got {batch_size}")
        self.k1 = float(k1)
        self.b = float(b)
        self.method = method
        self.delta = float(delta)
        self.fields = fields
        self.stem = stem
        self.stopwords = stopwords
        self.cjk = cjk
        self.batch_size = int(batch_size)
        self.tokenizer = LexicalTokenizer(stem=stem, stopwords=stopwords, cjk=cjk)
        self.bm25_ = None  # bm25s.BM25
        self._matrix = None  # (V, N) csr: BM25 contribution of term v to item n
        self._vocab: dict[str, int] = {}

    def config(self) -> dict[str, Any]:
        return {
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "delta": self.delta,
            "fields": list(self.fields),
            **self.tokenizer.config(),
            "batch_size": self.batch_size,
        }

    # ------------------------------------------------------------------ index
    def item_texts(self, dataset) -> list[str]:
        """The indexed text of each item: the chosen fields joined."""
        cols = [dataset.items[f].astype(str).tolist() for f in self.fields]
        return [" ".join(p for p in parts if p) for parts in zip(*cols, strict=True)]

    def _index(self, dataset, show_progress: bool | None) -> None:
        import bm25s
        from bm25s.tokenization import Tokenized

        texts = self.item_texts(dataset)
        # Our own tokeniser (CJK aware) instead of bm25s.tokenize; bm25s takes the result as
        # (token ids per document, vocabulary), which also keeps token-less items valid.
        vocab: dict[str, int] = {}
        ids = [
            [vocab.setdefault(t, len(vocab)) for t in self.tokenizer(text)]
            for text in progress(texts, show_progress, desc="BM25 tokenise")
        ]
        if not vocab:
            raise GsidError(
                f"no item of {dataset.name!r} has an indexable word in fields {self.fields}; "
                f"BM25 needs item text: check the catalogue's titles or the `fields` option"
            )
        bm25 = bm25s.BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method)
        bm25.index(Tokenized(ids=ids, vocab=vocab), show_progress=progress_enabled(show_progress))
        self._attach(bm25)

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        """BM25's statistics (document frequencies, average length) change with every item, so
        the grown catalogue is re-indexed (4 s for 49,200 Home Depot titles, measured on a
        loaded 2-core machine by `gsid index build`)."""
        self._index(catalogue, show_progress)
        self.item_ids_ = catalogue.item_ids

    def _attach(self, bm25) -> None:
        self.bm25_ = bm25
        sc = bm25.scores
        n_terms = len(sc["indptr"]) - 1
        # bm25s stores a CSC (items x terms) matrix; its arrays read as CSR are (terms x items).
        self._matrix = sp.csr_matrix(
            (sc["data"], sc["indices"], sc["indptr"]), shape=(n_terms, int(sc["num_docs"]))
        )
        # the empty token "" that bm25s appends has no postings (id == n_terms): leave it out
        self._vocab = {t: int(i) for t, i in bm25.vocab_dict.items() if int(i) < n_terms}

    # ------------------------------------------------------------------ search
    def _query_matrix(self, queries: list[str]) -> sp.csr_matrix:
        """(Q, V) term counts; unknown terms are dropped (bm25s does the same)."""
        rows, cols = [], []
        for r, q in enumerate(queries):
            for t in self.tokenizer(q):
                j = self._vocab.get(t)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        data = np.ones(len(rows), np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(queries), self._matrix.shape[0]))

    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        ids = np.full((len(queries), k), None, dtype=object)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        nonocc = self.bm25_.nonoccurrence_array  # bm25l / bm25+: a per-term score every item gets
        starts = range(0, len(queries), self.batch_size)
        for s in progress(starts, show_progress, desc="BM25 search"):
            Q = self._query_matrix(queries[s : s + self.batch_size])  # (B, V)
            R = (Q @ self._matrix).tocsr()  # (B, N), non-zero only where an item shares a term
            R.sort_indices()
            base = Q @ nonocc if nonocc is not None else np.zeros(Q.shape[0], np.float32)
            for r in range(R.shape[0]):
                lo, hi = R.indptr[r], R.indptr[r + 1]
                cand, val = R.indices[lo:hi], R.data[lo:hi]
                keep = val > 0
                cand, val = cand[keep], val[keep]
                if len(cand) > k:
                    part = np.argpartition(-val, k - 1)[:k]
                    cand, val = cand[part], val[part]
                order = np.lexsort((cand, -val))  # by score, ties by catalogue order
                n = len(order)
                ids[s + r, :n] = self.item_ids_[cand[order]]
                scores[s + r, :n] = val[order] + base[r]
        return SearchResults(ids, scores)

    # ------------------------------------------------------------------ persistence
    def index_bytes(self) -> int:
        if self.bm25_ is None:
            return 0
        sc = self.bm25_.scores
        n = sum(int(np.asarray(sc[key]).nbytes) for key in ("data", "indices", "indptr"))
        if self.bm25_.nonoccurrence_array is not None:
            n += int(self.bm25_.nonoccurrence_array.nbytes)
        return n + sum(len(t.encode("utf-8")) + 4 for t in self._vocab)

    def _save_state(self, directory: Path) -> None:
        self.bm25_.save(directory / _BM25S_DIR, show_progress=False)

    def _load_state(self, directory: Path) -> None:
        import bm25s

        sub = directory / _BM25S_DIR
        if not (sub / "params.index.json").is_file():
            raise OSError(f"{sub / 'params.index.json'} is missing")
        bm25 = bm25s.BM25.load(sub, show_progress=False)
        n_docs = int(bm25.scores["num_docs"])
        if n_docs != len(self.item_ids_):
            raise ValueError(
                f"the index has {n_docs} items but item_ids.npy has {len(self.item_ids_)}"
            )
        _check_postings(bm25.scores, n_docs)
        self._attach(bm25)


def _check_postings(sc: dict, n_docs: int) -> None:
    """Bounds-check the score matrix before scipy's native code reads it: a damaged index
    must be an error, never an out-of-bounds read (a corrupted file crashed the process)."""
    indptr, indices, data = (np.asarray(sc[k]) for k in ("indptr", "indices", "data"))
    ok = (
        indptr.ndim == indices.ndim == data.ndim == 1
        and len(indptr) >= 1
        and indptr[0] == 0
        and indptr[-1] == len(indices) == len(data)
        and bool((np.diff(indptr) >= 0).all())
        and (len(indices) == 0 or (int(indices.min()) >= 0 and int(indices.max()) < n_docs))
        and bool(np.isfinite(data).all())
    )
    if not ok:
        raise ValueError("the BM25 score matrix is damaged (its index arrays are out of bounds)")
