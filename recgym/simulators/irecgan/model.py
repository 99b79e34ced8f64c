"""IRecGAN's user behaviour model U (Bai et al., NeurIPS 2019), eq. 1-3.

The user state is an RNN over the embeddings of the items clicked so far,
``s_t = h_u(s_{t-1}, e_{c_{t-1}})``. Shown a slate ``a_t`` of ``k`` items, the user clicks
item ``i`` with probability ``softmax_i((W_c s_t + b_c)^T E_t)`` (eq. 1), and a clicked
item earns a reward with probability ``sigmoid((W_r s_t + b_r)^T e_{c_t})`` (eq. 2, e.g.
a purchase). U is fitted by maximum likelihood, ``log p(c_t) + lambda_p log p(r_t)``
(eq. 3).

Readings chosen where the paper is open:

* The session-end symbol ``c_end`` (sec. 5: generation stops when ``c_t = c_end``) is a
  learned embedding appended to every slate, so the click softmax has ``k + 1``
  outcomes; a logged page view without a click is a ``c_end``.
* The first state comes from a learned start embedding fed to the RNN (``s_0`` of the
  paper), so a session's first slate is judged like every other.
* The reward term of eq. 3 counts on clicked steps only (rewards relate to clicks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.checkpoint import check_checkpoint, checkpoint_payload, config_from_checkpoint


@dataclass
class UserModelConfig:
    """Architecture of U (defaults: the paper's settings, sec. 7.1).

    Attributes:
        num_items: catalogue size; item ids are ``0 .. num_items - 1``.
        embedding_dim: item embedding size (50).
        hidden_size: RNN hidden size (512).
        num_layers: RNN layers (2).
        cell: ``"lstm"`` or ``"gru"``.
    """

    num_items: int
    embedding_dim: int = 50
    hidden_size: int = 512
    num_layers: int = 2
    cell: str = "lstm"

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("num_items", "embedding_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints."""
        return asdict(self)


class UserBehaviorModel(nn.Module):
    """U: click distribution over a slate plus ``c_end``, and the reward of a click."""

    def __init__(self, config: UserModelConfig) -> None:
        super().__init__()
        self.config = config
        # ids 0 .. n-1: items; n: the start token fed before the first click
        self.item_embedding = nn.Embedding(config.num_items + 1, config.embedding_dim)
        self.end_embedding = nn.Parameter(torch.zeros(config.embedding_dim))
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(config.embedding_dim, config.hidden_size, config.num_layers,
                       batch_first=True)
        self.click_projection = nn.Linear(config.hidden_size, config.embedding_dim)  # W_c, b_c
        self.reward_projection = nn.Linear(config.hidden_size, config.embedding_dim)  # W_r, b_r

    @property
    def start_token(self) -> int:
        """Input id fed to the RNN before the first click."""
        return self.config.num_items

    def states(self, inputs: Tensor, memory=None):
        """RNN states for input ids ``(B, T)``: outputs ``(B, T, hidden)`` and the memory."""
        return self.rnn(self.item_embedding(inputs), memory)

    def click_logits(self, state: Tensor, slate: Tensor) -> Tensor:
        """Eq. 1 logits over the slate items and ``c_end``: ``(..., k + 1)``.

        Args:
            state: ``s_t``, ``(..., hidden)``.
            slate: item ids ``(..., k)``.
        """
        query = self.click_projection(state)
        end = (query * self.end_embedding).sum(-1, keepdim=True)
        if self.config.num_items <= 8 * slate.shape[-1]:
            # a small catalogue: one matrix product with every item, then the shown ones
            # (several times faster than gathering k embeddings per slate)
            shown = (query @ self.item_embedding.weight[:-1].T).gather(-1, slate)
        else:
            shown = (self.item_embedding(slate) * query[..., None, :]).sum(-1)
        return torch.cat([shown, end], dim=-1)

    def reward_logit(self, state: Tensor, clicked: Tensor) -> Tensor:
        """Eq. 2 logit of a reward for clicked item ids ``(...)`` under ``s_t``."""
        return (self.reward_projection(state) * self.item_embedding(clicked)).sum(-1)

    def log_likelihood(self, slates: Tensor, click_positions: Tensor, clicked: Tensor,
                       rewards: Tensor, mask: Tensor, reward_weight: float = 1.0,
                       step_weights: Tensor | None = None) -> Tensor:
        """Eq. 3 per session: ``sum_t log p(c_t) + lambda_p log p(r_t)``, ``(B,)``.

        With ``step_weights`` ``(B, T)`` each step's term is weighted: the
        ``q_D(tau_{0:t})`` of eq. 7.

        Args:
            slates: ``(B, T, k)`` shown items.
            click_positions: ``(B, T)`` clicked slate position, or ``k`` for ``c_end``.
            clicked: ``(B, T)`` clicked item id (any valid id where there is no click).
            rewards: ``(B, T)`` 0 / 1 rewards of the clicks.
            mask: ``(B, T)`` true on real (not padded) steps.
            reward_weight: ``lambda_p``.
            step_weights: optional per-step weights.
        """
        k = slates.shape[-1]
        previous = torch.cat([torch.full_like(clicked[:, :1], self.start_token),
                              clicked[:, :-1]], dim=1)
        states, _ = self.states(previous)
        click_log = F.log_softmax(self.click_logits(states, slates), dim=-1)
        click_term = click_log.gather(-1, click_positions[..., None]).squeeze(-1)
        reward_term = -F.binary_cross_entropy_with_logits(
            self.reward_logit(states, clicked), rewards.float(), reduction="none")
        has_click = mask & (click_positions < k)
        weights = mask.float() if step_weights is None else step_weights * mask
        return ((click_term * weights).sum(1)
                + reward_weight * (reward_term * weights * has_click).sum(1))

    def checkpoint(self, **extra) -> dict:
        """Config and weights (plus ``extra`` entries), loadable with ``weights_only``."""
        return checkpoint_payload("irecgan-user", self.config.to_dict(), self.state_dict(),
                                  **extra)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> UserBehaviorModel:
        """Rebuild from :meth:`checkpoint`."""
        check_checkpoint(checkpoint, "irecgan-user", rebuild="recgym fit irecgan-user")
        model = cls(config_from_checkpoint(UserModelConfig, checkpoint))
        model.load_state_dict(checkpoint["state_dict"])
        return model
