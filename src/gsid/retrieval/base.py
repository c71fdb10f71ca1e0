"""The retriever contract that every method (BM25, dense, generative-ID, lexical) follows.

    retriever = SomeRetriever(**config).index(dataset)      # fit returns self
    ids, scores = retriever.search(["cordless drill"], k=10) # SearchResults unpacks
    retriever.save("runs/bm25"); SomeRetriever.load("runs/bm25") or load_retriever(path)

A retriever directory holds `manifest.json` (kind "gsid-retriever", its class name in
`retriever`, its config) plus whatever arrays the method needs.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.errors import ArtifactError, GsidError, NotFittedError

KIND = "gsid-retriever"
FORMAT_VERSION = 1
MAX_QUERY_CHARS = 2000


class SearchResults(NamedTuple):
    """ids: (Q, k) object array of item ids, None where fewer than k were found.
    scores: (Q, k) float32, higher is better, -inf where no item.
    k is at most the catalogue size: asking for more returns every item, ranked."""

    ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, n_queries: int, k: int) -> SearchResults:
        return cls(
            np.full((n_queries, k), None, dtype=object),
            np.full((n_queries, k), -np.inf, np.float32),
        )


def check_queries(queries: Sequence[str] | str, k: int, what: str = "query") -> list[str]:
    """Validate a batch of queries: a clear error for the empty and the enormous."""
    if isinstance(queries, str):
        raise GsidError("search takes a list of queries; wrap a single query in a list: [query]")
    if not isinstance(k, int | np.integer) or k < 1:
        raise GsidError(f"k must be a positive integer, got {k!r}")
    out = []
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise GsidError(f"{what} {i} is a {type(q).__name__}, expected a string")
        if not q.strip():
            raise GsidError(f"{what} {i} is empty; pass non-empty text")
        if len(q) > MAX_QUERY_CHARS:
            raise GsidError(
                f"{what} {i} has {len(q)} characters, more than the limit of {MAX_QUERY_CHARS}; "
                f"a search query should be short: truncate it or search with its key phrase"
            )
        out.append(q)
    return out


class Retriever(ABC):
    """Base class: subclasses implement `_index`, `_search`, `_save_state`, `_load_state`."""

    #: registry name used by the CLI and bench (e.g. "bm25", "dense")
    name: str = "retriever"

    def __init__(self) -> None:
        self.item_ids_: np.ndarray | None = None

    # ---- public verbs
    def index(self, dataset, show_progress: bool | None = None) -> Retriever:
        """Index the catalogue of `dataset` (a gsid Dataset). Returns self."""
        self.item_ids_ = dataset.item_ids
        self._index(dataset, show_progress)
        return self

    def search(
        self, queries: Sequence[str], k: int = 10, show_progress: bool | None = None
    ) -> SearchResults:
        if self.item_ids_ is None:
            raise NotFittedError(
                f"{type(self).__name__} is not indexed yet: call .index(dataset) or load one"
            )
        queries = check_queries(queries, k)
        k = min(int(k), len(self.item_ids_))  # never wider than the catalogue
        if not queries or k == 0:
            return SearchResults.empty(0, k)
        return self._search(queries, k, show_progress)

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; `type(self)(**config())` rebuilds an unfitted copy."""
        return {}

    def index_bytes(self) -> int:
        """Bytes of the index needed to answer queries (excluding shared model weights)."""
        return 0

    def save(self, path: str | os.PathLike) -> Path:
        if self.item_ids_ is None:
            raise NotFittedError(f"{type(self).__name__} has nothing to save: index it first")
        with atomic_dir(path, KIND) as tmp:
            np.save(tmp / "item_ids.npy", self.item_ids_.astype(str))
            self._save_state(tmp)
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                retriever=f"{type(self).__module__}:{type(self).__qualname__}",
                name=self.name,
                config=self.config(),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Retriever:
        path = Path(path)
        manifest = read_manifest(path, KIND, FORMAT_VERSION)
        target = _resolve(manifest["retriever"])
        if not issubclass(target, cls):
            raise ArtifactError(f"{path} holds a {target.__name__}, not a {cls.__name__}")
        obj = target(**manifest["config"])
        try:
            obj.item_ids_ = np.load(path / "item_ids.npy").astype(object)
            obj._load_state(path)
        except (OSError, ValueError, KeyError) as e:
            raise ArtifactError(
                f"{path}: the saved retriever is corrupted ({e}); rebuild it."
            ) from e
        return obj

    # ---- to implement
    @abstractmethod
    def _index(self, dataset, show_progress: bool | None) -> None: ...

    @abstractmethod
    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults: ...

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...


#: modules of retriever classes that moved; indexes saved before still load
_MOVED = {
    "gsid.indexer.retriever": "gsid.retrieval.gsid",
    "gsid.indexer.generative": "gsid.retrieval.generative.gsid_gr",
}


def _resolve(ref: str) -> type:
    module, _, qualname = ref.partition(":")
    module = _MOVED.get(module, module)
    if not module.startswith("gsid."):
        raise ArtifactError(f"refusing to load retriever class {ref!r} from outside gsid")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ArtifactError(f"saved retriever class {ref!r} is unknown to this gsid ({e})") from e
    return obj


def load_retriever(path: str | os.PathLike) -> Retriever:
    """Load any saved retriever, whatever its class."""
    return Retriever.load(path)
