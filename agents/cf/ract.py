"""RaCT: ranking-critical training of a Mult-VAE / Mult-DAE actor (Lobel et al., ICLR 2020).

Algorithm 1 of the paper, in three stages over mini-batches of 500 training users:

1. actor pre-training by MLE: the beta-annealed ELBO of eq. 4 (`MultVAE`), ``actor_epochs``;
2. critic pre-training: the actor is fixed; for each user the history ``x`` is split by the
   dropout mask ``b`` (eq. 2) into the input ``x_h = x * b`` and the removed part
   ``x_p = x - x_h``; the critic sees ``h = [NLL, |H0|, |H1|]`` (eq. 5; NLL of eq. 4 on the
   whole ``x``, ``|H0| = |x_p|``, ``|H1| = |x_h|``) through BatchNorm and the
   ``3 -> 100 -> 100 -> 10 -> 1`` ReLU/sigmoid network (Table 4), and regresses by MSE (eq. 6)
   the true NDCG@100 of the actor's ranking of ``x_p`` with ``x_h`` excluded (or Recall@R,
   Table 6: ``critic_metric="recall@100"``), ``critic_epochs``;
3. alternating updates, ``ac_epochs``: per batch one actor step maximising the critic's
   output (eq. 7; gradients flow through the NLL feature only) and one critic step (eq. 6)
   on fresh features of the updated actor.

The VAE actor samples ``z`` in stages 2-3 (posterior sampling as exploration, section 5.2);
a DAE actor (``variational=False``) is deterministic. Defaults follow Tables 4-5 and appendix
E.3 for ML-20M (150 + 50 + 50 epochs, beta 0.2 annealed over 100 epochs, Adam, lr 1e-3).

The paper gives no learning rates beyond the actor's; the authors' code (github
samlobel/RaCT_CF, ``utils/models.py`` ``MultiVAE``) uses three separate Adam optimisers:
1e-3 for actor pre-training, 1e-4 for the critic (``critic_lr``) and 2e-6 for the actor in
stage 3 (``ac_lr``), whose Adam starts afresh. These are the defaults here.
``ac_shared_optimizer=True`` instead continues the stage-1 Adam (its moments included) at
``ac_lr`` in stage 3, which with ``ac_lr=1e-3, critic_lr=1e-3`` is what recgym did before
(kept for the ablation in docs/cf.md).

Readings of open details: ``critic_norm`` says how the critic's BatchNorm normalises
``h``. ``"batch"`` (default, the paper's "the magnitude of the inputs (NLL) change as
training progresses"): batch statistics in critic steps, running statistics in actor steps,
so the critic is a fixed function while the actor moves. ``"frozen"``: the statistics of the
pre-trained actor's features over one pass of the training users, taken when stage 2 starts
and never updated (the authors' code runs its BatchNorm in inference mode throughout stages
2-3 and updates its statistics only with stage-1 actor steps). ``"raw"``: raw features
(the authors' code in its two-call ``main_vae.py`` flow, if its statistics were
re-initialised on restore). Users whose mask removed nothing (``|H0| = 0``, metric
undefined) are left out of both losses; the stage-3 actor objective is the critic alone (no
KL, no likelihood term), as eq. 7 states and the authors' code does
(``ac_reg_loss_scaler=0``). With a validation set the best validation NDCG@100 epoch of
stage 1 starts stage 2, and the best of stages 1 and 3 is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cf.base import Stage, TrainableCF, csr_to_dense, l2_penalty
from agents.cf.vae import AutoEncoder, MultVAE, MultVAEConfig, corrupt, multinomial_nll
from recgym.evaluation.ranking import parse_metric, ranking_metrics


@dataclass
class RaCTConfig(MultVAEConfig):
    """Configuration of `RaCT` (defaults: RaCT Tables 4-5 and appendix E.3, ML-20M)."""

    actor_epochs: int = 150
    critic_epochs: int = 50
    ac_epochs: int = 50
    critic_metric: str = "ndcg@100"
    critic_lr: float = 1e-4
    critic_hidden: tuple[int, ...] = (100, 100, 10)
    ac_lr: float = 2e-6
    ac_shared_optimizer: bool = False
    critic_norm: str = "batch"


CRITIC_NORMS = ("batch", "frozen", "raw")


class Critic(nn.Module):
    """``omega_psi``: BatchNorm over ``h = [NLL, |H0|, |H1|]`` then an MLP to a sigmoid score."""

    def __init__(self, hidden: tuple[int, ...], generator: torch.Generator,
                 normalise: bool = True) -> None:
        super().__init__()
        self.normalise = normalise
        self.norm = nn.BatchNorm1d(3)
        dims = [3, *hidden, 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:],
                                                                       strict=True))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)

    def forward(self, h: Tensor) -> Tensor:
        """Predicted ranking score in (0, 1), shape ``(B,)``."""
        out = self.norm(h) if self.normalise else h
        for i, layer in enumerate(self.layers):
            out = layer(out)
            out = torch.relu(out) if i < len(self.layers) - 1 else torch.sigmoid(out)
        return out.squeeze(1)


class RaCT(MultVAE):
    """Ranking-critical training (RaCT Algorithm 1) of a Mult-VAE (or Mult-DAE) actor.

    Args:
        num_items: catalogue size ``M``.
        hidden_dims: actor encoder hidden widths (600).
        latent_dim: actor latent size (200).
        dropout: input dropout / mask rate ``1 - alpha`` (0.5).
        beta_max: final KL weight of stage 1 (0.2).
        anneal_epochs: epochs of linear KL annealing (100).
        epochs: unused (kept for a config shared with `MultVAE`); see the stage counts.
        batch_size: users per update (500).
        lr: actor Adam learning rate.
        l2_reg: actor squared-weight penalty (2e-5 with a DAE actor, as `MultDAE`).
        variational: VAE actor (True) or DAE actor (False).
        seed: seeds everything random.
        actor_epochs: stage 1 epochs (150).
        critic_epochs: stage 2 epochs (50).
        ac_epochs: stage 3 epochs (50).
        critic_metric: the Oracle the critic learns, ``"ndcg@100"`` or e.g. ``"recall@100"``.
        critic_lr: critic Adam learning rate (1e-4, the authors' code).
        critic_hidden: critic hidden widths (100, 100, 10).
        ac_lr: actor Adam learning rate in stage 3 (2e-6, the authors' code).
        ac_shared_optimizer: continue the stage-1 Adam (with its moments) in stage 3 instead
            of a fresh one.
        critic_norm: the critic's input normalisation, ``"batch"``, ``"frozen"`` or
            ``"raw"`` (see the module docstring).
    """

    config_class = RaCTConfig

    def __init__(self, num_items: int, hidden_dims: tuple[int, ...] = (600,),
                 latent_dim: int = 200, dropout: float = 0.5, beta_max: float = 0.2,
                 anneal_epochs: int = 100, epochs: int = 250, batch_size: int = 500,
                 lr: float = 1e-3, l2_reg: float = 0.0, variational: bool = True,
                 seed: int = 0, actor_epochs: int = 150, critic_epochs: int = 50,
                 ac_epochs: int = 50, critic_metric: str = "ndcg@100", critic_lr: float = 1e-4,
                 critic_hidden: tuple[int, ...] = (100, 100, 10), ac_lr: float = 2e-6,
                 ac_shared_optimizer: bool = False, critic_norm: str = "batch") -> None:
        TrainableCF.__init__(self)
        parse_metric(critic_metric)
        if critic_norm not in CRITIC_NORMS:
            raise ValueError(f"critic_norm={critic_norm!r}: choose from {CRITIC_NORMS}")
        self.config = RaCTConfig(num_items, tuple(hidden_dims), latent_dim, dropout, beta_max,
                                 anneal_epochs, epochs, batch_size, lr, l2_reg, variational,
                                 seed, actor_epochs, critic_epochs, ac_epochs, critic_metric,
                                 critic_lr, tuple(critic_hidden), ac_lr, bool(ac_shared_optimizer),
                                 critic_norm)
        self._init_training(seed)
        self.net = AutoEncoder(num_items, tuple(hidden_dims), latent_dim, variational, 0,
                               self.generator)
        self.critic = Critic(tuple(critic_hidden), self.generator,
                             normalise=critic_norm != "raw")

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Three Adams as in the authors' code: stage-1 actor, critic, stage-3 actor (fresh).
        return {"actor": torch.optim.Adam(self.net.parameters(), lr=self.config.lr),
                "critic": torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr),
                "ac": torch.optim.Adam(self.net.parameters(), lr=self.config.ac_lr)}

    def _ac_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of stage-3 actor steps (a fresh Adam unless `ac_shared_optimizer`)."""
        if not self.config.ac_shared_optimizer:
            return self.optimizers["ac"]
        opt = self.optimizers["actor"]
        for group in opt.param_groups:
            group["lr"] = self.config.ac_lr
        return opt

    def features(self, x: Tensor, *, grad: bool, mask: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """Critic features ``h`` (eq. 5), Oracle targets ``y`` and a mask of usable users.

        A fresh mask ``b`` (or ``mask``) splits each history into input ``x_h`` and hidden
        ``x_p``; the actor (sampling ``z`` if variational) predicts from ``x_h``; ``y`` is the
        critic metric of ranking ``x_p`` with ``x_h`` excluded.
        """
        b, inp = corrupt(x, self.config.dropout, self.generator, mask)
        x_h = x * b
        x_p = x - x_h
        with torch.set_grad_enabled(grad):
            logits, _, _ = self.net(inp, sample=self.config.variational,
                                    generator=self.generator)
            nll = multinomial_nll(logits, x)
        h = torch.stack([nll, x_p.sum(dim=1), x_h.sum(dim=1)], dim=1)
        metric = self.config.critic_metric
        y = ranking_metrics(logits.detach(), x_p, x_h > 0, (metric,))[metric].float()
        ok = ~torch.isnan(y)
        return h, torch.nan_to_num(y), ok

    def critic_step(self, x: Tensor) -> float:
        """One MSE step of the critic (eq. 6) on features of the current actor."""
        h, y, ok = self.features(x, grad=False)
        if ok.sum() < 2:
            return float("nan")
        self.critic.train(self.config.critic_norm == "batch")  # else the statistics stay fixed
        loss = F.mse_loss(self.critic(h[ok]), y[ok])
        opt = self.optimizers["critic"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def actor_step(self, x: Tensor) -> float:
        """One step of the actor maximising the fixed critic's score (eq. 7)."""
        h, _, ok = self.features(x, grad=True)
        if ok.sum() < 1:
            return float("nan")
        self.critic.eval()
        score = self.critic(h[ok]).mean()
        loss = -score
        if self.config.l2_reg:
            loss = loss + self.config.l2_reg * l2_penalty([self.net])
        opt = self._ac_optimizer()
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.critic.zero_grad(set_to_none=True)
        self.critic.train()
        return score.item()

    @torch.no_grad()
    def freeze_critic_norm(self, train: sp.csr_matrix) -> None:
        """Set the critic's normalisation statistics to those of the current actor's features.

        One pass over the training users, masks and latent noise drawn as in training.
        """
        feats = []
        for idx in self._user_batches(train.shape[0]):
            h, _, ok = self.features(csr_to_dense(train[idx.numpy()]), grad=False)
            feats.append(h[ok])
        h = torch.cat(feats)
        self.critic.norm.running_mean.copy_(h.mean(dim=0))
        self.critic.norm.running_var.copy_(h.var(dim=0))

    def _critic_epoch(self, train: sp.csr_matrix, epoch: int) -> dict[str, float]:
        if epoch == 0 and self.config.critic_norm == "frozen":
            self.freeze_critic_norm(train)
        losses = [self.critic_step(csr_to_dense(train[idx.numpy()]))
                  for idx in self._user_batches(train.shape[0])]
        return {"critic_mse": float(torch.tensor(losses).nanmean())}

    def _ac_epoch(self, train: sp.csr_matrix, epoch: int) -> dict[str, float]:
        if epoch == 0 and self.config.critic_norm == "frozen" and self.config.critic_epochs == 0:
            self.freeze_critic_norm(train)
        scores, losses = [], []
        for idx in self._user_batches(train.shape[0]):
            x = csr_to_dense(train[idx.numpy()])
            scores.append(self.actor_step(x))
            losses.append(self.critic_step(x))
            self.updates += 1
        return {"critic_score": float(torch.tensor(scores).nanmean()),
                "critic_mse": float(torch.tensor(losses).nanmean())}

    def _stages(self) -> list[Stage]:
        c = self.config
        return [Stage("actor", c.actor_epochs, self._mle_epoch),
                Stage("critic", c.critic_epochs, self._critic_epoch, select_best=False),
                Stage("actor-critic", c.ac_epochs, self._ac_epoch)]

    @torch.no_grad()
    def critic_predictions(self, train: sp.spmatrix) -> tuple[Tensor, Tensor]:
        """Critic estimates and true metric values for every user of `train` (one mask each)."""
        self.eval()
        preds, truth = [], []
        for start in range(0, train.shape[0], self.config.batch_size):
            x = csr_to_dense(sp.csr_matrix(train[start:start + self.config.batch_size]))
            h, y, ok = self.features(x, grad=False)
            preds.append(self.critic(h)[ok])
            truth.append(y[ok])
        return torch.cat(preds), torch.cat(truth)
