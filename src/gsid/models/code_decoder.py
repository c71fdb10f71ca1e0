"""The decoder of the query -> ID model: a small Transformer over code tokens that attends to
the query's memory (one pooled vector or its token states), with an incremental step for
constrained beam search."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)


if TYPE_CHECKING:  # for annotations only (it imports this module)
    from gsid.models.query_to_id import Seq2SeqIDConfig


class CodeDecoder(nn.Module):
    """Memory (B, S, input_dim) + code prefix (B, t) -> next-token logits (B, t+1, K+1)."""

    def __init__(self, cfg: Seq2SeqIDConfig, input_dim: int) -> None:
        super().__init__()
        L, K, d = cfg.n_levels, cfg.n_codes, cfg.d_model
        self.cfg = cfg
        self.n_memory = cfg.n_memory if cfg.memory == "pooled" else 1
        self.mem_proj = nn.Linear(input_dim, d * self.n_memory)
        self.mem_norm = nn.LayerNorm(d)
        self.tok_emb = nn.Embedding(1 + L * K, d)  # 0 = BOS, 1 + level * K + code
        self.pos_emb = nn.Embedding(L + 1, d)
        layer = nn.TransformerDecoderLayer(
            d, cfg.n_heads, cfg.dim_feedforward, cfg.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, cfg.n_layers)
        self.out_norm = nn.LayerNorm(d)
        # one head per level: (L + 1, d, K + 1); position L can only say EOS but keeps shapes even
        self.head_w = nn.Parameter(torch.randn(L + 1, d, K + 1) * d**-0.5)
        self.head_b = nn.Parameter(torch.zeros(L + 1, K + 1))

    def memory(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled -> (B, n_memory, d); (B, S, D) token states -> (B, S, d)."""
        if x.dim() == 2:
            return self.mem_norm(self.mem_proj(x).view(x.shape[0], self.n_memory, -1))
        return self.mem_norm(self.mem_proj(x))

    def forward(
        self,
        mem: torch.Tensor,
        prefix: torch.Tensor,
        mem_pad: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """mem (B, S, d) from `memory`; prefix (B, t) codes (>= 0) -> logits (B, t + 1, K + 1),
        or only the next-token logits (B, K + 1) with `last_only` (decoding)."""
        B, t = prefix.shape
        K = self.cfg.n_codes
        level = torch.arange(t, device=prefix.device)
        ids = torch.cat(
            [
                torch.zeros(B, 1, dtype=torch.long, device=prefix.device),
                1 + level[None, :] * K + prefix,
            ],
            1,
        )  # (B, t + 1)
        pos = torch.arange(t + 1, device=prefix.device)
        h = self.tok_emb(ids) + self.pos_emb(pos)[None]
        causal = nn.Transformer.generate_square_subsequent_mask(t + 1, device=prefix.device)
        h = self.decoder(
            h, mem, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=mem_pad
        )
        if last_only:
            return self.out_norm(h[:, -1]) @ self.head_w[t] + self.head_b[t]  # (B, K + 1)
        h = self.out_norm(h)  # (B, t + 1, d)
        return torch.einsum("btd,tdv->btv", h, self.head_w[: t + 1]) + self.head_b[: t + 1]

    def step(
        self,
        mem: torch.Tensor,
        prev: torch.Tensor | None,
        t: int,
        cache: list[torch.Tensor] | None,
        mem_pad: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Incremental decoding, the same maths as `forward(..., last_only=True)`.

        mem (B, S, d) once per query; prev (B, w) the codes chosen at step t - 1 (None at t = 0);
        cache: per layer the projected self-attention keys and values of the earlier positions,
        [k0, v0, k1, v1, ...] each (B, w, t, d). Returns logits (B, w, K + 1) and the cache grown
        to t + 1 positions. Only the new position is projected, and the w beams of a query are
        the w "target positions" of one cross-attention call over that query's memory (beams
        never attend to each other there), so memory is never copied per beam."""
        B, w = prev.shape if prev is not None else (mem.shape[0], 1)
        d, H = self.cfg.d_model, self.cfg.n_heads
        N = B * w
        if t == 0:
            ids = torch.zeros(N, dtype=torch.long, device=mem.device)
        else:
            ids = 1 + (t - 1) * self.cfg.n_codes + prev.reshape(N)
        x = (self.tok_emb(ids) + self.pos_emb.weight[t])[:, None]  # (N, 1, d)
        grown = []
        for i, layer in enumerate(self.decoder.layers):
            sa = layer.self_attn
            q, k, v = F.linear(layer.norm1(x), sa.in_proj_weight, sa.in_proj_bias).split(d, -1)
            if cache is not None:
                k = torch.cat([cache[2 * i].reshape(N, t, d), k], 1)  # (N, t + 1, d)
                v = torch.cat([cache[2 * i + 1].reshape(N, t, d), v], 1)
            grown += [k.view(B, w, t + 1, d), v.view(B, w, t + 1, d)]
            heads = F.scaled_dot_product_attention(
                q.view(N, 1, H, -1).transpose(1, 2),
                k.view(N, t + 1, H, -1).transpose(1, 2),
                v.view(N, t + 1, H, -1).transpose(1, 2),
            )  # (N, H, 1, d / H)
            x = x + sa.out_proj(heads.transpose(1, 2).reshape(N, 1, d))
            cross = layer.multihead_attn(
                layer.norm2(x).view(B, w, d), mem, mem, key_padding_mask=mem_pad, need_weights=False
            )[0]  # (B, w, d)
            x = x + cross.reshape(N, 1, d)
            x = x + layer._ff_block(layer.norm3(x))
        logits = self.out_norm(x[:, 0]) @ self.head_w[t] + self.head_b[t]  # (N, K + 1)
        return logits.view(B, w, -1), grown
