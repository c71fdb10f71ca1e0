"""Catalogue growth: the held-out growth split, fine-tuning a trained GSID model (init_model)
and the code-stability report, on the 48-item catalogue with a tiny T5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import ds_fixture, one_torch_thread_fixture, small, t5_dir_fixture  # noqa: F401 (pytest fixtures)

from gsid.errors import DataValidationError, GsidError
from gsid.ids.semantic_ids import SemanticIDs
from gsid.models.assign import assign
from gsid.models.growth import code_stability, fine_tune_gsid, grow_split
from gsid.models.model import GSIDModel
from gsid.models.train import train_gsid


@pytest.fixture(scope="module")
def split(ds):
    return grow_split(ds, fraction=0.25, seed=0)


@pytest.fixture(scope="module")
def model_a(tmp_path_factory, split, t5_dir):
    old, _ = split
    out = tmp_path_factory.mktemp("a")
    model, ids = train_gsid(old, small(t5_dir), out, show_progress=False)
    return out, model, ids


# ---------------------------------------------------------------------- grow_split
def test_grow_split_holds_out_items_and_their_log(ds, split):
    old, full = split
    new_ids = set(full.info["growth"]["new_items"])
    assert len(new_ids) == 12 and len(old.items) == 36 and len(full.items) == 48
    assert not new_ids & set(old.item_ids)
    assert not new_ids & set(old.log["item_id"]) and not new_ids & set(old.judgments["item_id"])
    # new products have no log yet: no training pair names them in the grown catalogue ...
    assert not new_ids & set(full.training_pairs("train")["item_id"])
    # ... but dev relevance is kept whole, so evaluation asks for the new items too
    assert full.expected("dev") == ds.expected("dev")
    dev_new = [q for q, items in ds.expected("dev").items() if items <= new_ids]
    assert dev_new and not set(dev_new) & set(old.expected("dev"))
    keep = grow_split(ds, 0.25, seed=0, new_log="keep")[1]
    assert len(keep.training_pairs("train")) == len(ds.training_pairs("train"))
    again = grow_split(ds, 0.25, seed=0)[1].info["growth"]["new_items"]
    other = grow_split(ds, 0.25, seed=1)[1].info["growth"]["new_items"]
    assert again == full.info["growth"]["new_items"] != other


def test_grow_split_rejects_bad_arguments(ds):
    with pytest.raises(GsidError, match="fraction"):
        grow_split(ds, 1.5)
    with pytest.raises(GsidError, match="new_log"):
        grow_split(ds, 0.1, new_log="all")
    with pytest.raises(DataValidationError, match="at least 1 new"):
        grow_split(ds, 0.001)


# ---------------------------------------------------------------------- code_stability
def test_code_stability_counts():
    old = np.array([[0, 1, 2], [0, 1, 3], [1, 0, 0], [2, 2, 2]])
    new = np.array([[0, 1, 2], [0, 2, 3], [1, 0, 1], [5, 2, 2], [0, 1, 9], [7, 7, 7]])
    ids_old = ["a", "b", "c", "d"]
    ids_new = ["a", "b", "c", "d", "e", "f"]
    s = code_stability(old, new, ids_new, old_item_ids=ids_old)
    assert s["n_old"] == 4 and s["n_new"] == 2 and s["n_old_missing"] == 0 and s["levels"] == 3
    assert s["keep_full"] == 0.25
    assert s["keep_prefix1"] == 0.75 and s["keep_prefix2"] == 0.5
    # code 2 -> 5 is a renaming: relabelled, every first code is kept
    assert s["keep_prefix1_relabelled"] == 1.0 and s["ami_prefix1"] == pytest.approx(1.0)
    # e joins group (0, 1) of an old item, f starts a new first code
    assert s["new_sharing_prefix1"] == 0.5 and s["new_sharing_prefix2"] == 0.5
    assert s["new_sharing_full"] == 0.0
    # a mapping works the same; a permuted order of the new rows changes nothing
    mapping = {i: tuple(c) for i, c in zip(ids_old, old.tolist(), strict=True)}
    assert code_stability(mapping, new[::-1], ids_new[::-1]) == s


def test_code_stability_ignores_collision_suffixes():
    # GSID IDs carry the model's 2 steps; the appended collision code depends on group order
    old = SemanticIDs.from_codes(["a", "b"], [[1, 1, 0], [1, 1, 1]], config={"n_levels": 2})
    new = SemanticIDs.from_codes(
        ["n", "a", "b"], [[1, 1, 0], [1, 1, 1], [1, 1, 2]], config={"n_levels": 2}
    )
    s = code_stability(old, new)
    assert s["levels"] == 2 and s["keep_full"] == 1.0 and s["new_sharing_full"] == 1.0
    assert code_stability(old, new, levels=3)["keep_full"] == 0.0


def test_code_stability_errors():
    with pytest.raises(GsidError, match="item_ids"):
        code_stability({"a": (1,)}, np.zeros((1, 1), int))
    with pytest.raises(DataValidationError, match="same catalogue"):
        code_stability({"a": (1,)}, {"b": (1,)})
    with pytest.raises(GsidError, match="levels"):
        code_stability({"a": (1,)}, {"a": (1,)}, levels=3)


# ---------------------------------------------------------------------- fine-tuning
def test_assign_only_keeps_old_codes(model_a, split):
    _, model, _ = model_a
    old, full = split
    # a saved model assigns the same codes to an item whatever else the catalogue holds
    codes = assign(model, full.item_texts())
    before = assign(model, old.item_texts())
    s = code_stability(before, codes, full.item_ids, old_item_ids=old.item_ids)
    assert s["keep_full"] == 1.0 and s["n_new"] == 12


def test_zero_budget_fine_tune_reproduces_the_model(model_a, split):
    """Weights, codebooks and EMA buffers all carry over: no batch, no change."""
    _, model, _ = model_a
    _, full = split
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, _ = fine_tune_gsid(full, model, max_batches_per_level=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    assert all(torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert tuned.config.max_batches_per_level == 0 and tuned.config.warmup_batches == 0
    # no batch: each step re-assigns its level with the unchanged model, i.e. greedy decoding
    assert np.array_equal(tuned.item_codes_, assign(model, full.item_texts()))


def test_fine_tune_runs_from_a_saved_model(model_a, split, tmp_path):
    out, model, ids = model_a
    _, full = split
    cfg = model.config.replace(
        max_batches_per_level=2, warmup_batches=0, lr=1e-3, seed=3, reseed_dead=False
    )
    tuned, new_ids = train_gsid(full, cfg, tmp_path / "b", init_model=out / "model")
    assert new_ids.n_items == 48
    assert new_ids.provenance["fine_tuned_from"] == str(out / "model")
    assert len(tuned.train_log_) > 0 and len(tuned.level_summary_) == 2
    # the codebooks started from the old ones (not random): they moved, but little
    old_cb = model.codebooks.weight.detach()
    new_cb = tuned.codebooks.weight.detach()
    cos = torch.nn.functional.cosine_similarity(old_cb, new_cb, dim=-1)
    assert cos.min() > 0.8 and not torch.equal(old_cb, new_cb)
    s = code_stability(ids, new_ids)
    assert 0.0 <= s["keep_full"] <= s["keep_prefix1"] <= 1.0
    # deterministic: the same seed gives the same codes; the saved model reloads them
    again, _ = train_gsid(full, cfg, init_model=model)
    assert np.array_equal(again.item_codes_, tuned.item_codes_)
    reloaded = GSIDModel.load(tmp_path / "b" / "model")
    assert reloaded.config.max_batches_per_level == 2
    assert np.array_equal(assign(reloaded, full.item_texts()), assign(tuned, full.item_texts()))


def test_fine_tune_never_reseeds_the_codebooks_from_data(split, t5_dir):
    old, full = split
    model, _ = train_gsid(old, small(t5_dir, init_from_data=True, epochs_per_level=1))
    tuned, _ = fine_tune_gsid(full, model, max_batches_per_level=1, reseed_dead=False)
    cos = torch.nn.functional.cosine_similarity(
        model.codebooks.weight.detach(), tuned.codebooks.weight.detach(), dim=-1
    )
    assert cos.min() > 0.8  # a re-seeded codebook would sit on random batch items


def test_fine_tune_rejects_another_model_configuration(model_a, split):
    _, model, _ = model_a
    _, full = split
    for change in ({"codebook_size": 16}, {"n_levels": 3}, {"kl_weight": 0.0}):
        with pytest.raises(GsidError, match=f"{next(iter(change))}.*may change only"):
            train_gsid(full, model.config.replace(**change), init_model=model)
    with pytest.raises(GsidError, match="init_model must be"):
        train_gsid(full, model.config, init_model=42)
    with pytest.raises(GsidError, match="may change only"):
        fine_tune_gsid(full, model, max_batches_per_level=1, decoder_layers=3)
