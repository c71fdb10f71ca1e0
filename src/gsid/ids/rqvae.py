"""RQ-VAE (residual-quantised autoencoder, as in TIGER) for semantic IDs, in PyTorch.

    cfg = RQVAEConfig(input_dim=384, levels=4, codebook_size=128, epochs=50)
    model = RQVAE(cfg).fit(X, show_progress=True)       # X: (N, D) item embeddings
    codes = model.encode(X)                              # (N, 4) int32
    model.save("out/rqvae"); RQVAE.load("out/rqvae").encode(X_new)

An MLP encoder maps an embedding to a latent z; L codebooks quantise z residually (level l
picks the codeword nearest to what levels < l left over); the decoder reconstructs the
embedding from the sum of the chosen codewords. Training: reconstruction loss + codebook loss
+ beta * commitment loss, gradients pass the quantiser by the straight-through estimator.
Against codebook collapse: k-means initialisation of every codebook on a sample, optional EMA
codebook updates, and re-seeding of codes that stayed unused for `dead_code_steps` steps with
residuals of the current batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gsid._io import atomic_dir, read_manifest, write_manifest
from gsid._progress import progress
from gsid.errors import ArtifactError, GsidError, NotFittedError
from gsid.ids.residual_kmeans import as_embeddings, faiss_kmeans, level_sizes, nearest

logger = logging.getLogger(__name__)

KIND = "gsid-rqvae"
FORMAT_VERSION = 1


@dataclass
class RQVAEConfig:
    """Everything needed to rebuild and retrain an RQ-VAE; saved next to the weights."""

    input_dim: int = 384
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    latent_dim: int = 32
    levels: int = 4
    codebook_size: int | list[int] = 128
    beta: float = 0.25  # weight of the commitment loss
    ema: bool = False  # EMA codebook updates instead of a codebook loss
    ema_decay: float = 0.99
    dead_code_steps: int = 20  # re-seed codes unused for this many steps; 0 = never
    kmeans_init: bool = True
    kmeans_init_samples: int = 8192
    standardize: bool = True  # z-score inputs per dimension (sentence embeddings are tiny)
    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    n_candidates: int = 16  # ranked last-level codes kept for collision repair

    def __post_init__(self) -> None:
        self.hidden_dims = [int(h) for h in self.hidden_dims]
        if not np.isscalar(self.codebook_size):
            self.codebook_size = [int(k) for k in self.codebook_size]
        self.sizes  # noqa: B018 -- validates levels / codebook_size
        for name in ("input_dim", "latent_dim", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise GsidError(f"RQVAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.ema_decay < 1.0:
            raise GsidError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.dead_code_steps < 0:
            raise GsidError(
                f"dead_code_steps must be >= 0 (0 disables), got {self.dead_code_steps}"
            )

    @property
    def sizes(self) -> list[int]:
        return level_sizes(self.levels, self.codebook_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict) -> RQVAEConfig:
        unknown = sorted(set(d) - set(cls.fields()))
        if unknown:
            raise GsidError(f"unknown RQ-VAE option(s) {unknown}; valid options are {cls.fields()}")
        return cls(**d)


def mlp(dims: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ResidualCodebooks(nn.Module):
    """L codebooks (K_l, H) applied to successive residuals, with EMA and dead-code state."""

    def __init__(self, sizes: list[int], dim: int, ema: bool, decay: float) -> None:
        super().__init__()
        self.sizes = sizes
        self.ema = ema
        self.decay = decay
        # VQ-VAE style small uniform init; k-means init overwrites it when enabled
        self.codebooks = nn.ParameterList(
            [nn.Parameter((torch.rand(k, dim) * 2 - 1) / k, requires_grad=not ema) for k in sizes]
        )
        for i, k in enumerate(sizes):
            self.register_buffer(f"unused_{i}", torch.zeros(k, dtype=torch.long))
            self.register_buffer(f"ema_count_{i}", torch.ones(k))
            self.register_buffer(f"ema_sum_{i}", self.codebooks[i].detach().clone())

    def forward(self, z: torch.Tensor):
        """z (B, H) -> codes (B, L), z_q (B, H), codebook loss, commitment loss, residuals."""
        residual = z
        z_q = torch.zeros_like(z)
        codes, residuals = [], []
        cb_loss = z.new_zeros(())
        commit = z.new_zeros(())
        for E in self.codebooks:
            idx = torch.cdist(residual.detach(), E.detach()).argmin(dim=1)  # (B,)
            q = E[idx]  # (B, H)
            if not self.ema:
                cb_loss = cb_loss + F.mse_loss(q, residual.detach())
            commit = commit + F.mse_loss(residual, q.detach())
            codes.append(idx)
            residuals.append(residual.detach())
            z_q = z_q + q
            # detached: each codebook learns only from its own loss, not from deeper levels
            residual = residual - q.detach()
        return torch.stack(codes, 1), z_q, cb_loss, commit, residuals

    @torch.no_grad()
    def ema_update(self, residuals: list[torch.Tensor], codes: torch.Tensor) -> None:
        for i, (E, r) in enumerate(zip(self.codebooks, residuals, strict=True)):
            onehot = F.one_hot(codes[:, i], E.shape[0]).type_as(r)  # (B, K)
            count = getattr(self, f"ema_count_{i}")
            total = getattr(self, f"ema_sum_{i}")
            count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
            total.mul_(self.decay).add_(onehot.T @ r, alpha=1 - self.decay)
            # Laplace smoothing keeps rarely used codes from dividing by ~0
            n = count.sum()
            smoothed = (count + 1e-5) / (n + E.shape[0] * 1e-5) * n
            E.data.copy_(total / smoothed[:, None])

    @torch.no_grad()
    def reset_dead(
        self,
        residuals: list[torch.Tensor],
        codes: torch.Tensor,
        patience: int,
        gen: torch.Generator,
    ) -> int:
        """Count steps each code went unused; re-seed codes unused for `patience` steps with
        random residuals of this batch. Returns how many codes were re-seeded."""
        n_reset = 0
        for i, (E, r) in enumerate(zip(self.codebooks, residuals, strict=True)):
            unused = getattr(self, f"unused_{i}")
            used = torch.bincount(codes[:, i], minlength=E.shape[0]) > 0
            unused.add_(1).masked_fill_(used, 0)
            if patience <= 0:
                continue
            dead = torch.nonzero(unused >= patience).flatten()
            if len(dead) == 0:
                continue
            pick = torch.randint(0, r.shape[0], (len(dead),), generator=gen).to(r.device)
            E.data[dead] = r[pick]
            getattr(self, f"ema_sum_{i}")[dead] = r[pick]
            getattr(self, f"ema_count_{i}")[dead] = 1.0
            unused[dead] = 0
            n_reset += len(dead)
        return n_reset


class RQVAE(nn.Module):
    """MLP encoder -> residual codebooks -> MLP decoder. `fit` returns self (fitted: `history_`)."""

    def __init__(self, config: RQVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(c.seed)
            self.encoder = mlp([c.input_dim, *c.hidden_dims, c.latent_dim])
            self.decoder = mlp([c.latent_dim, *reversed(c.hidden_dims), c.input_dim])
            self.quantizer = ResidualCodebooks(c.sizes, c.latent_dim, c.ema, c.ema_decay)
        self.register_buffer("mean", torch.zeros(c.input_dim))
        self.register_buffer("std", torch.ones(c.input_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self.mean.device

    def _check(self) -> None:
        if not bool(self.fitted):
            raise NotFittedError("RQVAE is not fitted; call fit(embeddings) or RQVAE.load(path)")

    def _prep(self, X: np.ndarray) -> torch.Tensor:
        X = as_embeddings(X)
        if X.shape[1] != self.config.input_dim:
            raise GsidError(
                f"embeddings have {X.shape[1]} dimensions, this RQ-VAE takes "
                f"{self.config.input_dim}; use the encoder it was trained with"
            )
        return torch.from_numpy(X)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor):
        """x (B, D) standardised -> x_hat (B, D), codes (B, L), cb loss, commit loss, residuals."""
        z = self.encoder(x)  # (B, H)
        codes, z_q, cb, commit, residuals = self.quantizer(z)
        z_st = z + (z_q - z).detach()  # straight-through: decoder sees z_q, encoder gets d/dz_q
        return self.decoder(z_st), codes, cb, commit, residuals

    @torch.no_grad()
    def _kmeans_init(self, x: torch.Tensor, gen: torch.Generator) -> None:
        c = self.config
        n = min(c.kmeans_init_samples, x.shape[0])
        sample = x[torch.randperm(x.shape[0], generator=gen)[:n]].to(self.device)
        residual = self.encoder(self._norm(sample)).float().cpu().numpy()  # (n, H)
        for i, (E, k) in enumerate(zip(self.quantizer.codebooks, c.sizes, strict=True)):
            if n >= k:
                C = faiss_kmeans(residual, k, 20, c.seed + i, 256).centroids
            else:  # too few samples for k centroids: repeat samples with a little noise
                rng = np.random.default_rng(c.seed + i)
                C = residual[rng.integers(0, n, k)] + 1e-3 * rng.standard_normal(
                    (k, residual.shape[1])
                )
            C = np.asarray(C, np.float32)
            E.data.copy_(torch.from_numpy(C))
            getattr(self.quantizer, f"ema_sum_{i}").copy_(E.data)
            getattr(self.quantizer, f"ema_count_{i}").fill_(1.0)
            _, idx = nearest(C, residual, 1)
            residual = residual - C[idx[:, 0]]

    # ------------------------------------------------------------------ training
    def fit(
        self, X: np.ndarray, show_progress: bool | None = None, device: str | None = None
    ) -> RQVAE:
        from gsid._device import pick_device

        c = self.config
        x = self._prep(X)
        dev = torch.device(pick_device(device))
        self.to(dev)
        if c.standardize:
            self.mean.copy_(x.mean(0))
            self.std.copy_(x.std(0).clamp_min(1e-6))
        gen = torch.Generator().manual_seed(c.seed)  # data order, samples, resets: CPU, seeded
        if c.kmeans_init:
            self._kmeans_init(x, gen)
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        n = x.shape[0]
        bs = min(c.batch_size, n)
        self.history_: list[dict] = []
        x_dev = x.to(dev)
        bar = progress(range(c.epochs), show_progress, desc="RQ-VAE")
        for epoch in bar:
            self.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            tot = {"loss": 0.0, "recon": 0.0, "commit": 0.0}
            seen = [torch.zeros(k, dtype=torch.bool, device=dev) for k in c.sizes]
            n_reset, n_batches = 0, 0
            for start in range(0, n, bs):
                xb = self._norm(x_dev[perm[start : start + bs]])
                x_hat, codes, cb, commit, residuals = self(xb)
                recon = F.mse_loss(x_hat, xb)
                loss = recon + cb + c.beta * commit
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if c.ema:
                    self.quantizer.ema_update(residuals, codes)
                n_reset += self.quantizer.reset_dead(residuals, codes, c.dead_code_steps, gen)
                for i in range(c.levels):
                    seen[i][codes[:, i]] = True
                tot["loss"] += float(loss.detach())
                tot["recon"] += float(recon.detach())
                tot["commit"] += float(commit.detach())
                n_batches += 1
            rec = {k: v / n_batches for k, v in tot.items()}
            rec.update(epoch=epoch, n_reset=n_reset, usage=[float(s.float().mean()) for s in seen])
            self.history_.append(rec)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{rec['loss']:.4f}", use1=f"{rec['usage'][0]:.2f}")
            logger.debug("epoch %d %s", epoch, rec)
        self.fitted.fill_(True)
        self.eval()
        return self

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode_with_candidates(
        self, X: np.ndarray, batch_size: int = 4096, n_candidates: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """codes (N, L) int32, ranked last-level codes (N, C) and their squared distances."""
        self._check()
        self.eval()
        x = self._prep(X)
        nc = self.config.n_candidates if n_candidates is None else n_candidates
        nc = max(1, min(nc, self.config.sizes[-1]))
        out_codes, out_cand, out_dist = [], [], []
        for start in range(0, x.shape[0], batch_size):
            xb = self._norm(x[start : start + batch_size].to(self.device))
            z = self.encoder(xb)
            codes, _, _, _, residuals = self.quantizer(z)
            d = torch.cdist(residuals[-1], self.quantizer.codebooks[-1]) ** 2  # (B, K_L)
            dist, cand = torch.topk(d, nc, dim=1, largest=False)
            out_codes.append(codes.cpu())
            out_cand.append(cand.cpu())
            out_dist.append(dist.cpu())
        return (
            torch.cat(out_codes).numpy().astype(np.int32),
            torch.cat(out_cand).numpy().astype(np.int32),
            torch.cat(out_dist).numpy().astype(np.float32),
        )

    def encode(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """(N, D) embeddings -> (N, L) int32 codes."""
        return self.encode_with_candidates(X, batch_size, n_candidates=1)[0]

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, L) codes -> (N, D) reconstructed embeddings (in the input's scale)."""
        self._check()
        codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.long, device=self.device)
        z_q = sum(E[codes_t[:, i]] for i, E in enumerate(self.quantizer.codebooks))
        return (self.decoder(z_q) * self.std + self.mean).cpu().numpy()

    def usage(self, codes: np.ndarray) -> list[float]:
        """Share of each level's codes that `codes` use (1.0 = every code used)."""
        return [len(np.unique(codes[:, i])) / k for i, k in enumerate(self.config.sizes)]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        self._check()
        path = Path(path)
        with atomic_dir(path, KIND) as tmp:
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            write_manifest(
                tmp,
                KIND,
                FORMAT_VERSION,
                config=self.config.to_dict(),
                history=getattr(self, "history_", []),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> RQVAE:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from gsid._device import pick_device

        path = Path(path)
        m = read_manifest(path, KIND, FORMAT_VERSION)
        model = cls(RQVAEConfig.from_dict(m["config"]))
        try:
            state = load_file(str(path / "model.safetensors"))
            model.load_state_dict(state)
        except (OSError, RuntimeError, SafetensorError) as e:
            raise ArtifactError(
                f"{path}: weights unreadable or of another shape ({e}); retrain"
            ) from e
        model.history_ = m.get("history", [])
        model.to(pick_device(device))
        model.eval()
        return model
