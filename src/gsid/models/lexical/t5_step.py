"""KV-cached single-step decoding of a transformers T5, read straight from its weights.

    stepper = T5Stepper(net)                          # a T5ForConditionalGeneration, eval mode
    state = stepper.start(enc_states, enc_mask)       # (N, S, d), (N, S): cross K/V once
    logits = stepper.step(state, prev_tokens)         # (N,) -> (N, V)
    stepper.reorder(state, src)                       # beam j continues old beam src[j]

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


def _norm(ln, x: torch.Tensor) -> torch.Tensor:
    var = x.pow(2).mean(-1, keepdim=True)
    return ln.weight * (x * torch.rsqrt(var + ln.variance_epsilon))


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

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, H*dk) -> (N, H, T, dk)
        N, T, _ = x.shape
        return x.view(N, T, self.H, self.dk).transpose(1, 2)

    @torch.no_grad()
    def start(self, enc: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        cross = []
        for blk in self.blocks:
            ca = blk.layer[1].EncDecAttention
            cross.append(
                (self._heads(F.linear(enc, ca.k.weight)), self._heads(F.linear(enc, ca.v.weight)))
            )
        add = torch.zeros(mask.shape, dtype=enc.dtype, device=enc.device)
        add = add.masked_fill(mask == 0, torch.finfo(enc.dtype).min)[:, None, None, :]  # (N,1,1,S)
        # (1, H, T, T) causal relative position bias, sliced per step; computed here, not once
        # in __init__, so a model trained further between two searches is read as it is now
        bias = self.sa0.compute_bias(self.max_steps, self.max_steps)
        return {"cross": cross, "mask": add, "self": [None] * len(self.blocks), "t": 0,
                "bias": bias}  # fmt: skip

    @torch.no_grad()
    def step(self, state: dict[str, Any], prev: torch.Tensor) -> torch.Tensor:
        t = state["t"]
        if t >= self.max_steps:
            raise ValueError(f"T5Stepper was built for {self.max_steps} steps")
        x = self.net.decoder.embed_tokens(prev)[:, None, :]  # (N, 1, d)
        bias = state["bias"][:, :, t : t + 1, : t + 1]  # (1, H, 1, t + 1)
        for i, blk in enumerate(self.blocks):
            sa = blk.layer[0]
            h = _norm(sa.layer_norm, x)
            att = sa.SelfAttention
            q = self._heads(F.linear(h, att.q.weight))
            k = self._heads(F.linear(h, att.k.weight))
            v = self._heads(F.linear(h, att.v.weight))
            past = state["self"][i]
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            state["self"][i] = (k, v)
            w = torch.softmax(q @ k.transpose(2, 3) + bias, -1)
            x = x + F.linear((w @ v).transpose(1, 2).reshape(x.shape[0], 1, -1), att.o.weight)
            ca = blk.layer[1]
            h = _norm(ca.layer_norm, x)
            q = self._heads(F.linear(h, ca.EncDecAttention.q.weight))
            ck, cv = state["cross"][i]
            w = torch.softmax(q @ ck.transpose(2, 3) + state["mask"], -1)
            x = x + F.linear(
                (w @ cv).transpose(1, 2).reshape(x.shape[0], 1, -1), ca.EncDecAttention.o.weight
            )
            ff = blk.layer[-1]
            x = x + ff.DenseReluDense(_norm(ff.layer_norm, x))
        x = _norm(self.net.decoder.final_layer_norm, x)[:, 0] * self.scale
        state["t"] = t + 1
        return F.linear(x, self.net.lm_head.weight)  # (N, V)

    @staticmethod
    def reorder(state: dict[str, Any], src: torch.Tensor) -> None:
        state["self"] = [
            None if kv is None else (kv[0].index_select(0, src), kv[1].index_select(0, src))
            for kv in state["self"]
        ]
