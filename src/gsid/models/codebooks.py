"""Step-specific codebooks E_t (K, H), one per decoder step, with EMA updates and dead-code
re-seeding.

    cb = Codebooks(n_levels=4, size=128, dim=384, ema=True)
    logits = cb.logits(d_t, t)                 # (B, K) = d_t . E_t / T
    cb.ema_update(t, x, codes)                 # move each used code towards its items' mean
    cb.reseed_dead(t, x, generator)            # codes unused over a window restart from data

EMA codebooks (VQ-VAE-2 style, Laplace-smoothed counts) are buffers that gradients never touch;
with ema=False they are parameters trained by the losses (the ablation).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks so every rank applies the same EMA step (codebooks stay identical)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(x)
    return x


class Codebooks(nn.Module):
    def __init__(
        self,
        n_levels: int,
        size: int,
        dim: int,
        ema: bool = True,
        decay: float = 0.95,
        normalize: bool = True,
        temperature: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_levels, self.size, self.dim = n_levels, size, dim
        self.ema, self.decay, self.normalize, self.temperature, self.eps = (
            ema,
            decay,
            normalize,
            temperature,
            eps,
        )
        init = torch.randn(n_levels, size, dim)  # random init, as in the paper
        init = F.normalize(init, dim=-1) if normalize else init / dim**0.5
        # (L, K, H); a parameter either way so it lands in state_dict/optimisers uniformly,
        # but EMA codebooks never require grad.
        self.weight = nn.Parameter(init, requires_grad=not ema)
        self.register_buffer("cluster_size", torch.zeros(n_levels, size))  # (L, K) EMA counts
        self.register_buffer("embed_sum", init.clone())  # (L, K, H) EMA sums
        self.register_buffer("usage", torch.zeros(n_levels, size))  # (L, K) counts in window
        self.register_buffer("window_batches", torch.zeros(n_levels, dtype=torch.long))

    def table(self, t: int) -> torch.Tensor:
        """E_t (K, H) as used for scoring."""
        e = self.weight[t]
        return F.normalize(e, dim=-1) if self.normalize else e

    def prep(self, d: torch.Tensor) -> torch.Tensor:
        return F.normalize(d, dim=-1) if self.normalize else d

    def logits(self, d: torch.Tensor, t: int) -> torch.Tensor:
        """(B, H) -> (B, K) code logits of step t: d_t . E_t / temperature."""
        return self.prep(d) @ self.table(t).T / self.temperature

    def embed(self, codes: torch.Tensor, t: int) -> torch.Tensor:
        """(B,) codes -> (B, H) embeddings E_t[c] (fed to the decoder at step t+1)."""
        return self.table(t)[codes]

    @torch.no_grad()
    def ema_update(self, t: int, x: torch.Tensor, codes: torch.Tensor) -> None:
        """Move each code of step t towards the mean of the representations assigned to it."""
        x = self.prep(x.detach()).to(self.weight.dtype)  # (B, H)
        onehot = F.one_hot(codes, self.size).to(x.dtype)  # (B, K)
        counts = _all_reduce(onehot.sum(0))  # (K,)
        sums = _all_reduce(onehot.T @ x)  # (K, H)
        self.cluster_size[t].mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum[t].mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size[t].sum()
        smoothed = (self.cluster_size[t] + self.eps) / (n + self.size * self.eps) * n  # Laplace
        new = self.embed_sum[t] / smoothed.clamp_min(self.eps)[:, None]
        # a code never used keeps its current vector (its sum decays with its count)
        used = self.cluster_size[t] > self.eps
        self.weight.data[t][used] = new[used]

    @torch.no_grad()
    def track(self, t: int, codes: torch.Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.size).to(self.usage.dtype)
        self.usage[t] += _all_reduce(counts)
        self.window_batches[t] += 1

    @torch.no_grad()
    def reseed_dead(
        self,
        t: int,
        x: torch.Tensor,
        window: int,
        threshold: float,
        generator: torch.Generator,
        noise: float = 0.01,
    ) -> int:
        """At the end of each window, codes used <= threshold times restart at (perturbed)
        representations of the current batch; returns how many were re-seeded."""
        if int(self.window_batches[t]) < window:
            return 0
        dead = torch.nonzero(self.usage[t] <= threshold).flatten()
        self.usage[t].zero_()
        self.window_batches[t] = 0
        if len(dead) == 0 or len(x) == 0:
            return 0
        x = self.prep(x.detach()).to(self.weight.dtype)
        # draw on CPU with the trainer's generator: identical on every rank and every device
        pick = torch.randint(0, len(x), (len(dead),), generator=generator).to(x.device)
        eps = torch.randn(len(dead), self.dim, generator=generator).to(x.device)
        new = x[pick] + noise * eps
        new = self.prep(new)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(new, 0)
        self.weight.data[t][dead] = new
        self.embed_sum[t][dead] = new
        self.cluster_size[t][dead] = 1.0
        return len(dead)

    @torch.no_grad()
    def seed_from(self, t: int, x: torch.Tensor, generator: torch.Generator) -> None:
        """Data initialisation (optional): codes start at random batch representations."""
        x = self.prep(x.detach()).to(self.weight.dtype)
        pick = torch.randint(0, len(x), (self.size,), generator=generator).to(x.device)
        new = self.prep(
            x[pick] + 0.01 * torch.randn(self.size, self.dim, generator=generator).to(x.device)
        )
        self.weight.data[t] = new
        self.embed_sum[t] = new
        self.cluster_size[t].fill_(1.0)
