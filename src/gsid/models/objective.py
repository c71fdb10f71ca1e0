"""The GSID objective, in one place: the losses and how one batch combines them.

At step t, for a batch of items and their queries (both teacher-forced on the item's frozen
codes of steps < t):
  * warm-up (the first `warmup_batches` batches of a step): the in-batch contrastive loss
    only, InfoNCE(d_t of queries, d_t of items), so the new step's states align first;
  * afterwards: InfoNCE + kl_weight * KL(item || query code distribution at step t)
    + commit_weight * CE(step-s logits, frozen codes), s < t
    (+ with gradient codebooks, ema=False, a VQ pull of each item onto its best code).

Shapes: Q queries, I items, H hidden, K codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gsid.models import distributed as dd
from gsid.models.model import GSIDModel
from gsid.text.contrastive import multi_positive_info_nce


def code_kl(q_logits: torch.Tensor, i_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_item || p_query) averaged over (query, its item) rows; both (P, K) logits, already
    divided by the code temperature. Pulls the query's code distribution onto the item's and
    the item's towards what its queries predict (both sides receive gradients)."""
    return F.kl_div(
        F.log_softmax(q_logits, -1),
        F.log_softmax(i_logits, -1),
        log_target=True,
        reduction="batchmean",
    )


def commitment(logits: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the step-s logits (s < t) towards the frozen assigned codes (B, t):
    keeps items (and their queries) on the codes they already have while step t trains."""
    if not logits:
        return codes.new_zeros((), dtype=torch.float32)
    return torch.stack([F.cross_entropy(lg, codes[:, s]) for s, lg in enumerate(logits)]).mean()


def batch_loss(
    model: GSIDModel,
    level: int,
    warm: bool,
    item_mem,
    item_mask,
    item_prefix,
    q_mem,
    q_mask,
    q_prefix,
    q_item_global: torch.Tensor,
    pos: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Loss of one (global) batch at step `level`; inputs are this rank's slice.

    item_prefix (b, t) / q_prefix (q, t): frozen codes of steps < t (the query uses its item's).
    q_item_global (Q,): global batch position of each query's item; pos (Q, I) global mask.
    Returns the loss (identical on every rank), its parts, and the local item d_t (b, H)."""
    cfg = model.config
    t = level
    d_i = model.decode(item_mem, item_mask, item_prefix)  # (b, t+1, H)
    d_q = model.decode(q_mem, q_mask, q_prefix)  # (q, t+1, H)
    D_i, D_q = dd.gather(d_i), dd.gather(d_q)  # (I, t+1, H), (Q, t+1, H)
    contrastive = multi_positive_info_nce(D_q[:, t], D_i[:, t], pos, cfg.temperature)
    parts = {"contrastive": float(contrastive.detach())}
    loss = contrastive
    if not warm:
        P_i = dd.gather_nograd(item_prefix)  # (I, t)
        li = [model.step_logits(D_i[:, s], s) for s in range(t + 1)]  # each (I, K)
        lq = [model.step_logits(D_q[:, s], s) for s in range(t + 1)]  # each (Q, K)
        if cfg.kl_weight > 0:
            kl = code_kl(lq[t], li[t][q_item_global])
            loss = loss + cfg.kl_weight * kl
            parts["kl"] = float(kl.detach())
        if cfg.commit_weight > 0 and t > 0:
            commit = 0.5 * (commitment(li[:t], P_i) + commitment(lq[:t], P_i[q_item_global]))
            loss = loss + cfg.commit_weight * commit
            parts["commit"] = float(commit.detach())
        if not cfg.ema:
            # gradient codebooks need a pull towards their items (the EMA does it otherwise):
            # sharpen each item onto its current best code (VQ codebook loss in CE form)
            target = li[t].detach().argmax(-1)
            vq = torch.nn.functional.cross_entropy(li[t], target)
            loss = loss + vq
            parts["codebook"] = float(vq.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts, d_i[:, t]
