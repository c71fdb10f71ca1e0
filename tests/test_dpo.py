"""The DPO loss against a hand-computed value; the shared prefix is masked out."""

import math

import numpy as np
import torch

from gsid.models.lexical.dpo import dpo_loss, shared_prefix_masks


def test_dpo_loss_hand_computed():
    pc, pr = torch.tensor([-1.0]), torch.tensor([-2.0])
    rc, rr = torch.tensor([-1.5]), torch.tensor([-1.5])
    loss, margin = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # margin = 0.5 * ((-1 + 1.5) - (-2 + 1.5)) = 0.5; loss = log(1 + e^-0.5)
    assert math.isclose(margin.item(), 0.5, rel_tol=1e-6)
    assert math.isclose(loss.item(), math.log1p(math.exp(-0.5)), rel_tol=1e-6)
    assert math.isclose(loss.item(), 0.474077, rel_tol=1e-5)
    loss2, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, sft_nll=torch.tensor([2.0]), sft_weight=0.25)
    assert math.isclose(loss2.item(), 0.474077 + 0.5, rel_tol=1e-5)


def test_dpo_prefers_chosen_gradient_direction():
    pc = torch.tensor([-1.0], requires_grad=True)
    pr = torch.tensor([-1.0], requires_grad=True)
    loss, _ = dpo_loss(pc, pr, torch.tensor([-1.0]), torch.tensor([-1.0]), beta=1.0)
    loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises chosen, lowers rejected


def test_shared_prefix_masks():
    mc, mr = shared_prefix_masks([[5, 6, 3, 7, 3, 2], [1, 2]], [[5, 6, 3, 9, 3, 2], [4]])
    assert mc.tolist() == [[0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]]
    assert mr.tolist() == [[0, 0, 0, 1, 1, 1], [1, 0, 0, 0, 0, 0]]
    assert mc.dtype == np.float32
