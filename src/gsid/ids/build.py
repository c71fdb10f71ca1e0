"""`build_ids`: one entry point for every ID builder, returning a SemanticIDs artifact.

    X = SentenceEncoder().encode_cached(titles, "cache/")            # (N, D)
    ids = build_ids("rq", X, item_ids)                                # residual k-means, 4 x 128
    ids = build_ids("rqvae", X, item_ids, epochs=100, device="cuda")  # options of the builder
    ids = build_ids("hkmeans", X, item_ids, levels=3, codebook_size=256)
    ids = build_ids("random", X, item_ids)                            # the floor for AMI

Every item gets a unique ID (collisions="append" or "reassign") unless collisions="none".
Builder options are checked: an unknown one raises GsidError with the valid ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from gsid._options import check_types, type_hints
from gsid.errors import DataValidationError, GsidError, check_options
from gsid.ids.collisions import STRATEGIES, collision_stats, resolve_collisions
from gsid.ids.residual_kmeans import as_embeddings, level_sizes
from gsid.ids.semantic_ids import SemanticIDs

logger = logging.getLogger(__name__)

METHODS = ("rq", "rqvae", "hkmeans", "random")

RQ_OPTIONS = {"niter", "max_points_per_centroid", "on_small", "n_candidates", "model_dir"}
HKMEANS_OPTIONS = {"niter", "backend", "max_points_per_centroid", "n_candidates"}
RANDOM_OPTIONS = {"n_candidates"}
_RQVAE_FIXED = {"input_dim", "levels", "codebook_size", "seed"}  # given by build_ids itself


def method_options(method: str) -> set[str]:
    """Valid **method_options of `build_ids` for one method."""
    if method == "rq":
        return set(RQ_OPTIONS)
    if method == "hkmeans":
        return set(HKMEANS_OPTIONS)
    if method == "random":
        return set(RANDOM_OPTIONS)
    if method == "rqvae":
        from gsid.ids.rqvae import RQVAEConfig

        return (set(RQVAEConfig.fields()) - _RQVAE_FIXED) | {"device", "model_dir"}
    raise GsidError(f"unknown ID method {method!r}; use one of {list(METHODS)}")


def _option_hints(method: str) -> dict[str, Any]:
    if method == "rq":
        from gsid.ids.residual_kmeans import ResidualKMeans

        return type_hints(ResidualKMeans)
    if method == "hkmeans":
        from gsid.ids.hkmeans import HierarchicalKMeans

        return type_hints(HierarchicalKMeans)
    if method == "rqvae":
        from gsid.ids.rqvae import RQVAEConfig

        return type_hints(RQVAEConfig)
    return {"n_candidates": int}


def check_build_args(
    method: str,
    levels: int = 4,
    codebook_size: int | Sequence[int] = 128,
    collisions: str = "append",
    **method_options_: Any,
) -> list[int]:
    """Every check of `build_ids` that needs no data (the CLI runs it before embedding)."""
    if method not in METHODS:
        raise GsidError(f"unknown ID method {method!r}; use one of {list(METHODS)}")
    if collisions not in STRATEGIES:
        raise GsidError(
            f"unknown collisions strategy {collisions!r}; use one of {list(STRATEGIES)}"
        )
    check_options(method_options_, method_options(method), f"{method!r} ID builder")
    check_types(method_options_, _option_hints(method), f"{method!r} ID builder")
    sizes = level_sizes(levels, codebook_size)
    if any(k < 2 for k in sizes):
        raise GsidError(
            f"codebook sizes must be >= 2 (a level of one code carries no information), got {sizes}"
        )
    return sizes


def build_ids(
    method: str,
    embeddings: np.ndarray | None,
    item_ids: Sequence[str] | np.ndarray,
    levels: int = 4,
    codebook_size: int | Sequence[int] = 128,
    collisions: str = "append",
    seed: int = 0,
    show_progress: bool | None = None,
    *,
    provenance: dict | None = None,
    append_to: str = "colliding",
    **method_options_: Any,
) -> SemanticIDs:
    """Fit `method` on item embeddings (N, D) and return the items' semantic IDs.

    method: "rq" (residual k-means), "rqvae", "hkmeans" (DSI-style tree, variable length),
        "random" (embeddings may be None).
    codebook_size: one size for all levels or one per level.
    collisions: "append" (colliders get 0, 1, 2, ... one level deeper), "reassign" (colliders
        move to their next-best last-level code, the rest appended), "none" (keep collisions).
    append_to: "colliding" or "all" (every full-length item gets the extra level: fixed length).
    provenance: extra facts to record (encoder, dataset name, ...).
    method_options: see `method_options(method)`; e.g. rq: niter, max_points_per_centroid,
        on_small ("shrink"|"error"), n_candidates, model_dir (save the fitted quantizer);
        rqvae: any RQVAEConfig field (epochs, batch_size, lr, beta, ema, dead_code_steps, ...)
        plus device and model_dir; hkmeans: niter, backend ("faiss"|"sklearn"), ...
    """
    sizes = check_build_args(method, levels, codebook_size, collisions, **method_options_)
    item_ids = np.asarray([str(x) for x in item_ids], dtype=object)
    if embeddings is None:
        if method != "random":
            raise DataValidationError(f"method {method!r} needs embeddings (N, D); got None")
        X = None
    else:
        X = as_embeddings(embeddings)
        if X.shape[0] != len(item_ids):
            raise DataValidationError(
                f"{X.shape[0]} embedding rows but {len(item_ids)} item ids; they must align"
            )
    if len(item_ids) == 0:
        raise DataValidationError("no items: pass at least one item id")
    opts = dict(method_options_)
    t0 = time.perf_counter()
    extra_prov: dict[str, Any] = {}
    cand = dist = None

    if method == "rq":
        from gsid.ids.residual_kmeans import ResidualKMeans

        model_dir = opts.pop("model_dir", None)
        rq = ResidualKMeans(levels=levels, codebook_size=sizes, seed=seed, **opts)
        rq.fit(X, show_progress=show_progress)
        codes, cand, dist = rq.encode_with_candidates(X)
        lengths = np.full(len(item_ids), levels, np.int32)
        config = rq.get_config()
        out_sizes = rq.codebook_sizes_
        if model_dir:
            extra_prov["model_dir"] = str(rq.save(model_dir))
        X_hat = rq.decode(codes)
        extra_prov["reconstruction_mse"] = float(((X - X_hat) ** 2).sum(1).mean())
    elif method == "rqvae":
        from gsid.ids.rqvae import RQVAE, RQVAEConfig

        model_dir = opts.pop("model_dir", None)
        device = opts.pop("device", None)
        cfg = RQVAEConfig.from_dict(
            {
                "input_dim": X.shape[1],
                "levels": levels,
                "codebook_size": sizes,
                "seed": seed,
                **opts,
            }
        )
        model = RQVAE(cfg).fit(X, show_progress=show_progress, device=device)
        codes, cand, dist = model.encode_with_candidates(X)
        lengths = np.full(len(item_ids), levels, np.int32)
        config = {"builder": "rqvae", **cfg.to_dict()}
        out_sizes = cfg.sizes
        if model_dir:
            extra_prov["model_dir"] = str(model.save(model_dir))
        extra_prov["device"] = str(model.device)
        if model.history_:
            extra_prov["final_epoch"] = {
                k: model.history_[-1][k] for k in ("loss", "recon", "commit", "usage")
            }
    elif method == "hkmeans":
        from gsid.ids.hkmeans import HierarchicalKMeans

        hk = HierarchicalKMeans(levels=levels, codebook_size=sizes, seed=seed, **opts)
        codes, lengths = hk.fit_codes(X, show_progress=show_progress)
        cand, dist = hk.candidates_, hk.distances_
        config = hk.get_config()
        out_sizes = hk.codebook_sizes_
        extra_prov["n_kmeans_runs"] = hk.n_kmeans_runs_
    else:  # random
        codes, cand = random_codes(len(item_ids), sizes, seed, opts.get("n_candidates", 16))
        lengths = np.full(len(item_ids), levels, np.int32)
        config = {"builder": "random", "levels": levels, "codebook_size": sizes, "seed": seed}
        out_sizes = sizes

    config.update(levels=levels, seed=seed)
    prov = {
        "n_items": len(item_ids),
        "embedding_dim": None if X is None else int(X.shape[1]),
        "fit_seconds": round(time.perf_counter() - t0, 3),
        **extra_prov,
        **(provenance or {}),
    }
    ids = SemanticIDs(
        item_ids=item_ids,
        codes=codes,
        lengths=lengths,
        codebook_sizes=list(out_sizes),
        config=config,
        provenance=prov,
    )
    ids.provenance["collisions_raw"] = collision_stats(ids)
    ids = resolve_collisions(ids, collisions, candidates=cand, distances=dist, append_to=append_to)
    logger.info(
        "built %r IDs for %d items: %s", method, ids.n_items, ids.provenance["collisions"]["after"]
    )
    return ids


def random_codes(
    n: int, sizes: list[int], seed: int, n_candidates: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random codes (N, L) and random last-level alternatives (N, C), seeded."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, k, n) for k in sizes], axis=1).astype(np.int32)
    c = max(1, min(n_candidates, sizes[-1]))
    cand = rng.integers(0, sizes[-1], (n, c)).astype(np.int32)
    cand[:, 0] = codes[:, -1]
    return codes, cand
