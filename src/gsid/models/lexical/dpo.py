"""Direct preference optimisation (DPO, Rafailov et al. 2023) for an encoder-decoder, with an
SFT term kept. TRL dropped encoder-decoder DPO, so the loss lives here, in one small file.

For a query x, a chosen span sequence y_w and a rejected one y_l, with the policy pi and the
frozen SFT model pi_ref (its log-probabilities are computed once, before training):

    margin = beta * [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ]
    loss   = -log sigmoid(margin)  +  sft_weight * NLL(y_w | x)

Shared prefix: chosen and rejected often begin with the same correct span. Those tokens are
taken out of both sums (`shared_prefix_masks`): their log-ratios are the same in both terms, so
the margin and its gradient are unchanged, but nothing can push them down through rounding or
if a caller length-normalises the sums; the SFT term (over the whole chosen sequence) keeps
pulling the shared prefix up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    sft_nll: torch.Tensor | None = None,
    sft_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All inputs (B,) summed log-probs (sft_nll: (B,) NLL of the chosen). -> (loss, margin)."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))  # (B,)
    loss = -F.logsigmoid(margin).mean()
    if sft_nll is not None and sft_weight:
        loss = loss + sft_weight * sft_nll.mean()
    return loss, margin


def shared_prefix_masks(
    chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(M, Tc), (M, Tr) float32 masks: 1 on each sequence's tokens after the prefix that the
    pair shares, 0 on that prefix and on padding."""
    M = len(chosen)
    Tc = max((len(c) for c in chosen), default=0)
    Tr = max((len(r) for r in rejected), default=0)
    mc = np.zeros((M, Tc), np.float32)
    mr = np.zeros((M, Tr), np.float32)
    for i, (c, r) in enumerate(zip(chosen, rejected, strict=True)):
        p = 0
        while p < min(len(c), len(r)) and c[p] == r[p]:
            p += 1
        mc[i, p : len(c)] = 1
        mr[i, p : len(r)] = 1
    return mc, mr
