"""The one-cycle schedule the seq2seq models train with: torch's OneCycleLR, except where its
warm-up would end on step 0 (it divides by zero there)."""

import pytest
import torch

from gsid._optim import one_cycle


def _lrs(sched, opt, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("n", [1, 2, 9, 10, 11, 30])
def test_one_cycle_runs_every_step_count(n):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    lrs = _lrs(one_cycle(opt, 0.1, n), opt, n)
    assert len(lrs) == n and max(lrs) <= 0.1 + 1e-12


def test_one_cycle_is_torchs_schedule_elsewhere():
    a = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    b = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(b, max_lr=0.1, total_steps=30, pct_start=0.1)
    assert _lrs(one_cycle(a, 0.1, 30), a, 30) == _lrs(ref, b, 30)
