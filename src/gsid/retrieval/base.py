"""The retriever contract that every method (BM25, dense, generative-ID, lexical) follows.

    retriever = SomeRetriever(**config).index(dataset)      # fit returns self
    ids, scores = retriever.search(["cordless drill"], k=10) # SearchResults unpacks
    retriever.save("runs/bm25"); SomeRetriever.load("runs/bm25") or load_retriever(path)

A retriever directory is also the *index* a user searches and serves (`gsid index build`,
`gsid.load`): `manifest.json` (kind "gsid-retriever", format version, gsid version, method name,
class, full config, item count, the dataset's name and fingerprint, creation time), the
catalogue for display (`items.parquet`: item_id, title, description, category, attributes)
and whatever arrays the method needs.

    retriever.add(new_items)     # new products, searchable at once, no retraining (see `add`)
"""

from __future__ import annotations

import datetime as _dt
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid.errors import ArtifactError, DataValidationError, GsidError, NotFittedError

KIND = "gsid-retriever"
FORMAT_VERSION = 1
MAX_QUERY_CHARS = 2000
CATALOGUE = "items.parquet"


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
    #: whether `add` can take new items without re-indexing (see `_add_items`)
    can_add: bool = False

    def __init__(self) -> None:
        self.item_ids_: np.ndarray | None = None
        # the indexed catalogue (display, and the text of every item for `add`); None for the
        # parts of a hybrid, whose catalogue the hybrid keeps
        self.catalogue_: pd.DataFrame | None = None
        self.provenance_: dict[str, Any] = {}

    # ---- public verbs
    def index(self, dataset, show_progress: bool | None = None) -> Retriever:
        """Index the catalogue of `dataset` (a gsid Dataset). Returns self."""
        self._fit(dataset, show_progress)
        self.catalogue_ = dataset.items.reset_index(drop=True)
        self.provenance_ = {
            "dataset": {
                "name": dataset.name,
                "fingerprint": dataset.fingerprint(),
                "n_items": len(dataset.items),
                "n_train_queries": int((dataset.queries["split"] == "train").sum()),
            },
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "n_added": 0,
        }
        return self

    def _fit(self, dataset, show_progress: bool | None) -> None:
        """`index` without the catalogue and provenance (what a hybrid's parts need)."""
        self.item_ids_ = dataset.item_ids
        self._index(dataset, show_progress)

    def add(self, items, show_progress: bool | None = None) -> Retriever:
        """Add new products without retraining, searchable at once. `items`: a Dataset, a
        DataFrame or a list of dicts with item_id and title (description, category, attributes
        optional). Methods with a model give the new items the codes / vectors the saved model
        assigns; BM25 re-indexes the grown catalogue. Existing items keep their codes. On any
        error nothing is changed. Returns self; `save` persists the grown index."""
        if self.item_ids_ is None or self.catalogue_ is None:
            raise NotFittedError(f"{type(self).__name__} has no index to add to: index it first")
        from gsid.data.dataset import Dataset

        new = Dataset.of_items(items)
        known = set(self.item_ids_.tolist())
        clash = [i for i in new.item_ids if i in known]
        if clash:
            raise DataValidationError(
                f"{len(clash)} of the new items are already in the index (e.g. {clash[:3]}); "
                f"item ids must be new: drop them or give them new ids"
            )
        catalogue = Dataset(items=pd.concat([self.catalogue_, new.items], ignore_index=True))
        self._extend(new, catalogue, show_progress)
        self.catalogue_ = catalogue.items
        self.provenance_["n_added"] = int(self.provenance_.get("n_added", 0)) + len(new.items)
        return self

    def _extend(self, new, catalogue, show_progress: bool | None) -> None:
        """Add `new` (a Dataset of new items) given the grown `catalogue` (all items, old
        first); subclasses compute everything first and assign their state last."""
        if not self.can_add:
            raise GsidError(
                f"method {self.name!r} cannot add items to a built index (what it indexes is "
                f"fitted to the whole catalogue when it is built); rebuild the index on the "
                f"grown catalogue, or use bm25, dense, dense-ft, gsid or gsid-gr"
            )
        self._add_items(new, catalogue, show_progress)

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        raise NotImplementedError

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

    def semantic_ids(self):
        """The SemanticIDs of the indexed items, for methods that have them (else None)."""
        return getattr(self, "ids_", None)

    def titles(self, item_ids) -> list[str | None]:
        """Titles of `item_ids` from the indexed catalogue (None for an unknown id)."""
        # the id -> title table is built once per catalogue (`add` assigns a new one)
        cached = self.__dict__.get("_title_table")
        if cached is None or cached[0] is not self.catalogue_:
            cached = self._title_table = (self.catalogue_, item_titles(self))
        return [cached[1].get(i) for i in item_ids]

    def index_bytes(self) -> int:
        """Bytes of the index needed to answer queries (excluding shared model weights)."""
        return 0

    def save(self, path: str | os.PathLike) -> Path:
        if self.item_ids_ is None:
            raise NotFittedError(f"{type(self).__name__} has nothing to save: index it first")
        import gsid

        with atomic_dir(path, KIND) as tmp:
            np.save(tmp / "item_ids.npy", self.item_ids_.astype(str))
            if self.catalogue_ is not None:
                self.catalogue_.to_parquet(tmp / CATALOGUE, index=False)
            self._save_state(tmp)
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                retriever=f"{type(self).__module__}:{type(self).__qualname__}",
                name=self.name,
                config=self.config(),
                gsid_version=gsid.__version__,
                n_items=len(self.item_ids_),
                **self.provenance_,
            )
        self._saved_to(Path(path))
        return Path(path)

    def _saved_to(self, path: Path) -> None:
        """Hook after a save: state that points into the artifact now points at `path`."""
        return None

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
            if (path / CATALOGUE).is_file():
                obj.catalogue_ = _read_catalogue(path / CATALOGUE, obj.item_ids_)
            obj.provenance_ = {
                key: manifest[key] for key in ("dataset", "created", "n_added") if key in manifest
            }
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


def ranked_hits(
    ids: np.ndarray, scores: np.ndarray, titles: dict[str, str], codes: dict[str, str] | None
) -> list[dict[str, Any]]:
    """One query's results (a row of SearchResults) as display records: rank, item_id, title,
    score and, for methods with semantic IDs, code. `titles`, `codes`: item id -> string."""
    hits = []
    for rank, (item, score) in enumerate(zip(ids, scores, strict=True), 1):
        if item is None:
            break
        hit = {"rank": rank, "item_id": item, "title": titles.get(item), "score": float(score)}
        if codes is not None:
            hit["code"] = codes.get(item)
        hits.append(hit)
    return hits


def item_titles(retriever: Retriever) -> dict[str, str]:
    """item id -> title, from the indexed catalogue (empty without one)."""
    c = retriever.catalogue_
    return {} if c is None else dict(zip(c["item_id"].tolist(), c["title"].tolist(), strict=True))


def items_code_strings(retriever: Retriever) -> dict[str, str] | None:
    """item id -> its semantic ID as "12-3-7", for methods that have IDs (else None)."""
    ids = retriever.semantic_ids()
    if ids is None:
        return None
    return dict(zip(ids.item_ids.tolist(), ids.id_strings(), strict=True))


def _read_catalogue(path: Path, item_ids: np.ndarray) -> pd.DataFrame:
    catalogue = pd.read_parquet(path)
    if "item_id" not in catalogue or set(catalogue["item_id"]) != set(item_ids.tolist()):
        raise ValueError(f"{path.name} does not list the items of the index")
    return catalogue


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
