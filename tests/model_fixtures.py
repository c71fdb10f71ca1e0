"""A tiny hand-built marketplace for the GSID indexer tests (4 categories x 12 items)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gsid.data.dataset import Dataset
from gsid.models.config import GSIDConfig

TINY_T5 = dict(
    d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16, dropout_rate=0.0
)

_CATS = {
    "Tools > Drills": (["cordless", "hammer", "impact", "brushless"], ["drill", "driver"]),
    "Tools > Saws": (["circular", "miter", "jig", "table"], ["saw", "blade"]),
    "Garden > Hoses": (["garden", "expandable", "rubber", "soaker"], ["hose", "nozzle"]),
    "Paint > Interior": (["matte", "satin", "gloss", "primer"], ["paint", "gallon"]),
}


def tiny_dataset(per_cat: int = 12, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    items, queries, log = [], [], []
    n = 0
    for cat, (adjs, nouns) in _CATS.items():
        for j in range(per_cat):
            a, b = adjs[j % len(adjs)], nouns[(j // len(adjs)) % len(nouns)]
            brand = ["acme", "bolt", "zeta"][j % 3]
            items.append(
                {"item_id": f"i{n}", "title": f"{brand} {a} {b} model {j}", "category": cat}
            )
            for k, q in enumerate((f"{a} {b}", f"{brand} {b}")):
                qid = f"q{n}_{k}"
                split = "dev" if (n + k) % 5 == 0 else "train"
                queries.append(
                    {
                        "query_id": qid,
                        "query": q + ("" if split == "train" else " buy"),
                        "split": split,
                        "frequency": float(rng.integers(1, 50)),
                    }
                )
                log.append({"query_id": qid, "item_id": f"i{n}", "weight": 1.0})
            n += 1
    return Dataset(
        items=pd.DataFrame(items), queries=pd.DataFrame(queries), log=pd.DataFrame(log), name="tiny"
    )


def save_tiny_t5(path, texts: list[str]) -> str:
    """A tiny T5 checkpoint directory (random weights + a WordLevel tokenizer trained on
    `texts`), as a user's local T5-family checkpoint would look."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(path))
    cfg = T5Config(
        vocab_size=len(fast), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **TINY_T5
    )
    T5ForConditionalGeneration(cfg).save_pretrained(str(path))
    return str(path)


def small(t5_dir, **kw) -> GSIDConfig:
    """A tiny-T5 GSID config that trains in seconds; keyword arguments override fields."""
    base = dict(
        backbone="t5",
        model_path=t5_dir,
        n_levels=2,
        codebook_size=8,
        batch_size=16,
        epochs_per_level=2,
        warmup_batches=1,
        lr=3e-3,
        encoder_lr=3e-3,
        dead_window=3,
    )
    base.update(kw)
    return GSIDConfig(**base)


def all_texts(ds: Dataset) -> list[str]:
    return ds.item_texts() + ds.queries["query"].tolist()


# Fixtures shared by the indexer test modules, which import them by these names
# (pytest registers a fixture under its `name`, whatever the imported attribute is called).
@pytest.fixture(autouse=True, scope="module", name="one_torch_thread")
def one_torch_thread_fixture():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", name="ds")
def ds_fixture() -> Dataset:
    return tiny_dataset()


@pytest.fixture(scope="module", name="t5_dir")
def t5_dir_fixture(tmp_path_factory, ds) -> str:
    return save_tiny_t5(tmp_path_factory.mktemp("t5"), all_texts(ds))


#: a GSID config small enough to train in seconds on the tiny catalogue (MiniLM, pooled memory)
TINY_GSID = dict(
    n_levels=2,
    codebook_size=4,
    batch_size=16,
    warmup_batches=1,
    memory_skip=True,
    init_from_data=True,
)
