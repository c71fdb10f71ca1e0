"""Keeping semantic IDs current when the catalogue grows: a held-out growth split, fine-tuning
a trained GSID model on the grown catalogue, and how many items keep their code.

    old_ds, full_ds = grow_split(ds, fraction=0.1, seed=0)   # 10% of the items arrive later
    model_a, ids_a = train_gsid(old_ds, cfg)                 # the model in production
    codes = assign(model_a, full_ds.item_texts())            # (a) new items get codes, no training
    model_b, ids_b = fine_tune_gsid(full_ds, model_a, max_batches_per_level=100)   # (b)
    code_stability(ids_a, ids_b)     # share of old items keeping their full code / first codes

Codes are labels: two models trained apart number their codes arbitrarily, so a retrained model
keeps almost no codes even when it groups items the same way. `code_stability` therefore also
reports the agreement of the groupings (AMI) and the share of old items that keep their first
code after the best one-to-one relabelling of the first level.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from gsid.errors import DataValidationError, GsidError

logger = logging.getLogger(__name__)

NEW_LOG = ("none", "keep")


# ---------------------------------------------------------------------- the growth split
def grow_split(dataset, fraction: float = 0.1, seed: int = 0, new_log: str = "none"):
    """Hold out `fraction` of the catalogue as products that arrive later.

    Returns (old_dataset, full_dataset), both sharing the queries table (so buckets agree):
      * old_dataset: the other items; log rows and judgments that name a held-out item are
        dropped (in every split), so a query whose relevant items were all held out has no
        training pair and no expected item there: the old catalogue never saw those products.
      * full_dataset: every item. New products have no search log yet, so with
        new_log="none" (default) the train-split log rows and judgments that name a new item are
        dropped: training on the grown catalogue sees the new items through their titles only
        (pseudo-queries). Dev/test relevance is kept whole: it is the future behaviour that
        evaluation measures, including whether the new items are found. new_log="keep" keeps
        the train log of the new items as well (an optimistic upper bound).
    Held-out items are drawn uniformly at random (seeded); `info["growth"]` records them."""
    import pandas as pd

    from gsid.data.dataset import Dataset

    if not 0.0 < fraction < 1.0:
        raise GsidError(f"fraction must be in (0, 1), got {fraction!r}; e.g. 0.1 for 10% growth")
    if new_log not in NEW_LOG:
        raise GsidError(f"new_log must be one of {list(NEW_LOG)}, got {new_log!r}")
    ids = dataset.item_ids
    n_new = round(float(fraction) * len(ids))
    if n_new < 1 or n_new >= len(ids):
        raise DataValidationError(
            f"a {fraction:.0%} growth of {len(ids)} items holds out {n_new} items; it needs at "
            f"least 1 new and 1 old item: use a larger catalogue or another fraction"
        )
    rng = np.random.default_rng([seed, 4])
    new_rows = np.sort(rng.choice(len(ids), n_new, replace=False))
    is_new = np.zeros(len(ids), bool)
    is_new[new_rows] = True
    new_ids = pd.Series(ids[is_new])
    info = {"fraction": fraction, "seed": seed, "n_new": n_new, "new_log": new_log}

    def keep(table: pd.DataFrame, drop: pd.Series) -> pd.DataFrame:
        return table[~drop.to_numpy()].reset_index(drop=True)

    log_new = dataset.log["item_id"].isin(new_ids)
    judg_new = dataset.judgments["item_id"].isin(new_ids)
    old = Dataset(
        items=dataset.items[~is_new].reset_index(drop=True),
        queries=dataset.queries,
        log=keep(dataset.log, log_new),
        judgments=keep(dataset.judgments, judg_new),
        name=f"{dataset.name}-old{1 - fraction:.0%}",
        relevance_threshold=dataset.relevance_threshold,
        bucket_rule=dataset.bucket_rule,
        info={**dataset.info, "growth": {**info, "role": "old"}},
    )
    log, judgments = dataset.log, dataset.judgments
    if new_log == "none":
        train_q = dataset.queries.loc[dataset.queries["split"] == "train", "query_id"]
        log = keep(log, log_new & log["query_id"].isin(train_q))
        judgments = keep(judgments, judg_new & judgments["query_id"].isin(train_q))
    full = Dataset(
        items=dataset.items,
        queries=dataset.queries,
        log=log,
        judgments=judgments,
        name=f"{dataset.name}-grown",
        relevance_threshold=dataset.relevance_threshold,
        bucket_rule=dataset.bucket_rule,
        info={**dataset.info, "growth": {**info, "role": "full", "new_items": new_ids.tolist()}},
    )
    logger.info(
        "growth split: %d old items, %d new (%d old log rows, %d grown log rows)",
        len(old.items),
        n_new,
        len(old.log),
        len(full.log),
    )
    return old, full


# ---------------------------------------------------------------------- fine-tuning
def fine_tune_gsid(
    dataset,
    init_model,
    max_batches_per_level: int | None = None,
    epochs_per_level: float | None = None,
    warmup_batches: int = 0,
    out_dir: str | os.PathLike | None = None,
    show_progress: bool | None = None,
    cache_dir: str | None = None,
    **changes,
):
    """Continue training `init_model` (a GSIDModel or a saved model directory) on `dataset`
    (e.g. the grown catalogue) for a short budget: every step runs again from the old weights
    and codebooks, `max_batches_per_level` batches (or `epochs_per_level`) each, with no
    contrastive-only warm-up by default (the codes exist already). `changes` may set the other
    budget / optimiser fields of fine_tune.FINE_TUNE_FIELDS (lr, batch_size, seed, ...).
    Returns (model, SemanticIDs) like train_gsid; `init_model` is not modified."""
    from gsid._io import read_manifest
    from gsid.models.config import GSIDConfig
    from gsid.models.model import FORMAT_VERSION, KIND, GSIDModel
    from gsid.models.train import train_gsid

    if isinstance(init_model, GSIDModel):
        base = init_model.config
    else:
        base = GSIDConfig.from_dict(
            read_manifest(init_model, KIND, FORMAT_VERSION, verify=False)["config"]
        )
    budget: dict = {"warmup_batches": warmup_batches, **changes}
    if max_batches_per_level is not None:
        budget["max_batches_per_level"] = max_batches_per_level
    if epochs_per_level is not None:
        budget["epochs_per_level"] = epochs_per_level
    cfg = base.replace(**budget)
    return train_gsid(
        dataset,
        cfg,
        out_dir,
        show_progress=show_progress,
        cache_dir=cache_dir,
        init_model=init_model,
    )


# ---------------------------------------------------------------------- code stability
def _as_code_map(codes_or_ids, item_ids: Sequence[str] | None, what: str):
    """(item ids (N,), codes (N, L), model levels or None) from a SemanticIDs, a mapping
    item id -> code, or a code matrix with its item ids."""
    from gsid.ids.semantic_ids import SemanticIDs

    if isinstance(codes_or_ids, SemanticIDs):
        levels = codes_or_ids.config.get("n_levels")  # GSID: the model's own steps
        return codes_or_ids.item_ids, codes_or_ids.codes, levels
    if isinstance(codes_or_ids, Mapping):
        keys = np.asarray([str(k) for k in codes_or_ids], dtype=object)
        rows = [tuple(int(c) for c in v) for v in codes_or_ids.values()]
        width = max((len(r) for r in rows), default=0)
        codes = np.full((len(rows), width), -1, np.int64)
        for n, r in enumerate(rows):
            codes[n, : len(r)] = r
        return keys, codes, None
    codes = np.asarray(codes_or_ids)
    if codes.ndim != 2:
        raise GsidError(
            f"{what} must be a SemanticIDs, a mapping item id -> code, or an (N, L) code "
            f"matrix; got an array of shape {codes.shape}"
        )
    if item_ids is None:
        raise GsidError(f"{what} is a code matrix: pass item_ids (one per row) as well")
    keys = np.asarray([str(i) for i in item_ids], dtype=object)
    if len(keys) != len(codes):
        raise GsidError(f"{what}: {len(codes)} code rows but {len(keys)} item ids")
    return keys, codes, None


def code_stability(
    old_ids_or_codes,
    new_codes,
    item_ids: Sequence[str] | None = None,
    old_item_ids: Sequence[str] | None = None,
    levels: int | None = None,
) -> dict:
    """How many items keep their semantic ID when the catalogue grows (or a model changes).

    old_ids_or_codes: the IDs before (SemanticIDs, a mapping item id -> code, or an (N_old, L)
        matrix with `old_item_ids`). new_codes: the IDs after, for the grown catalogue
        (SemanticIDs, mapping, or an (N, L) matrix whose rows are `item_ids`).
    levels: compare the first `levels` codes (default: the GSID model's steps when a
        SemanticIDs says so, so collision suffixes, which depend on the order of a group, are
        not counted; else every column).
    Returns, over the old items still in the catalogue: keep_full, keep_prefix{l} (first l
    codes equal), ami_prefix{l} (agreement of the groupings, label-free) and
    keep_prefix1_relabelled (first code kept after the best one-to-one relabelling); over the
    new items: new_sharing_full / new_sharing_prefix{l} (their code, or first l codes, is also
    an old item's: they join an existing group)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_mutual_info_score

    o_ids, o_codes, o_lv = _as_code_map(old_ids_or_codes, old_item_ids, "old_ids_or_codes")
    n_ids, n_codes, n_lv = _as_code_map(new_codes, item_ids, "new_codes")
    L = levels or min(v for v in (o_lv, n_lv, o_codes.shape[1], n_codes.shape[1]) if v)
    n_cols = min(o_codes.shape[1], n_codes.shape[1])
    if n_cols < L:
        raise GsidError(
            f"levels={L} but the codes have {o_codes.shape[1]} (old) and {n_codes.shape[1]} "
            f"(new) columns; pass levels <= {n_cols}"
        )
    o_codes, n_codes = o_codes[:, :L], n_codes[:, :L]
    row_new = {iid: n for n, iid in enumerate(n_ids)}
    old_set = set(o_ids.tolist())
    both = np.asarray([n for n, iid in enumerate(o_ids) if iid in row_new], np.int64)
    if len(both) == 0:
        raise DataValidationError(
            "no item of the old IDs is in the new ones: pass IDs of the same catalogue (the new "
            "one grown from the old)"
        )
    a = o_codes[both]  # (M, L) old codes of the kept items
    b = n_codes[[row_new[o_ids[n]] for n in both]]  # (M, L) their new codes
    new_rows = np.asarray([n for n, iid in enumerate(n_ids) if iid not in old_set], np.int64)
    out: dict = {
        "levels": int(L),
        "n_old": len(both),
        "n_old_missing": int(len(o_ids) - len(both)),
        "n_new": len(new_rows),
        "keep_full": float((a == b).all(1).mean()),
    }
    for lv in range(1, L):
        out[f"keep_prefix{lv}"] = float((a[:, :lv] == b[:, :lv]).all(1).mean())
    for lv in range(1, L + 1):
        la = np.unique(a[:, :lv], axis=0, return_inverse=True)[1].ravel()
        lb = np.unique(b[:, :lv], axis=0, return_inverse=True)[1].ravel()
        out[f"ami_prefix{lv}"] = float(adjusted_mutual_info_score(la, lb))
    # best one-to-one relabelling of level 1 (Hungarian on the contingency table): how much of
    # the first level survives if a downstream system may rename codes once
    ua, ia = np.unique(a[:, 0], return_inverse=True)
    ub, ib = np.unique(b[:, 0], return_inverse=True)
    table = np.zeros((len(ua), len(ub)), np.int64)
    np.add.at(table, (ia.ravel(), ib.ravel()), 1)
    r, c = linear_sum_assignment(-table)
    out["keep_prefix1_relabelled"] = float(table[r, c].sum() / len(a))
    if len(new_rows):
        nc = n_codes[new_rows]
        # the old items' codes in the *new* assignment: does a new item join an existing group?
        for lv in range(1, L + 1):
            known = {tuple(x) for x in b[:, :lv].tolist()}
            key = "new_sharing_full" if lv == L else f"new_sharing_prefix{lv}"
            out[key] = float(np.mean([tuple(x) in known for x in nc[:, :lv].tolist()]))
    return out


__all__ = ["NEW_LOG", "code_stability", "fine_tune_gsid", "grow_split"]
