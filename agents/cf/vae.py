"""Mult-VAE and Mult-DAE (Liang et al., WWW 2018), as set up in RaCT (Lobel et al., ICLR 2020).

Architecture (RaCT Table 4): encoder ``M -> 600 (tanh) -> 200`` (mean, and log-variance
whose exponential is the variance), decoder ``200 -> 600 (tanh) -> M`` with a softmax, i.e.
the multinomial likelihood of eq. 3. Training minimises eq. 4, ``L = NLL + beta * KL``, with
``beta`` annealed linearly (per update) from 0 to ``beta_max`` over ``anneal_epochs`` epochs and
then held (Table 5: 0.2 over 100 epochs, held for 50 on ML-20M), Adam, 500 users per batch.
The input is the L2-normalised history with dropout 0.5 (the Bernoulli mask ``b`` of eq. 2),
as in Liang et al.'s code. Mult-DAE is the same network without the latent noise and KL,
with ``l2_reg`` times the sum of squared weights instead: 2e-5, i.e. the 0.01 of RaCT
appendix E.3 in the scale of Liang et al.'s code, which passes ``lam = 0.01 / batch_size``
(500) and adds ``lam * sum ||W||^2`` to the per-user mean loss (recgym added 0.01 itself
until 2026-12-07, 500 times that; ``l2_reg=0.01`` reproduces the former runs).

Evaluation follows RaCT appendix A: a held-out user's fold-in items are the input, the mean
latent code is decoded, fold-in items are removed and the rest ranked.

Open details and the readings taken here: weights are Xavier-uniform and biases N(0, 0.001)
as in Liang's code; Mult-DAE uses the same 600-200 layers as the VAE (Liang's notebook used a
single 200 layer), with tanh on its code layer; the L2 term is ``l2_reg * sum ||W||^2`` on
weight matrices only, added to the per-user mean loss.

Data-parallel training (``torchrun``, see :mod:`recgym.core.distributed`) is on when
``data_parallel`` is set: each rank runs the network on its shard of every global batch, the
dropout mask and latent noise being drawn for the whole batch so that results match one
process; gradients are all-reduced and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cf.base import Stage, TrainableCF, csr_to_dense, l2_penalty
from recgym.core.distributed import DataParallel, local_rows, shard_share


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    nn.init.xavier_uniform_(layer.weight, generator=generator)
    with torch.no_grad():
        layer.bias.copy_(0.001 * torch.randn(layer.bias.shape, generator=generator))
    return layer


class AutoEncoder(nn.Module):
    """Multinomial auto-encoder: ``[x_norm; v] -> hidden (tanh) -> code -> hidden (tanh) -> M``.

    Args:
        num_items: ``M``.
        hidden_dims: hidden widths of the encoder (mirrored in the decoder).
        latent_dim: size of ``z``.
        variational: Gaussian ``q(z|x)`` with reparametrisation (VAE) or deterministic (DAE).
        extra_dim: width of an extra input concatenated to ``x`` (CF-SFL feedback ``v``).
        generator: initialisation randomness.
    """

    def __init__(self, num_items: int, hidden_dims: tuple[int, ...], latent_dim: int,
                 variational: bool, extra_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.variational = variational
        dims = [num_items + extra_dim, *hidden_dims]
        self.encoder = nn.ModuleList(_init_linear(nn.Linear(a, b), generator)
                                     for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.code = _init_linear(nn.Linear(dims[-1], latent_dim * (2 if variational else 1)),
                                 generator)
        dec = [latent_dim, *reversed(hidden_dims), num_items]
        self.decoder = nn.ModuleList(_init_linear(nn.Linear(a, b), generator)
                                     for a, b in zip(dec[:-1], dec[1:], strict=True))
        self.latent_dim = latent_dim

    def forward(self, inp: Tensor, *, sample: bool, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Logits ``(B, M)``, and the posterior mean / log-variance (zeros for a DAE).

        ``noise`` is the standard normal ``(B, latent_dim)`` to sample with (drawn from
        ``generator`` when None).
        """
        h = inp
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        out = self.code(h)
        if self.variational:
            mu, logvar = out[:, :self.latent_dim], out[:, self.latent_dim:]
            z = mu
            if sample:
                eps = noise if noise is not None else torch.randn(
                    mu.shape, generator=generator, device=mu.device)
                z = mu + torch.exp(0.5 * logvar) * eps
        else:
            mu = logvar = torch.zeros(out.shape[0], 0, device=out.device)
            z = torch.tanh(out)
        for i, layer in enumerate(self.decoder):
            z = layer(z)
            if i < len(self.decoder) - 1:
                z = torch.tanh(z)
        return z, mu, logvar


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-user ``KL(N(mu, exp(logvar)) || N(0, I))`` (the L_R of RaCT eq. 4)."""
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(dim=1)


def multinomial_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Per-user multinomial NLL ``-sum_m x_m log softmax(logits)_m`` (L_E of RaCT eq. 4)."""
    return -(F.log_softmax(logits, dim=1) * x).sum(dim=1)


def corrupt(x: Tensor, dropout: float, generator: torch.Generator | None,
            mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mask ``b ~ Ber(1 - dropout)`` (eq. 2) and the encoder input ``normalise(x) * b / keep``.

    ``mask`` gives ``b`` instead of drawing it (tests, hand-built batches).
    """
    keep = 1.0 - dropout
    if dropout <= 0:
        return torch.ones_like(x), F.normalize(x, dim=1)
    b = mask if mask is not None else torch.bernoulli(torch.full(x.shape, keep),
                                                      generator=generator)
    return b, F.normalize(x, dim=1) * b / keep


@dataclass
class MultVAEConfig:
    """Configuration of `MultVAE` / `MultDAE` (defaults: RaCT Tables 4-5, ML-20M column)."""

    num_items: int
    hidden_dims: tuple[int, ...] = (600,)
    latent_dim: int = 200
    dropout: float = 0.5
    beta_max: float = 0.2
    anneal_epochs: int = 100
    epochs: int = 200
    batch_size: int = 500
    lr: float = 1e-3
    l2_reg: float = 0.0
    variational: bool = True
    seed: int = 0


class MultVAE(TrainableCF):
    """Mult-VAE: variational auto-encoder with multinomial likelihood (Liang et al., 2018).

    Args:
        num_items: catalogue size ``M``.
        hidden_dims: encoder hidden widths (600).
        latent_dim: latent size (200).
        dropout: input dropout rate (0.5).
        beta_max: final KL weight (0.2).
        anneal_epochs: epochs over which beta grows linearly to `beta_max` (100).
        epochs: training epochs (200 = 150 pre-training + 50 as in RaCT appendix E.3).
        batch_size: users per update (500).
        lr: Adam learning rate.
        l2_reg: weight of the squared-weight penalty (0 for the VAE).
        variational: False gives a Mult-DAE.
        seed: seeds initialisation, batches, dropout and latent noise.
    """

    config_class = MultVAEConfig
    data_parallel: DataParallel | None = None  # set for data-parallel training (torchrun)

    def __init__(self, num_items: int, hidden_dims: tuple[int, ...] = (600,),
                 latent_dim: int = 200, dropout: float = 0.5, beta_max: float = 0.2,
                 anneal_epochs: int = 100, epochs: int = 200, batch_size: int = 500,
                 lr: float = 1e-3, l2_reg: float = 0.0, variational: bool = True,
                 seed: int = 0) -> None:
        super().__init__()
        self.config = MultVAEConfig(num_items, tuple(hidden_dims), latent_dim, dropout,
                                    beta_max, anneal_epochs, epochs, batch_size, lr, l2_reg,
                                    variational, seed)
        self._init_training(seed)
        self.net = AutoEncoder(num_items, tuple(hidden_dims), latent_dim, variational, 0,
                               self.generator)

    def score(self, x: Tensor) -> Tensor:
        """Decoder logits from the mean code of the L2-normalised history (no dropout)."""
        logits, _, _ = self.net(F.normalize(x, dim=1), sample=False)
        return logits

    def beta(self, n_users: int) -> float:
        """KL weight for the current update: linear to ``beta_max`` over ``anneal_epochs``."""
        if not self.config.variational:
            return 0.0
        per_epoch = -(-n_users // self.config.batch_size)
        steps = max(1, self.config.anneal_epochs * per_epoch)
        return self.config.beta_max * min(1.0, self.updates / steps)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": torch.optim.Adam(self.net.parameters(), lr=self.config.lr)}

    def elbo_loss(self, x: Tensor, beta: float, rows: slice | None = None
                  ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean negative beta-ELBO (eq. 4) of a batch, with its NLL and KL parts.

        With ``rows`` (data-parallel training) the loss is the mean over ``x[rows]``; the
        dropout mask and latent noise are still drawn for all of ``x``, as one process would.
        """
        _, inp = corrupt(x, self.config.dropout, self.generator)
        noise = None
        if rows is not None:
            if self.config.variational:
                noise = torch.randn(x.shape[0], self.net.latent_dim,
                                    generator=self.generator)[rows]
            x, inp = x[rows], inp[rows]
        logits, mu, logvar = self.net(inp, sample=self.config.variational,
                                      generator=self.generator, noise=noise)
        nll = multinomial_nll(logits, x).mean()
        kl = kl_divergence(mu, logvar).mean() if self.config.variational else torch.zeros(())
        loss = nll + beta * kl
        if self.config.l2_reg:
            loss = loss + self.config.l2_reg * l2_penalty([self.net])
        return loss, nll, kl

    def _mle_epoch(self, train: sp.csr_matrix, epoch: int) -> dict[str, float]:
        opt = self.optimizers["actor"]
        totals = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
        batches = self._user_batches(train.shape[0])
        beta = 0.0
        parallel = self.data_parallel
        for idx in batches:
            x = csr_to_dense(train[idx.numpy()])
            beta = self.beta(train.shape[0])
            rows = local_rows(parallel, len(idx))
            if parallel is None:  # subclasses (CF-SFL) override elbo_loss without rows
                loss, nll, kl = self.elbo_loss(x, beta)
            else:
                loss, nll, kl = self.elbo_loss(x, beta, rows=rows)
            opt.zero_grad()
            loss.backward()
            if parallel is not None:
                parallel.sync_gradients(self.net.parameters(), rows, len(idx))
            opt.step()
            self.updates += 1
            totals["loss"] += shard_share(loss.item(), rows, len(idx))
            totals["nll"] += shard_share(nll.item(), rows, len(idx))
            totals["kl"] += shard_share(kl.item(), rows, len(idx))
        if parallel is not None:
            totals = parallel.sum(totals)
        out = {k: v / len(batches) for k, v in totals.items()}
        out["beta"] = beta
        return out

    def _stages(self) -> list[Stage]:
        return [Stage("mle", self.config.epochs, self._mle_epoch)]

    def save(self, path: str | os.PathLike, *, with_training_state: bool = True) -> Path:
        """Write the checkpoint (only on rank 0 of a data-parallel run; others skip)."""
        if self.data_parallel is not None and not self.data_parallel.is_main:
            return Path(path)
        return super().save(path, with_training_state=with_training_state)


class MultDAE(MultVAE):
    """Mult-DAE: the denoising auto-encoder of Liang et al. (2018), no KL, L2 2e-5 (0.01 / 500).

    Same arguments as `MultVAE`; `variational` is False, `beta_max` unused.
    """

    def __init__(self, num_items: int, hidden_dims: tuple[int, ...] = (600,),
                 latent_dim: int = 200, dropout: float = 0.5, beta_max: float = 0.0,
                 anneal_epochs: int = 100, epochs: int = 200, batch_size: int = 500,
                 lr: float = 1e-3, l2_reg: float = 2e-5, variational: bool = False,
                 seed: int = 0) -> None:
        if variational:
            raise ValueError("MultDAE is deterministic; use MultVAE for variational=True")
        super().__init__(num_items, hidden_dims, latent_dim, dropout, beta_max, anneal_epochs,
                         epochs, batch_size, lr, l2_reg, False, seed)
