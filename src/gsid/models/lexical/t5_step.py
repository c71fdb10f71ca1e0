"""KV-cached single-step decoding of a transformers T5, read straight from its weights.

    stepper = T5Stepper(net)                          # a T5ForConditionalGeneration, eval mode
    state = stepper.start(enc_states, enc_mask, beams=W)  # (B, S, d), (B, S): cross K/V once
    logits = stepper.step(state, prev_tokens, rows)   # (n,) tokens of rows (n,) -> (n, V)
    stepper.reorder(state, src)                       # next step's row j continues row src[j]
    stepper.keep(state, queries)                      # only these queries decode further

The B * W beam slots are laid out query by query (slot b * W + j is beam j of query b), and a
beam never moves to another query, so the cross-attention keys/values are kept once per query
and every query's beams attend to them in one matrix product. A step decodes only the slots
named in `rows` (the beams still writing; a finished beam costs nothing), and the
self-attention cache holds those rows only, in that order: `reorder`'s src indexes them.

Why not `net(..., cache=...)`: for the few beams of one query, transformers' per-call
machinery (cache objects, mask builders, relative-position buckets recomputed every step,
output dataclasses) costs several times the arithmetic of a 2-layer decoder with d_model 128.
This is the same arithmetic as T5's decoder in eval mode (RMS norms, unscaled attention with
the first layer's relative position bias shared by all layers, ReLU or gated feed-forward,
the d_model ** -0.5 output scaling when embeddings are tied); tests/test_lexical.py checks
its scores against teacher-forced `net(...)` log-probabilities.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _norm(weight: torch.Tensor, eps: float, x: torch.Tensor) -> torch.Tensor:
    """T5's RMS norm (no mean subtraction, no bias)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class T5Stepper:
    def __init__(self, net, max_steps: int = 64) -> None:
        self.net = net
        dec = net.decoder
        self.blocks = list(dec.block)
        self.sa0 = self.blocks[0].layer[0].SelfAttention
        self.H, self.dk = self.sa0.n_heads, self.sa0.key_value_proj_dim
        self.max_steps = max_steps
        # transformers 5 names it scale_decoder_outputs; 4.x scales whenever embeddings are tied
        flag = getattr(net.config, "scale_decoder_outputs", None)
        if flag is None:
            flag = net.config.tie_word_embeddings
        self.scale = net.model_dim**-0.5 if flag else 1.0

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, m*H*dk) -> (N, m*H, T, dk)
        N, T, _ = x.shape
        return x.view(N, T, -1, self.dk).transpose(1, 2)

    def _weights(self) -> list[dict[str, Any]]:
        """Per block: the tensors one step reads, q/k/v fused into one (3 * H * dk, d) matrix.
        Taken at every `start` (a few small copies), so a model trained further between two
        searches is read as it is now; plain tensors spare nn.Module attribute lookups."""
        out = []
        for blk in self.blocks:
            sa, ca, ff = blk.layer[0], blk.layer[1], blk.layer[-1]
            att, cross = sa.SelfAttention, ca.EncDecAttention
            out.append({
                "ln1": (sa.layer_norm.weight, sa.layer_norm.variance_epsilon),
                "qkv": torch.cat([att.q.weight, att.k.weight, att.v.weight]),
                "o": att.o.weight,
                "ln2": (ca.layer_norm.weight, ca.layer_norm.variance_epsilon),
                "cq": cross.q.weight,
                "co": cross.o.weight,
                "ln3": (ff.layer_norm.weight, ff.layer_norm.variance_epsilon),
                "ff": ff.DenseReluDense,
            })  # fmt: skip
        return out

    @torch.no_grad()
    def start(self, enc: torch.Tensor, mask: torch.Tensor, beams: int = 1) -> dict[str, Any]:
        """State for `beams` beams per query of enc (B, S, d), mask (B, S)."""
        cross = []
        for blk in self.blocks:
            ca = blk.layer[1].EncDecAttention
            cross.append(
                (self._heads(F.linear(enc, ca.k.weight)), self._heads(F.linear(enc, ca.v.weight)))
            )
        add = torch.zeros(mask.shape, dtype=enc.dtype, device=enc.device)
        add = add.masked_fill(mask == 0, torch.finfo(enc.dtype).min)[:, None, None, :]  # (B,1,1,S)
        # (1, H, T, T) causal relative position bias, sliced per step (computed here, not in
        # __init__, for the same reason as _weights)
        bias = self.sa0.compute_bias(self.max_steps, self.max_steps)
        dec = self.net.decoder
        return {"cross": cross, "mask": add, "self": [None] * len(self.blocks), "t": 0,
                "beams": int(beams),
                "bias": bias, "w": self._weights(), "embed": dec.embed_tokens.weight,
                "final": (dec.final_layer_norm.weight, dec.final_layer_norm.variance_epsilon),
                "head": self.net.lm_head.weight}  # fmt: skip

    @torch.no_grad()
    def step(
        self, state: dict[str, Any], prev: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """prev (n,) the last tokens of the slots `rows` (n,) (None: every slot) -> (n, V)."""
        t = state["t"]
        if t >= self.max_steps:
            raise ValueError(f"T5Stepper was built for {self.max_steps} steps")
        x = F.embedding(prev, state["embed"])[:, None, :]  # (n, 1, d)
        n, hd, W = x.shape[0], self.H * self.dk, state["beams"]
        B = state["mask"].shape[0]
        bias = state["bias"][:, :, t : t + 1, : t + 1]  # (1, H, 1, t + 1)
        for i, w in enumerate(state["w"]):
            q, k, v = self._heads(F.linear(_norm(*w["ln1"], x), w["qkv"])).split(self.H, 1)
            past = state["self"][i]
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            state["self"][i] = (k, v)
            a = torch.softmax(q @ k.transpose(2, 3) + bias, -1)  # (n, H, 1, t + 1)
            x = x + F.linear((a @ v).transpose(1, 2).reshape(n, 1, hd), w["o"])
            # a query's W slots as the rows of one product: (B, H, W, dk) @ (B, H, dk, S);
            # slots not decoded this step are zero rows of that product, and left out after
            q = F.linear(_norm(*w["ln2"], x), w["cq"]).view(n, hd)
            if rows is not None:
                q = q.new_zeros(B * W, hd).index_copy_(0, rows, q)
            ck, cv = state["cross"][i]  # (B, H, S, dk) each
            q = q.view(B, W, self.H, self.dk).transpose(1, 2)
            a = torch.softmax(q @ ck.transpose(2, 3) + state["mask"], -1)  # (B, H, W, S)
            o = (a @ cv).transpose(1, 2).reshape(B * W, hd)
            if rows is not None:
                o = o.index_select(0, rows)
            x = x + F.linear(o[:, None, :], w["co"])
            x = x + w["ff"](_norm(*w["ln3"], x))
        x = _norm(*state["final"], x)[:, 0] * self.scale
        state["t"] = t + 1
        return F.linear(x, state["head"])  # (n, V)

    @staticmethod
    def reorder(state: dict[str, Any], src: torch.Tensor) -> None:
        """The next step's row j continues row src[j] of the last step."""
        state["self"] = [
            None if kv is None else (kv[0].index_select(0, src), kv[1].index_select(0, src))
            for kv in state["self"]
        ]

    @staticmethod
    def keep(state: dict[str, Any], queries: torch.Tensor) -> None:
        """Keep the per-query parts (cross keys/values, mask) of these query indices only; the
        self-attention cache follows at the next `reorder` (its src names the kept rows)."""
        state["cross"] = [(k.index_select(0, queries), v.index_select(0, queries))
                          for k, v in state["cross"]]  # fmt: skip
        state["mask"] = state["mask"].index_select(0, queries)
