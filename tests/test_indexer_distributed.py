"""Distributed GSID: two gloo processes on CPU, each holding half of a global batch, must get
the loss and the gradients of one process holding the whole batch."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from model_fixtures import TINY_T5

from gsid.models import distributed as dd
from gsid.models.config import GSIDConfig
from gsid.models.model import GSIDModel
from gsid.models.objective import batch_loss

ITEMS = [
    "acme cordless drill",
    "bolt miter saw",
    "zeta garden hose",
    "acme satin paint",
    "bolt impact driver",
    "zeta soaker hose",
    "acme jig saw blade",
    "bolt primer gallon",
]
QUERIES = [
    "drill",
    "cordless drill",
    "miter saw",
    "saw",
    "hose",
    "garden hose",
    "paint",
    "satin",
    "driver",
    "impact",
    "hose",
    "soaker",
    "blade",
    "jig saw",
    "primer",
    "gallon paint",
]
Q_ITEM = np.repeat(np.arange(8), 2)
PREFIX = np.array([[0], [1], [2], [3], [0], [2], [1], [3]])


def _cfg() -> GSIDConfig:
    return GSIDConfig(
        backbone="t5", t5_config=TINY_T5, n_levels=2, codebook_size=4, batch_size=8, seed=3
    )


def _loss_and_grads() -> tuple[float, dict[str, np.ndarray]]:
    torch.manual_seed(0)
    model = GSIDModel.build(_cfg())
    model.train()
    pos = np.zeros((16, 8), bool)
    pos[np.arange(16), Q_ITEM] = True
    pos[4, 5] = pos[10, 2] = True  # "hose" answers both hoses
    isl, qsl = dd.shard(8), dd.shard(16)
    im, imask = model.encode_texts(ITEMS[isl])
    qm, qmask = model.encode_texts(QUERIES[qsl])
    loss, parts, _ = batch_loss(
        model,
        1,
        False,
        im,
        imask,
        torch.as_tensor(PREFIX[isl]),
        qm,
        qmask,
        torch.as_tensor(PREFIX[Q_ITEM[qsl]]),
        torch.as_tensor(Q_ITEM),
        torch.as_tensor(pos),
    )
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    dd.average_gradients(params)
    grads = {
        n: p.grad.detach().clone().numpy()
        for n, p in model.named_parameters()
        if p.grad is not None
    }
    assert {"kl", "commit"} <= set(parts)
    return float(loss.detach()), grads


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        loss, grads = _loss_and_grads()
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), loss=loss, **grads)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # spawns two interpreters that import torch + transformers
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_ranks_match_one_process(tmp_path):
    torch.set_num_threads(1)
    ref_loss, ref = _loss_and_grads()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert abs(float(got["loss"]) - ref_loss) < 1e-5
        names = [n for n in ref if n in got.files]
        assert len(names) == len(ref) > 10
        for n in names:
            np.testing.assert_allclose(got[n], ref[n], atol=2e-5, rtol=1e-3, err_msg=n)


def test_helpers_without_process_group():
    x = torch.ones(3, 2, requires_grad=True)
    assert dd.gather(x) is x and dd.world_size() == 1 and dd.rank() == 0
    assert dd.shard(8) == slice(0, 8)
