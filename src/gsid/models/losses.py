"""GSID training losses: query-item alignment (in-batch InfoNCE with several positives, KL
between code distributions) and code commitment (earlier codes must not drift).

Shapes: Q queries, I items, H hidden, K codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    q: torch.Tensor, i: torch.Tensor, pos: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE.

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
