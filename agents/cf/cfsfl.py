"""CF-SFL: collaborative filtering with a synthetic feedback loop (Wang et al., AAAI 2020).

A recommender ``pi`` (the Mult-VAE of Table 2, input ``[x; v]`` with ``x`` and ``v``
L2-normalised separately) and a virtual user: the fusion ``h(x, a)`` of appendix eq. 13 (one
lookup table ``B`` (M x 64) shared by ``x`` and ``a``: ``|x|^-1 sum_{j in x} B_j + sum_k a_k
B_k``), the reward estimator ``R(x, a) = sigmoid(g(h))`` (eq. 3) and the feedback generator
``v' = F([h; R])`` (eq. 4). Unrolled ``T`` times from ``v^0 = 0`` (Figure 2):
``a^t = pi(x, v^t)``, ``v^{t+1} = F(h(x, a^t), R(x, a^t))``; the prediction is
``a^T = pi(x, v^T)``, both in training and at test time. ``T = 0`` is the base
recommender, and so is inference before stage 3 has trained the loop.

Training (appendix Algorithm 1): stage 1 pre-trains the recommender with ``v = 0`` on the
beta-ELBO (as `MultVAE`, plus the paper's L2 penalty, see below); stage 2 pre-trains the reward
estimator on real pairs against ``a = pi(x, 0)``; stage 3 alternates, per batch, a step of
``pi`` and ``F`` on eq. 6 (``ELBO(a^T) - E log R(x, a^T)``) and a step of ``R`` on eq. 7.

Readings of open details:

* The set-up's "l2 regularization with a penalty term 0.01" is the ``lam`` of the Mult-VAE /
  Mult-DAE code the recommender comes from (Liang et al.'s ``vae_cf``), which passes
  ``lam = 0.01 / batch_size`` and adds ``lam * sum ||W||^2`` to the per-user mean loss. So
  ``l2_reg`` (the weight on the per-user mean loss here) defaults to ``0.01 / 500 = 2e-5``.
  Applying 0.01 itself, 500 times that, shrinks the recommender so much that stage 1 ends
  0.03 below Mult-VAE in validation NDCG@100 on ML-1M (``docs/cf.md``, "CF-SFL against
  the paper").
* ``a`` is the recommender's softmax output (a distribution over items, so the sum in eq. 13
  is an expectation of embeddings and stays differentiable); the "real" action of a user
  from the data ``D`` is the user's own history as a distribution, ``x / |x|``.
* Eq. 7, ``max -E_pi log R - E_D[1 - log R]``, read literally (``reward_loss="paper"``:
  minimise ``E_pi log R - E_D log R``) is unbounded below: ``log R`` of generated pairs can
  fall without limit, and on ML-100K it does (about -22 after 50 epochs, with no gain from
  the loop). The default is therefore the bounded loss with the same intent (real pairs up,
  generated pairs down) that the paper's GAN / GAIL derivation (eq. 9-11) points to, the
  cross-entropy ``"bce"``: minimise ``-E_D log R - E_pi log(1 - R)``. The recommender's side
  (eq. 6) is ``-E_pi log R`` in both cases.
* Table 2's virtual-user columns are ambiguous in the extracted text; here ``g`` is
  64 -> 128 -> 128 -> 1 and ``F`` is 65 -> 128 -> 128 -> 128 (ReLU hidden layers, linear
  output ``v`` in R^128); both widths are configurable.
* ``B`` belongs to the virtual user and is updated in the reward-estimator steps; the
  recommender step updates ``pi`` and ``F``. In ``x``'s half of ``h`` the corrupted input
  ``x_h`` (what the recommender sees) is used; during training ``z`` is sampled at every
  unrolled step, at test time the mean is used. Stage 2 uses one batch for both real and
  fake pairs; stage 3's reward step reuses the (detached) ``a^T`` of the recommender step.
* Stage 2's length is not given in the paper (default 10 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cf.base import Stage, TrainableCF, csr_to_dense, l2_penalty
from agents.cf.vae import (
    AutoEncoder,
    MultVAE,
    MultVAEConfig,
    corrupt,
    kl_divergence,
    multinomial_nll,
)

REWARD_LOSSES = ("paper", "bce")


@dataclass
class CFSFLConfig(MultVAEConfig):
    """Configuration of `CFSFL` (defaults: the paper's ML-20M set-up)."""

    steps: int = 8
    embed_dim: int = 64
    feedback_dim: int = 128
    virtual_hidden: tuple[int, ...] = (128, 128)
    pretrain_epochs: int = 150
    reward_epochs: int = 10
    joint_epochs: int = 50
    reward_lr: float = 1e-3
    reward_loss: str = "bce"


def _mlp(dims: list[int], generator: torch.Generator) -> nn.ModuleList:
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
    for layer in layers:
        nn.init.xavier_uniform_(layer.weight, generator=generator)
        nn.init.zeros_(layer.bias)
    return layers


def _run_mlp(layers: nn.ModuleList, x: Tensor) -> Tensor:
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x


class CFSFL(MultVAE):
    """CF-SFL (Algorithm 1 of its appendix) around a Mult-VAE recommender.

    Args:
        num_items: catalogue size ``M``.
        hidden_dims: recommender hidden widths (600).
        latent_dim: recommender latent size (200).
        dropout: input dropout (0.5).
        beta_max: final KL weight (0.2).
        anneal_epochs: KL annealing epochs (100).
        epochs: unused (the stage lengths below count).
        batch_size: users per update (500).
        lr: recommender / feedback-generator Adam learning rate.
        l2_reg: recommender squared-weight penalty on the per-user mean loss (2e-5: the
            paper's 0.01 divided by the batch size, as in Liang et al.'s code).
        variational: VAE (True) or DAE (False) recommender.
        seed: seeds everything random.
        steps: unrolled steps ``T`` (8 for ML-20M and Netflix, 6 for MSD).
        embed_dim: width of the fusion lookup table (64).
        feedback_dim: width of the feedback embedding ``v`` (128).
        virtual_hidden: hidden widths of ``g`` and ``F`` (128, 128).
        pretrain_epochs: stage 1 epochs (150).
        reward_epochs: stage 2 epochs (10; not given in the paper).
        joint_epochs: stage 3 epochs (50).
        reward_lr: reward-estimator (and lookup table) Adam learning rate.
        reward_loss: ``"bce"`` (default) or ``"paper"`` (eq. 7 as written; unbounded).
    """

    config_class = CFSFLConfig

    def __init__(self, num_items: int, hidden_dims: tuple[int, ...] = (600,),
                 latent_dim: int = 200, dropout: float = 0.5, beta_max: float = 0.2,
                 anneal_epochs: int = 100, epochs: int = 210, batch_size: int = 500,
                 lr: float = 1e-3, l2_reg: float = 2e-5, variational: bool = True,
                 seed: int = 0, steps: int = 8, embed_dim: int = 64, feedback_dim: int = 128,
                 virtual_hidden: tuple[int, ...] = (128, 128), pretrain_epochs: int = 150,
                 reward_epochs: int = 10, joint_epochs: int = 50, reward_lr: float = 1e-3,
                 reward_loss: str = "bce") -> None:
        TrainableCF.__init__(self)
        if steps < 0:
            raise ValueError(f"steps (T) must be >= 0, got {steps}")
        if reward_loss not in REWARD_LOSSES:
            raise ValueError(f"reward_loss must be one of {REWARD_LOSSES}, got {reward_loss!r}")
        self.config = CFSFLConfig(num_items, tuple(hidden_dims), latent_dim, dropout, beta_max,
                                  anneal_epochs, epochs, batch_size, lr, l2_reg, variational,
                                  seed, steps, embed_dim, feedback_dim, tuple(virtual_hidden),
                                  pretrain_epochs, reward_epochs, joint_epochs, reward_lr,
                                  reward_loss)
        self._init_training(seed)
        self.net = AutoEncoder(num_items, tuple(hidden_dims), latent_dim, variational,
                               feedback_dim, self.generator)
        self.lookup = nn.Parameter(0.1 * torch.randn(num_items, embed_dim,
                                                     generator=self.generator))
        self.reward = _mlp([embed_dim, *virtual_hidden, 1], self.generator)
        self.feedback = _mlp([embed_dim + 1, *virtual_hidden, feedback_dim], self.generator)
        # Set when stage 3 starts: before that the loop is untrained and inference uses v = 0.
        self.register_buffer("loop_trained", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ the loop

    def fuse_x(self, x: Tensor) -> Tensor:
        """``|x|^-1 sum_{j: x_j = 1} B_j`` (first half of eq. 13), ``(B, embed_dim)``."""
        return (x @ self.lookup) / x.sum(dim=1, keepdim=True).clamp(min=1.0)

    def reward_logit(self, hx: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """Fused input ``h(x, a) = hx + a B`` (eq. 13) and ``g(h)``, the logit of ``R`` (eq. 3)."""
        h = hx + a @ self.lookup
        return h, _run_mlp(self.reward, h).squeeze(1)

    def recommend(self, inp: Tensor, v: Tensor, sample: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``pi([x; v])``: logits, posterior mean and log-variance."""
        return self.net(torch.cat([inp, F.normalize(v, dim=1)], dim=1), sample=sample,
                        generator=self.generator)

    def unroll(self, x_h: Tensor, inp: Tensor, steps: int, sample: bool
               ) -> tuple[Tensor, Tensor, Tensor]:
        """``T`` rounds recommender -> virtual user from ``v^0 = 0``; returns ``pi(x, v^T)``.

        Args:
            x_h: binary input histories ``(B, M)`` (for the fusion).
            inp: the recommender's normalised (and, in training, dropped-out) input.
            steps: ``T``.
            sample: sample ``z`` (training) or use the mean (inference).
        """
        v = torch.zeros(x_h.shape[0], self.config.feedback_dim, device=x_h.device)
        hx = self.fuse_x(x_h) if steps > 0 else None
        for _ in range(steps):
            logits, _, _ = self.recommend(inp, v, sample)
            h, z = self.reward_logit(hx, torch.softmax(logits, dim=1))
            v = _run_mlp(self.feedback, torch.cat([h, torch.sigmoid(z)[:, None]], dim=1))
        return self.recommend(inp, v, sample)

    @property
    def inference_steps(self) -> int:
        """``T`` once the loop has been trained (stage 3), else 0 (the base recommender)."""
        return self.config.steps if bool(self.loop_trained) else 0

    def score(self, x: Tensor) -> Tensor:
        """Logits of ``a^T`` after ``T`` unrolled steps (the paper's test-time inference)."""
        logits, _, _ = self.unroll(x, F.normalize(x, dim=1), self.inference_steps,
                                   sample=False)
        return logits

    # ------------------------------------------------------------------ losses

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            "actor": torch.optim.Adam(list(self.net.parameters())
                                      + list(self.feedback.parameters()), lr=self.config.lr),
            "reward": torch.optim.Adam([self.lookup, *self.reward.parameters()],
                                       lr=self.config.reward_lr),
        }

    def elbo_loss(self, x: Tensor, beta: float, steps: int = 0
                  ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean negative beta-ELBO of ``a^T`` (``steps = T``; 0 is stage 1's ``v = 0``)."""
        loss, nll, kl, _ = self._rec_loss(x, beta, steps)
        return loss, nll, kl

    def _rec_loss(self, x: Tensor, beta: float, steps: int
                  ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        b, inp = corrupt(x, self.config.dropout, self.generator)
        x_h = x * b
        logits, mu, logvar = self.unroll(x_h, inp, steps, sample=self.config.variational)
        nll = multinomial_nll(logits, x).mean()
        kl = kl_divergence(mu, logvar).mean() if self.config.variational else torch.zeros(())
        loss = nll + beta * kl
        if self.config.l2_reg:
            loss = loss + self.config.l2_reg * l2_penalty([self.net])
        return loss, nll, kl, (x_h, logits)

    def reward_objective(self, z_real: Tensor, z_fake: Tensor) -> Tensor:
        """Loss the reward estimator minimises (eq. 7 negated, or cross-entropy)."""
        if self.config.reward_loss == "paper":
            return F.logsigmoid(z_fake).mean() - F.logsigmoid(z_real).mean()
        return -F.logsigmoid(z_real).mean() - F.logsigmoid(-z_fake).mean()

    def reward_step(self, x: Tensor, x_h: Tensor, a_fake: Tensor) -> float:
        """One step of ``R`` (and ``B``): real pairs ``(x_h, x/|x|)`` against ``(x_h, a_fake)``."""
        hx = self.fuse_x(x_h)
        a_real = x / x.sum(dim=1, keepdim=True).clamp(min=1.0)
        _, z_real = self.reward_logit(hx, a_real)
        _, z_fake = self.reward_logit(hx, a_fake.detach())
        loss = self.reward_objective(z_real, z_fake)
        opt = self.optimizers["reward"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def _reward_epoch(self, train: sp.csr_matrix, epoch: int) -> dict[str, float]:
        losses = []
        for idx in self._user_batches(train.shape[0]):
            x = csr_to_dense(train[idx.numpy()])
            b, inp = corrupt(x, self.config.dropout, self.generator)
            x_h = x * b
            with torch.no_grad():
                logits, _, _ = self.unroll(x_h, inp, 0, sample=self.config.variational)
            losses.append(self.reward_step(x, x_h, torch.softmax(logits, dim=1)))
        return {"reward_loss": sum(losses) / len(losses)}

    def recommender_step(self, x: Tensor, beta: float) -> tuple[dict[str, float], Tensor, Tensor]:
        """One step of ``pi`` and ``F`` on eq. 6 through the ``T`` unrolled steps.

        Returns the loss statistics, the corrupted histories ``x_h`` and ``a^T`` (for the
        reward step). ``R`` and ``B`` are not updated here.
        """
        elbo, nll, _, (x_h, logits) = self._rec_loss(x, beta, self.config.steps)
        a_t = torch.softmax(logits, dim=1)
        _, z = self.reward_logit(self.fuse_x(x_h), a_t)
        log_r = F.logsigmoid(z).mean()
        loss = elbo - log_r  # eq. 6
        opt = self.optimizers["actor"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.updates += 1
        return {"loss": loss.item(), "nll": nll.item(), "log_reward": log_r.item()}, x_h, a_t

    def _joint_epoch(self, train: sp.csr_matrix, epoch: int) -> dict[str, float]:
        self.loop_trained.fill_(True)
        totals = {"loss": 0.0, "nll": 0.0, "log_reward": 0.0, "reward_loss": 0.0}
        batches = self._user_batches(train.shape[0])
        for idx in batches:
            x = csr_to_dense(train[idx.numpy()])
            stats, x_h, a_t = self.recommender_step(x, self.beta(train.shape[0]))
            stats["reward_loss"] = self.reward_step(x, x_h, a_t)
            for k, v in stats.items():
                totals[k] += v
        return {k: v / len(batches) for k, v in totals.items()}

    def _stages(self) -> list[Stage]:
        c = self.config
        return [Stage("recommender", c.pretrain_epochs, self._mle_epoch),
                Stage("reward", c.reward_epochs, self._reward_epoch, select_best=False),
                Stage("joint", c.joint_epochs, self._joint_epoch)]
