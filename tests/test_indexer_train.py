"""Progressive GSID training on a 48-item catalogue with a tiny T5: artifacts, determinism,
resume, ablation switches, evaluation helpers, the retriever."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_fixtures import ds_fixture, one_torch_thread_fixture, small, t5_dir_fixture  # noqa: F401 (pytest fixtures)

from gsid.errors import GsidError
from gsid.eval import run_bench
from gsid.eval.metrics import code_accuracy
from gsid.ids.semantic_ids import SemanticIDs
from gsid.models.assign import ami_with_categories, assign
from gsid.models.model import GSIDModel
from gsid.models.sampling import TrainData
from gsid.models.train import train_gsid
from gsid.models.trainer import GSIDTrainer
from gsid.retrieval.gsid import GSIDRetriever


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ds, t5_dir):
    out = tmp_path_factory.mktemp("run")
    model, ids = train_gsid(
        ds, small(t5_dir, n_levels=3, epochs_per_level=3), out, show_progress=False
    )
    return out, model, ids


def test_train_writes_artifacts(trained, ds):
    out, _, ids = trained
    assert isinstance(ids, SemanticIDs)
    assert ids.n_items == len(ds.items) and ids.collision_rate() == 0.0
    assert ids.config["builder"] == "gsid"
    assert not (out / "checkpoint").exists()
    loaded = SemanticIDs.load(out / "ids")
    assert np.array_equal(loaded.codes, ids.codes)
    log = json.loads((out / "train_log.json").read_text())
    assert [lv["level"] for lv in log["levels"]] == [0, 1, 2]
    assert all(1 <= lv["codes_used"] <= 8 for lv in log["levels"])
    assert {"contrastive", "loss"} <= set(log["log"][-1])
    assert "commit" in log["log"][-1]  # the last level has earlier codes to keep


def test_saved_model_reassigns_the_same_codes(trained, ds):
    out, model, ids = trained
    again = GSIDModel.load(out / "model")
    codes = assign(again, ds.item_texts())
    assert np.array_equal(codes, assign(model, ds.item_texts()))
    # before collision resolution the artifact's first levels are the codes frozen in training
    assert np.array_equal(ids.codes[:, :3], model.item_codes_)
    # how far greedy decoding by the final model agrees with them is recorded per level
    agree = [
        float((codes[:, : lv + 1] == model.item_codes_[:, : lv + 1]).all(1).mean())
        for lv in range(3)
    ]
    assert agree == pytest.approx([lv["greedy_agreement"] for lv in model.final_levels_])


def test_gsid_is_evaluated_by_the_one_harness(trained, ds):
    """q2i, code agreement and i2i of a GSID model all come from run_bench."""
    out, model, _ = trained
    res = run_bench(ds, {"gsid": GSIDRetriever(model_dir=str(out))}, timing=False, i2i=True)
    m = res.methods["gsid"]
    q = m.metrics["overall"]
    assert q["n"] > 0 and 0 <= q["R@1"] <= q["R@10"] <= q["R@100"] == 1.0
    assert set(m.metrics) >= {"overall", "head", "torso", "tail"}
    acc = m.extra["code_accuracy"]
    assert 0 <= acc["l2"] <= acc["l1"] <= 1
    # by hand: the share of (dev query, relevant item) pairs whose first code agrees
    r = res.methods["gsid"]
    expected = ds.expected("dev")
    qids = res.query_ids
    qtext = dict(zip(ds.queries["query_id"], ds.queries["query"], strict=True))
    qcodes = assign(model, [qtext[q] for q in qids])
    icodes = {i: c for i, c in zip(ds.item_ids, assign(model, ds.item_texts()), strict=True)}
    same = [qcodes[a][0] == icodes[i][0] for a, q in enumerate(qids) for i in expected[q]]
    assert acc["l1"] == pytest.approx(np.mean(same))
    assert r.extra["i2i"] == {}  # every query has one relevant item here: no item neighbours
    # the codes frozen in training, read back from the run directory
    frozen = GSIDRetriever(model_dir=str(out), codes="trained")
    run_bench(ds, {"gsid": frozen}, timing=False)
    assert np.array_equal(frozen.item_codes(), model.item_codes_)
    ami = ami_with_categories(model.item_codes_, ds)
    assert set(ami) == {
        "cat1_vs_codes1",
        "cat1_vs_codes2",
        "cat1_vs_codes3",
        "cat2_vs_codes1",
        "cat2_vs_codes2",
        "cat2_vs_codes3",
    }
    assert code_accuracy(np.array([[1, 2]]), np.array([[1, 3]]), [(0, 0)]) == {"l1": 1.0, "l2": 0.0}


def test_same_seed_same_codes_and_resume(tmp_path, ds, t5_dir):
    cfg = small(t5_dir)
    _, a = train_gsid(ds, cfg, tmp_path / "a", show_progress=False)
    _, b = train_gsid(ds, cfg, tmp_path / "b", show_progress=False)
    assert np.array_equal(a.codes, b.codes)
    # interrupt mid level 2, then a rerun resumes from the checkpoint
    data = TrainData.from_dataset(ds, "train", cfg.pseudo_queries_per_item, cfg.seed)
    GSIDTrainer(cfg).fit(data, tmp_path / "c", show_progress=False, stop_after=5)
    assert (tmp_path / "c" / "checkpoint" / "trainer.pt").is_file()
    with pytest.raises(GsidError, match="another configuration"):
        train_gsid(ds, cfg.replace(lr=1e-2), tmp_path / "c", show_progress=False)
    _, c = train_gsid(ds, cfg, tmp_path / "c", show_progress=False)
    assert np.array_equal(a.codes, c.codes)


def test_training_killed_at_a_checkpoint_resumes_to_the_same_codes(tmp_path, ds, t5_dir):
    """A real interruption: `kill -9` of a training process once it has checkpointed; the rerun
    resumes from the checkpoint and ends with the codes of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = small(t5_dir, epochs_per_level=12, checkpoint_every=4)
    _, reference = train_gsid(ds, cfg, tmp_path / "ref", show_progress=False)
    ds.save(tmp_path / "data")
    sets = [f"{k}={json.dumps(v)}" for k, v in cfg.to_dict().items()]
    run = tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, "-m", "gsid.models.train", "--data", str(tmp_path / "data"),
         "--out", str(run), "--set", *sets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    deadline = time.time() + 120
    while not (run / "checkpoint" / "trainer.pt").is_file() and time.time() < deadline:
        assert p.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (run / "model").exists(), "the run finished before it was killed"
    state = __import__("torch").load(run / "checkpoint" / "trainer.pt", weights_only=False)
    assert state["batch"] > 0  # interrupted mid-way, not at a level boundary
    _, resumed = train_gsid(ds, cfg, run, show_progress=False)
    assert np.array_equal(reference.codes, resumed.codes)
    assert not (run / "checkpoint").exists()


ABLATIONS = dict(
    ema=False,
    multi_query=False,
    prefix_batches=False,
    kl_weight=0.0,
    commit_weight=0.0,
    reseed_dead=False,
    pseudo_queries_per_item=0,
    epochs_per_level=1,
)


def _fit_recording_codebooks(ds, cfg) -> tuple[GSIDTrainer, list]:
    """Fit, recording (level, codebooks before, codebooks after) around every training step."""
    snaps: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    class Recording(GSIDTrainer):
        def _step(self, model, opt, feats, level, *rest):
            before = model.codebooks.weight.detach().clone()
            parts = super()._step(model, opt, feats, level, *rest)
            snaps.append((level, before, model.codebooks.weight.detach().clone()))
            return parts

    trainer = Recording(cfg).fit(TrainData.from_dataset(ds, "train", 0), None, False)
    return trainer, snaps


def _level_span(snaps, level) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Codebooks before the first and after the last step of `level`, and its step count."""
    steps = [(b, a) for lv, b, a in snaps if lv == level]
    return steps[0][0], steps[-1][1], len(steps)


def test_ablation_switches_run(tmp_path, ds, t5_dir):
    cfg = small(t5_dir, **ABLATIONS)
    trainer, snaps = _fit_recording_codebooks(ds, cfg)
    assert trainer.item_codes_.shape == (len(ds.items), 2)
    assert trainer.log_[-1]["codebook"] > 0  # gradient codebooks get the VQ pull
    cb = trainer.model_.codebooks.weight
    assert cb.requires_grad
    assert [lv for lv, _, _ in snaps] == sorted(lv for lv, _, _ in snaps)
    assert {lv for lv, _, _ in snaps} == {0, 1}
    # the codebook of the level being trained moves during its level
    for level in (0, 1):
        start, end, _ = _level_span(snaps, level)
        assert not torch.equal(start[level], end[level]), f"codebook {level} did not train"
    # a later level's codebook stays as it was while level 0 trains (no gradient, and neither
    # AdamW's weight decay nor its momentum may move a frozen level)
    start, end, n = _level_span(snaps, 0)
    assert n > cfg.warmup_batches and torch.equal(start[1], end[1])
    # nothing between the steps touches them: level 1 starts where level 0 ended
    assert torch.equal(_level_span(snaps, 1)[0], end)
    assert torch.equal(cb.detach(), snaps[-1][2])


def test_gradient_codebook_of_a_finished_level_stays_frozen(ds, t5_dir):
    cfg = small(t5_dir, **ABLATIONS, weight_decay=0.0)  # no decay: only the gradient path
    _, snaps = _fit_recording_codebooks(ds, cfg)
    start, end, _ = _level_span(snaps, 0)
    assert torch.equal(start[1], end[1])  # level 1, not yet trained: untouched
    start, end, _ = _level_span(snaps, 1)
    assert not torch.equal(start[1], end[1])
    assert torch.equal(start[0], end[0]), "codebook 0 moved after its level was done"


def test_retriever(tmp_path, ds, t5_dir):
    from gsid.retrieval.base import load_retriever
    from gsid.retrieval.gsid import GSIDRetriever

    cfg = small(t5_dir, epochs_per_level=1).to_dict()
    cfg.pop("seed")
    r = GSIDRetriever(config=cfg).index(ds, show_progress=False)
    ids, scores = r.search(["cordless drill", "garden hose"], k=5)
    assert ids.shape == (2, 5) and np.all(np.diff(scores, axis=1) <= 1e-6)
    r.save(tmp_path / "r")
    r2 = load_retriever(tmp_path / "r")
    ids2, _ = r2.search(["cordless drill", "garden hose"], k=5)
    assert (ids == ids2).all()
    assert r2.ids_.n_items == len(ds.items)
    from gsid.retrieval.registry import method_class

    assert method_class("gsid") is GSIDRetriever


def test_no_weight_decay_on_norms_biases_and_codebooks(ds, t5_dir):
    from gsid.models.model import GSIDModel

    cfg = small(t5_dir, ema=False)
    model = GSIDModel.build(cfg)
    opt = GSIDTrainer(cfg)._optimizer(model)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.codebooks.weight) in plain
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) == id(model.codebooks.weight):
            continue
        assert id(p) in (plain if p.ndim < 2 else decayed), name
    assert all(g["lr"] in (cfg.lr, cfg.encoder_lr) for g in opt.param_groups)
