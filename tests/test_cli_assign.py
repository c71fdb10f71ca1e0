"""`gsid ids assign`: codes from a saved GSID model without training (a grown catalogue or
texts), with the stability report against earlier IDs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import ds_fixture, one_torch_thread_fixture, t5_dir_fixture  # noqa: F401 (pytest fixtures)

from gsid.cli import main
from gsid.ids.semantic_ids import SemanticIDs
from gsid.models.assign import assign
from gsid.models.config import GSIDConfig
from gsid.models.growth import grow_split
from gsid.models.train import train_gsid


@pytest.fixture(scope="module")
def run(tmp_path_factory, ds, t5_dir):
    """A model trained on 75% of the tiny catalogue; the grown catalogue saved as a dataset."""
    out = tmp_path_factory.mktemp("cli-assign")
    old, full = grow_split(ds, 0.25, seed=0)
    cfg = GSIDConfig(
        backbone="t5",
        model_path=t5_dir,
        n_levels=2,
        codebook_size=8,
        batch_size=16,
        epochs_per_level=1,
        warmup_batches=1,
        lr=3e-3,
        dead_window=3,
    )
    model, _ = train_gsid(old, cfg, out / "run", show_progress=False)
    full.save(out / "full")
    return out, model, full


def test_assign_writes_ids_for_the_grown_catalogue(run, capsys):
    out, model, full = run
    ids_dir = out / "ids-grown"
    rc = main(["--no-progress", "ids", "assign", "--model", str(out / "run" / "model"),
               "--data", str(out / "full"), "--out", str(ids_dir),
               "--compare", str(out / "run" / "ids")])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    ids = SemanticIDs.load(ids_dir)
    assert list(ids.item_ids) == list(full.item_ids) and ids.collision_rate() == 0.0
    assert np.array_equal(ids.codes[:, :2], assign(model, full.item_texts()))
    assert "48 items" in printed
    report = json.loads(printed[printed.index("{") :])
    assert report["n_old"] == 36 and report["n_new"] == 12


def test_assign_keeps_the_codes_of_indexed_items(run, capsys):
    out, model, full = run
    rc = main(["--no-progress", "ids", "assign", "--model", str(out / "run" / "model"),
               "--data", str(out / "full"), "--out", str(out / "ids-kept"),
               "--keep", str(out / "run" / "ids"),
               "--compare", str(out / "run" / "ids")])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{") :])
    assert report["keep_full"] == 1.0 and report["n_new"] == 12  # old items keep their codes
    ids = SemanticIDs.load(out / "ids-kept")
    new = [r for r, i in enumerate(full.item_ids) if i not in set(model_item_ids(out))]
    greedy = assign(model, [full.item_texts()[r] for r in new])
    assert np.array_equal(ids.codes[new, :2], greedy)  # new items: the model's codes


def model_item_ids(out) -> list[str]:
    return list(SemanticIDs.load(out / "run" / "ids").item_ids)


def test_assign_prints_codes(run, capsys):
    out, model, full = run
    m = str(out / "run" / "model")
    assert main(["ids", "assign", "--model", m, "--text", "cordless drill", "--text", "hose"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = assign(model, ["cordless drill", "hose"])
    assert [ln.split("\t")[0] for ln in lines] == ["-".join(map(str, r)) for r in expected]
    assert [ln.split("\t")[1] for ln in lines] == ["cordless drill", "hose"]
    assert main(["ids", "assign", "--model", m, "--data", str(out / "full")]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 48 and rows[0].split("\t")[0] == full.item_ids[0]


def test_assign_errors(run, tmp_path, capsys):
    out, _, _ = run
    m = str(out / "run" / "model")
    assert main(["ids", "assign", "--model", m]) == 2
    assert "either --data" in capsys.readouterr().err
    assert main(["ids", "assign", "--model", m, "--text", "x", "--out", str(tmp_path / "o")]) == 2
    assert "--text only prints" in capsys.readouterr().err
    assert main(["ids", "assign", "--model", str(tmp_path), "--text", "x"]) == 2
    assert "manifest.json is missing" in capsys.readouterr().err
