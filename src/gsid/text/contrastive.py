"""The in-batch contrastive (InfoNCE) losses of gsid, in one place: the encoder fine-tuning
(text/finetune.py) and GSID's objective (models/objective.py) both read from here.

Hand-written because sentence-transformers' MultipleNegativesRankingLoss takes no mask for the
known positives of a query, and counts only one positive per row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_info_nce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row of `logits` (B, N) towards its `target` column, the `mask`ed
    columns (a query's other known positives) left out of the softmax."""
    return F.cross_entropy(logits.masked_fill(mask, -torch.inf), target)


def in_batch_info_nce(
    q: torch.Tensor, d: torch.Tensor, scale: float, mask: torch.Tensor, symmetric: bool
) -> torch.Tensor:
    """InfoNCE over a batch of pairs q (B, H), d (B, H): cosine logits times `scale`, the
    diagonal as the positive, mask (B, B) the other known positives of each query; with
    `symmetric` the item -> query direction too (item b's other relevant queries masked)."""
    logits = scale * (F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T)  # (B, B)
    target = torch.arange(len(q), device=q.device)
    loss = masked_info_nce(logits, target, mask)
    if symmetric:
        loss = 0.5 * loss + 0.5 * masked_info_nce(logits.T, target, mask.T)
    return loss


def multi_positive_info_nce(
    q: torch.Tensor, i: torch.Tensor, pos: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE (GSID's alignment loss).

    q (Q, H), i (I, H); pos (Q, I) bool: pos[a, b] when item b answers query a (every query has
    at least one positive; all of an item's queries in the batch count as its positives).
    Query->item: -log sum_pos softmax; item->query the same over the columns (items without a
    query in the batch are skipped)."""
    s = F.normalize(q, dim=-1) @ F.normalize(i, dim=-1).T / temperature  # (Q, I)
    neg_inf = torch.finfo(s.dtype).min
    q2i = -(torch.logsumexp(s.masked_fill(~pos, neg_inf), 1) - torch.logsumexp(s, 1))
    has_q = pos.any(0)
    st = s.T[has_q]
    i2q = -(torch.logsumexp(st.masked_fill(~pos.T[has_q], neg_inf), 1) - torch.logsumexp(st, 1))
    return 0.5 * (q2i.mean() + (i2q.mean() if len(i2q) else q2i.new_zeros(())))
