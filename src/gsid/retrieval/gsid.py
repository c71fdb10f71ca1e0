"""GSIDRetriever: dense retrieval with the GSID decoder representations (name "gsid").

    r = GSIDRetriever(config={"n_levels": 4, "codebook_size": 128}).index(dataset)
    ids, scores = r.search(["cordless drill"], k=10)
    r.save("runs/gsid-retriever"); load_retriever("runs/gsid-retriever")

`index` trains GSID on the dataset's train split (or loads `model_dir`: a `train_gsid` output
directory or its model/), then keeps one unit vector per item (see assign.representation). `search` decodes
each query greedily and ranks items by cosine similarity. The semantic IDs of the catalogue are
kept in `ids_` (for generative retrieval, see the gsid-gr retriever).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from gsid.errors import ArtifactError, GsidError, check_options
from gsid.models.assign import encode, representation, to_semantic_ids, top_k
from gsid.models.config import GSIDConfig
from gsid.retrieval.base import Retriever, SearchResults

logger = logging.getLogger(__name__)


# What `index` trains unless `config` says otherwise: the CPU-sized setup (frozen MiniLM read
# once through the embedding cache, 1-layer code decoder), so `gsid bench` finishes on a laptop.
# Pass {"freeze_encoder": False, "memory": "tokens"} for the full model on a GPU.
CPU_DEFAULTS: dict[str, Any] = {
    "memory": "pooled",
    "freeze_encoder": True,
    "memory_skip": True,  # without it the earlier levels degrade while later steps train
    "decoder_layers": 1,
    "decoder_ff_mult": 2,
    "max_seq_length": 64,
    "lr": 1e-3,
    "batch_size": 128,
    "warmup_batches": 50,
    "pseudo_queries_per_item": 1,
}


def cpu_config(config: dict | None) -> dict[str, Any]:
    """CPU_DEFAULTS overridden by `config`; unknown GSIDConfig fields are rejected."""
    out = {**CPU_DEFAULTS, **dict(config or {})}
    check_options(out, set(GSIDConfig.__dataclass_fields__), "GSID config")
    return out


def train_or_load(
    dataset,
    config: dict[str, Any],
    model_dir: str | None,
    seed: int,
    device: str | None,
    out_dir: str | None,
    cache_dir: str | None,
    show_progress: bool | None,
):
    """The GSID model of a retriever: loaded from `model_dir` (a `train_gsid` output directory,
    which holds model/, or a GSIDModel directory), else trained on the dataset's train split."""
    from gsid.models.model import GSIDModel

    if model_dir is None:
        from gsid.models.train import train_gsid

        cfg = GSIDConfig.from_dict({"seed": seed, "device": device, **config})
        return train_gsid(dataset, cfg, out_dir, show_progress, cache_dir=cache_dir)[0]
    path = Path(model_dir)
    if (path / "model" / "manifest.json").is_file():
        path = path / "model"
    elif not (path / "manifest.json").is_file():
        raise ArtifactError(
            f"model_dir {model_dir!r} holds no GSID model (no manifest.json, no "
            f"model/manifest.json); pass a train_gsid output directory or a GSIDModel dir"
        )
    return GSIDModel.load(path, device=device)


def encode_catalogue(
    model,
    texts: list[str],
    cache_dir: str | None,
    show_progress: bool | None,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy codes (N, L) and decoder states (N, L, H) of the item texts (teacher-forced on
    `codes` when given); a frozen pooled encoder is read through the shared embedding cache."""
    features = None
    if model.config.cached_features:
        from gsid.models.features import pooled_features

        features = pooled_features(model, texts, cache_dir, show_progress).numpy()
    return encode(model, texts, features, show_progress=show_progress, codes=codes)


def trained_codes(model, model_dir: str | None, item_ids: np.ndarray) -> np.ndarray:
    """The item codes frozen step by step in training (N, L), in the order of `item_ids`: from
    the model just trained, or from the ids/ that train_gsid wrote beside model_dir's model/."""
    L = model.config.n_levels
    if getattr(model, "item_codes_", None) is not None:
        return np.asarray(model.item_codes_)[:, :L]
    from gsid.ids.semantic_ids import SemanticIDs

    path = Path(model_dir or "")
    ids_dir = path / "ids" if (path / "ids").is_dir() else path.parent / "ids"
    if not (ids_dir / "manifest.json").is_file():
        raise ArtifactError(
            f"codes='trained' needs the training codes: no ids/ beside the model in "
            f"{model_dir!r}; pass the train_gsid output directory or use codes='greedy'"
        )
    ids = SemanticIDs.load(ids_dir)
    return np.stack([ids.codes[ids.index_of(i)][:L] for i in item_ids])


class GSIDRetriever(Retriever):
    """Dense retrieval by GSID decoder states. `representation`: which read-out of the states
    (see assign.REPRESENTATIONS; "first" = d_0). `codes`: the item codes the states are read
    under: "greedy" (decoded by the final model) or "trained" (frozen during training)."""

    name = "gsid"
    can_add = True

    def __init__(
        self,
        config: dict | None = None,
        model_dir: str | None = None,
        representation: str = "concat",
        codes: str = "greedy",
        cache_dir: str | None = None,
        out_dir: str | None = None,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self.config_ = cpu_config(config)
        self.model_dir = model_dir
        if codes not in ("greedy", "trained"):
            raise GsidError(f"codes must be 'greedy' or 'trained', got {codes!r}")
        self.representation = representation
        self.codes = codes
        self.cache_dir = cache_dir
        self.out_dir = out_dir
        self.seed = seed
        self.device = device
        self.model_ = None
        self.item_vectors_: np.ndarray | None = None
        self.ids_ = None

    @classmethod
    def from_model(cls, model, **options: Any) -> GSIDRetriever:
        """A retriever over an already trained GSIDModel in memory (no training on index)."""
        r = cls(config=model.config.to_dict(), **options)
        r._given_model = model
        return r

    def config(self) -> dict[str, Any]:
        return {
            "config": self.config_,
            "model_dir": self.model_dir,
            "representation": self.representation,
            "codes": self.codes,
            "cache_dir": self.cache_dir,
            "out_dir": self.out_dir,
            "seed": self.seed,
            "device": self.device,
        }

    def _index(self, dataset, show_progress: bool | None) -> None:
        self.model_ = getattr(self, "_given_model", None)
        if self.model_ is None:
            self.model_ = train_or_load(
                dataset,
                self.config_,
                self.model_dir,
                self.seed,
                self.device,
                self.out_dir,
                self.cache_dir,
                show_progress,
            )
        given = None
        if self.codes == "trained":
            given = trained_codes(self.model_, self.model_dir, dataset.item_ids)
        codes, reps = encode_catalogue(
            self.model_, dataset.item_texts(), self.cache_dir, show_progress, codes=given
        )
        self.item_vectors_ = representation(reps, self.representation)
        self.ids_ = to_semantic_ids(dataset.item_ids, codes, self.model_.config)

    def _add_items(self, new, catalogue, show_progress: bool | None) -> None:
        """New items get the model's greedy codes and vectors (codes="trained" too: no training
        ever saw them); a code already taken gets the next collision suffix, old IDs stay."""
        codes, reps = encode_catalogue(self.model_, new.item_texts(), self.cache_dir, show_progress)
        vectors = representation(reps, self.representation)
        ids = self.ids_.extend(new.item_ids, codes)
        self.item_vectors_ = np.concatenate([self.item_vectors_, vectors])
        self.ids_ = ids
        self.item_ids_ = np.concatenate([self.item_ids_, new.item_ids])

    def _search(self, queries: list[str], k: int, show_progress: bool | None) -> SearchResults:
        _, reps = encode(self.model_, queries, show_progress=show_progress)
        Q = representation(reps, self.representation)
        rows, scores = top_k(Q, self.item_vectors_, k)
        out = SearchResults.empty(len(queries), k)
        out.ids[:, : rows.shape[1]] = self.item_ids_[rows]
        out.scores[:, : rows.shape[1]] = scores
        return out

    # ---- what the evaluation harness reads besides the ranking (see eval.bench)
    def query_codes(self, queries: list[str]) -> np.ndarray:
        """(Q, L) greedy codes of query texts."""
        return encode(self.model_, queries)[0]

    def item_codes(self) -> np.ndarray:
        """(N, L) the items' codes in catalogue order (without a collision suffix)."""
        L = self.model_.config.n_levels
        return np.stack([self.ids_.codes[self.ids_.index_of(i)][:L] for i in self.item_ids_])

    def item_vectors(self) -> np.ndarray:
        """(N, D) unit item vectors (for item -> item evaluation)."""
        return self.item_vectors_

    def index_bytes(self) -> int:
        return int(self.item_vectors_.nbytes) if self.item_vectors_ is not None else 0

    def _save_state(self, directory: Path) -> None:
        self.model_.save(directory / "model")
        np.save(directory / "item_vectors.npy", self.item_vectors_)
        self.ids_.save(directory / "ids")

    def _load_state(self, directory: Path) -> None:
        from gsid.ids.semantic_ids import SemanticIDs
        from gsid.models.model import GSIDModel

        self.model_ = GSIDModel.load(directory / "model", device=self.device)
        self.item_vectors_ = np.load(directory / "item_vectors.npy")
        self.ids_ = SemanticIDs.load(directory / "ids")
