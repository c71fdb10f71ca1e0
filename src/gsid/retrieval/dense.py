"""Dense two-tower retrieval: a sentence encoder + a faiss index over normalised item embeddings.

    dense = DenseRetriever().index(dataset)                   # packaged MiniLM, exact inner product
    dense = DenseRetriever(index_factory="HNSW32", search_params="efSearch=128")
    dense = DenseRetriever(model="runs/minilm-ft/model")      # any local sentence-transformers dir
    ft = FineTunedDenseRetriever(epochs=1).index(dataset)     # fine-tunes on the train pairs first

Saved directory: faiss.index, dense.json (which encoders are bundled) and, for a local model,
encoder/ (and query_encoder/ for separate towers): a copy of the model, so the artifact answers
queries on its own. The packaged MiniLM is referenced by name, not copied.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gsid.errors import ArtifactError, GsidError
from gsid.retrieval.base import Retriever, SearchResults
from gsid.text.encoders import DEFAULT_MODEL, SentenceEncoder
from gsid.text.finetune import FineTuneConfig, finetune_encoder

logger = logging.getLogger(__name__)

_INDEX_FILE = "faiss.index"
_STATE_FILE = "dense.json"
_ITEM_DIR = "encoder"
_QUERY_DIR = "query_encoder"


def _faiss():
    import faiss

    return faiss


@functools.lru_cache(maxsize=4)
def _shared_encoder(
    name: str, device: str | None, batch_size: int, max_seq_length: int, identity: str
) -> SentenceEncoder:
    """Retrievers with the same encoder settings share one loaded model (loading costs seconds);
    `identity` changes when the weights on disk change, so a rewritten model is reloaded."""
    return SentenceEncoder(
        name, device=device, batch_size=batch_size, max_seq_length=max_seq_length
    )


class DenseRetriever(Retriever):
    """Nearest items by cosine similarity of sentence embeddings (faiss inner product).

    model: "minilm" (packaged all-MiniLM-L6-v2) or a local sentence-transformers directory.
    query_model: a separate query tower (None = the same encoder reads queries and items).
    index_factory: a faiss index_factory string: "Flat" (exact), "HNSW32", "IVF256,Flat", ...
    search_params: faiss search-time parameters, e.g. "nprobe=16" or "efSearch=128".
    cache_dir: memoise item embeddings on disk (SentenceEncoder.encode_cached).
    with_description: item text = title + description.
    batch_size, max_seq_length, device: encoder settings (device None = cuda when available).
    """

    name = "dense"
    can_add = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        query_model: str | None = None,
        index_factory: str = "Flat",
        search_params: str | None = None,
        cache_dir: str | None = None,
        with_description: bool = False,
        batch_size: int = 128,
        max_seq_length: int = 64,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(index_factory, str) or not index_factory.strip():
            raise GsidError(
                f"index_factory must be a faiss index_factory string such as 'Flat', 'HNSW32' or "
                f"'IVF256,Flat'; got {index_factory!r}"
            )
        self.model = str(model)
        self.query_model = None if query_model is None else str(query_model)
        self.index_factory = index_factory
        self.search_params = search_params
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.with_description = with_description
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self.index_ = None  # faiss.Index
        self._encoders: dict[str, SentenceEncoder] = {}

    def config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "query_model": self.query_model,
            "index_factory": self.index_factory,
            "search_params": self.search_params,
            "cache_dir": self.cache_dir,
            "with_description": self.with_description,
            "batch_size": self.batch_size,
            "max_seq_length": self.max_seq_length,
            "device": self.device,
        }

    # ------------------------------------------------------------------ encoders
    def _encoder(self, which: str) -> SentenceEncoder:
        """which: "item" or "query"; the model is loaded once and shared when the towers are."""
        name = self.model if which == "item" or self.query_model is None else self.query_model
        if name not in self._encoders:
            probe = SentenceEncoder(name, max_seq_length=self.max_seq_length)
            self._encoders[name] = _shared_encoder(
                name, self.device, self.batch_size, self.max_seq_length, probe.identity()
            )
        return self._encoders[name]

    def encode_items(self, dataset, show_progress: bool | None = None) -> np.ndarray:
        """(N, D) float32 normalised item embeddings (memoised when cache_dir is set)."""
        texts = dataset.item_texts(self.with_description)
        return self._encoder("item").encode_cached(texts, self.cache_dir, show_progress)

    def encode_queries(self, queries: list[str], show_progress: bool | None = None) -> np.ndarray:
        return self._encoder("query").encode(queries, show_progress)

    # ------------------------------------------------------------------ index / search
    def _index(self, dataset, show_progress: bool | None) -> None:
        X = self.encode_items(dataset, show_progress)  # (N, D)
        self.index_ = self._build_index(X)

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        """The new items' embeddings are added to the faiss index (a trained IVF index keeps
        its lists: add many items, and rebuild it once its lists no longer fit)."""
        X = self.encode_items(new, show_progress)  # (M, D)
        self.index_.add(X)
        self.item_ids_ = np.concatenate([self.item_ids_, new.item_ids])

    def _saved_to(self, path: Path) -> None:
        # bundled encoders are now read from the new copy (the old one may be gone)
        state = json.loads((path / _STATE_FILE).read_text(encoding="utf-8"))
        if state["item_encoder"]:
            self.model = str(path / state["item_encoder"])
        q = state["query_encoder"]
        if q is not None and q != DEFAULT_MODEL:
            self.query_model = str(path / q)

    def _build_index(self, X: np.ndarray):
        faiss = _faiss()
        try:
            index = faiss.index_factory(X.shape[1], self.index_factory, faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained:
                index.train(X)
            index.add(X)
        except RuntimeError as e:
            raise GsidError(
                f"faiss could not build index {self.index_factory!r} over {X.shape[0]} items of "
                f"dimension {X.shape[1]} ({str(e).strip().splitlines()[-1]}); use 'Flat' or "
                f"an index whose training needs fewer points (e.g. fewer IVF lists)"
            ) from e
        self._apply_search_params(index)
        return index

    def _apply_search_params(self, index) -> None:
        if not self.search_params:
            return
        faiss = _faiss()
        try:
            faiss.ParameterSpace().set_index_parameters(index, self.search_params)
        except RuntimeError as e:
            raise GsidError(
                f"faiss rejected search_params {self.search_params!r} for index "
                f"{self.index_factory!r} ({str(e).strip().splitlines()[-1]}); e.g. 'nprobe=16' "
                f"for IVF, 'efSearch=128' for HNSW"
            ) from e

    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        Q = self.encode_queries(queries, show_progress)  # (Q, D)
        sims, rows = self.index_.search(Q, k)  # (Q, k) each; rows = -1 where fewer than k items
        found = rows >= 0
        ids = np.full(rows.shape, None, dtype=object)
        ids[found] = self.item_ids_[rows[found]]
        scores = np.where(found, sims, -np.inf).astype(np.float32)
        return SearchResults(ids, scores)

    def index_bytes(self) -> int:
        if self.index_ is None:
            return 0
        return int(_faiss().serialize_index(self.index_).nbytes)

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        _faiss().write_index(self.index_, str(directory / _INDEX_FILE))
        state = {"item_encoder": None, "query_encoder": None}
        if self.model != DEFAULT_MODEL:
            shutil.copytree(self.model, directory / _ITEM_DIR)
            state["item_encoder"] = _ITEM_DIR
        if self.query_model is not None and self.query_model != self.model:
            if self.query_model == DEFAULT_MODEL:
                state["query_encoder"] = DEFAULT_MODEL
            else:
                shutil.copytree(self.query_model, directory / _QUERY_DIR)
                state["query_encoder"] = _QUERY_DIR
        (directory / _STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    def _load_state(self, directory: Path) -> None:
        state = json.loads((directory / _STATE_FILE).read_text(encoding="utf-8"))
        # Bundled encoders are read from inside the artifact, wherever it was moved.
        if state["item_encoder"]:
            self.model = str(directory / state["item_encoder"])
        q = state["query_encoder"]
        self.query_model = None if q is None else (q if q == DEFAULT_MODEL else str(directory / q))
        for d in {self.model, self.query_model} - {None, DEFAULT_MODEL}:
            if not (Path(d) / "modules.json").is_file():
                raise ArtifactError(
                    f"{d}: the bundled encoder is missing or incomplete; rebuild the retriever"
                )
        try:
            self.index_ = _faiss().read_index(str(directory / _INDEX_FILE))
        except RuntimeError as e:
            raise ArtifactError(
                f"{directory / _INDEX_FILE} cannot be read by faiss ({str(e).strip().splitlines()[-1]}); "
                f"rebuild the retriever"
            ) from e
        if self.index_.ntotal != len(self.item_ids_):
            raise ArtifactError(
                f"{directory}: the faiss index holds {self.index_.ntotal} items but item_ids.npy "
                f"{len(self.item_ids_)}; rebuild the retriever"
            )
        self._apply_search_params(self.index_)


class FineTunedDenseRetriever(DenseRetriever):
    """A DenseRetriever whose `index(dataset)` first fine-tunes the encoder on the dataset's
    train pairs (see gsid.text.finetune), so a benchmark runs it like any other retriever.

    base_model: the encoder to start from. finetune: FineTuneConfig fields (dict), e.g.
    {"towers": "frozen-items", "lr": 1e-4}; the common knobs can also be given directly
    (epochs, max_pairs, lr, towers, seed, train_batch_size, train_max_seq_length) and win over
    the dict. work_dir: where the fine-tuned model is written (None = a temporary directory that
    lives as long as this object; `save` copies the model in). Other arguments as DenseRetriever
    (batch_size and max_seq_length there are the encoder's settings for indexing and search).
    """

    name = "dense-ft"

    def __init__(
        self,
        base_model: str = DEFAULT_MODEL,
        finetune: dict[str, Any] | None = None,
        epochs: int | None = None,
        max_pairs: int | None = None,
        lr: float | None = None,
        towers: str | None = None,
        seed: int | None = None,
        train_batch_size: int | None = None,
        train_max_seq_length: int | None = None,
        work_dir: str | None = None,
        index_factory: str = "Flat",
        search_params: str | None = None,
        cache_dir: str | None = None,
        with_description: bool = False,
        batch_size: int = 128,
        max_seq_length: int = 64,
        device: str | None = None,
        model: str | None = None,
        query_model: str | None = None,
    ) -> None:
        # model / query_model are set by index() (or by load); accepted so that config round-trips
        super().__init__(
            model=model or base_model,
            query_model=query_model,
            index_factory=index_factory,
            search_params=search_params,
            cache_dir=cache_dir,
            with_description=with_description,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            device=device,
        )
        self.base_model = base_model
        finetune = dict(finetune or {})
        direct = {
            "epochs": epochs,
            "max_pairs": max_pairs,
            "lr": lr,
            "towers": towers,
            "seed": seed,
            "batch_size": train_batch_size,
            "max_seq_length": train_max_seq_length,
        }
        finetune.update({k: v for k, v in direct.items() if v is not None})
        finetune.setdefault("with_description", with_description)
        finetune.setdefault("device", device)
        self.finetune_config = FineTuneConfig.from_dict(finetune)
        self.work_dir = work_dir
        self.finetune_info_: dict[str, Any] | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.update(
            base_model=self.base_model,
            finetune=self.finetune_config.to_dict(),
            work_dir=self.work_dir,
        )
        return cfg

    def _index(self, dataset, show_progress: bool | None) -> None:
        if self.work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gsid-dense-ft-")
            out = Path(self._tmp.name) / "model"
        else:
            out = Path(self.work_dir)
        X = None
        if self.finetune_config.towers == "frozen-items":
            # items keep the base encoder's vectors: encode (or fetch from the cache) once, use
            # them as the frozen tower in training and as the index afterwards
            self.model, self.query_model, self._encoders = self.base_model, None, {}
            X = self.encode_items(dataset, show_progress)
        ft = finetune_encoder(
            dataset,
            out,
            self.finetune_config,
            self.base_model,
            show_progress=show_progress,
            item_embeddings=X,
        )
        self.finetune_info_ = ft.info
        self.model = ft.item_model
        self.query_model = None if ft.query_model == ft.item_model else ft.query_model
        self._encoders = {}
        if X is None:
            X = self.encode_items(dataset, show_progress)
        self.index_ = self._build_index(X)

    def _save_state(self, directory: Path) -> None:
        super()._save_state(directory)
        if self.finetune_info_ is not None:
            (directory / "finetune.json").write_text(
                json.dumps(self.finetune_info_, indent=2), encoding="utf-8"
            )

    def _load_state(self, directory: Path) -> None:
        super()._load_state(directory)
        f = directory / "finetune.json"
        self.finetune_info_ = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
