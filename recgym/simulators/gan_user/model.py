"""The generative adversarial user model of Chen et al. (ICML 2019), sec. 4.

A user shown a display set ``A_t`` chooses the item maximising ``eta r(s_t, a) + eps``
(eq. 2-3); with the negative Shannon entropy as regulariser the choice distribution is
``softmax(eta r(s_t, a))`` over ``A_t`` (Lemma 2), so fitting ``r`` is maximum
likelihood. The state embeds the features of the last ``m`` clicked items either by
position weighting (eq. 4: ``s_t = vec[sigma(F W + B)]``, ``F`` the ``d x m`` feature
matrix, ``W`` ``m x n``, ``B`` ``d x n``) or by an LSTM; the reward is
``r(s, a) = v^T sigma(V [s; f_a] + b)``.

Readings chosen here: ``sigma`` is ELU; a missing click (fewer than ``m`` so far) has
zero features; "no click" is an item always displayed whose reward is either that of a
zero feature vector (``no_click="zero"``) or a learned constant (``"learned"``).

With the paper's other regulariser, ``R(phi) = ||phi||_2^2`` (sec. 6.1, Table 2), the
user's best response of eq. 2 maximises ``phi . r - ||phi||^2 / eta`` over the simplex:
``phi* = argmin ||phi - eta r / 2||``, the Euclidean projection of ``eta r / 2`` onto the
simplex (`project_onto_simplex`), which can give some displayed items probability 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.checkpoint import check_checkpoint, checkpoint_payload, config_from_checkpoint

REGULARIZERS = ("entropy", "l2")


def project_onto_simplex(values: Tensor) -> Tensor:
    """Euclidean projection of each row of ``values`` onto the probability simplex.

    The closed-form maximiser of ``phi . z - ||phi||^2`` over the simplex for ``z = 2 values``
    (sort, find the support, shift and clip). Entries of ``-inf`` get probability 0.
    """
    finite = values.masked_fill(torch.isinf(values), torch.finfo(values.dtype).min / 4)
    ordered, _ = finite.sort(dim=-1, descending=True)
    cumulative = ordered.cumsum(-1)
    sizes = torch.arange(1, values.shape[-1] + 1, dtype=values.dtype, device=values.device)
    support = (1 + sizes * ordered > cumulative).sum(-1, keepdim=True)
    threshold = (cumulative.gather(-1, support - 1) - 1) / support.to(values.dtype)
    return (finite - threshold).clamp_min(0)


class OneHotItems:
    """One-hot item features ``(n, n)`` that are never built: indexing gives back the ids.

    The model reads integer "features" as one-hot ids and applies its first layers as
    row lookups of their weights: the same function and gradients as the dense identity
    table, without its ``n``-wide rows (9,742 items: 1.9 MB per page view of 50 items).
    """

    def __init__(self, num_items: int) -> None:
        self.shape = (num_items, num_items)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, ids: Tensor) -> Tensor:
        return ids


def features_of(ids: Tensor, features: Tensor | OneHotItems) -> Tensor:
    """Features ``(..., d)`` of item ids ``(...)``, zeros where the id is -1 (no click yet).

    With :class:`OneHotItems` the ids themselves (-1 stays: no item).
    """
    if isinstance(features, OneHotItems):
        return ids
    return _rows_of(ids, features)


def _rows_of(ids: Tensor, table: Tensor) -> Tensor:
    """``table[ids]`` with zero rows where the id is -1 (also a one-hot input times a weight).

    A row gather with ``F.embedding``, 3-5x faster than ``table[ids]``.
    """
    return F.embedding(ids.clamp_min(0), table) * (ids >= 0)[..., None]


@dataclass
class GANUserConfig:
    """Architecture of the user model.

    Attributes:
        feature_dim: ``d``, item feature size.
        history: ``m``, clicked items in the state.
        position_columns: ``n``, sets of position weights (eq. 4).
        hidden: ``l``, width of the reward network.
        state: ``"pw"`` (position weights, GAN-PW) or ``"lstm"`` (GAN-LSTM).
        lstm_hidden: LSTM state size for ``state="lstm"``.
        eta: the exploration parameter (1, as in the paper).
        no_click: ``"zero"`` or ``"learned"`` reward of not clicking.
        regularizer: ``R(phi)`` of eq. 2, which fixes the choice distribution:
            ``"entropy"`` (softmax, Lemma 1) or ``"l2"`` (simplex projection).
    """

    feature_dim: int
    history: int = 10
    position_columns: int = 4
    hidden: int = 256
    state: str = "pw"
    lstm_hidden: int = 64
    eta: float = 1.0
    no_click: str = "zero"
    regularizer: str = "entropy"

    def __post_init__(self) -> None:
        if self.state not in ("pw", "lstm"):
            raise ValueError(f"state must be 'pw' or 'lstm', got {self.state!r}")
        if self.no_click not in ("zero", "learned"):
            raise ValueError(f"no_click must be 'zero' or 'learned', got {self.no_click!r}")
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer must be one of {REGULARIZERS}, got "
                             f"{self.regularizer!r}")
        if self.eta <= 0:
            raise ValueError(f"eta must be positive, got {self.eta}")

    @property
    def state_dim(self) -> int:
        """Size of ``s_t``."""
        return (self.feature_dim * self.position_columns if self.state == "pw"
                else self.lstm_hidden)

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints."""
        return asdict(self)


class GANUserModel(nn.Module):
    """State embedding, reward ``r_theta(s, a)`` and the choice distribution over a display set."""

    def __init__(self, config: GANUserConfig) -> None:
        super().__init__()
        self.config = config
        d = config.feature_dim
        if config.state == "pw":
            self.position_weights = nn.Parameter(torch.randn(config.history,
                                                             config.position_columns) * 0.1)
            self.position_bias = nn.Parameter(torch.zeros(d, config.position_columns))
        else:
            self.lstm = nn.LSTM(d, config.lstm_hidden, batch_first=True)
        self.reward_hidden = nn.Linear(config.state_dim + d, config.hidden)  # V, b
        self.reward_out = nn.Linear(config.hidden, 1, bias=False)  # v
        self.no_click_reward = nn.Parameter(torch.zeros(())) if config.no_click == "learned" \
            else None

    def state(self, history: Tensor) -> Tensor:
        """``s_t`` from the features of the last ``m`` clicks ``(B, m, d)``, oldest first.

        Integer ``history`` ``(B, m)`` holds one-hot item ids (-1: no click), see
        :class:`OneHotItems`.
        """
        one_hot = not history.is_floating_point()
        if self.config.state == "pw":
            if one_hot:  # F W scatters each click's row of W onto its item
                batch, columns = len(history), self.config.position_columns
                weights = self.position_weights * (history >= 0)[..., None]
                mixed = torch.zeros(batch, self.config.feature_dim, columns,
                                    dtype=weights.dtype, device=history.device).scatter_add(
                    1, history.clamp_min(0)[..., None].expand(-1, -1, columns), weights)
                mixed = mixed + self.position_bias
            else:
                mixed = history.transpose(1, 2) @ self.position_weights + self.position_bias
            return F.elu(mixed).flatten(1)  # vec[sigma(F W + B)]
        if one_hot:
            return self._lstm_state_of_ids(history)
        _, (hidden, _) = self.lstm(history)
        return hidden[-1]

    def _lstm_state_of_ids(self, history: Tensor) -> Tensor:
        """The LSTM's last hidden state over one-hot ids: its input product as a row lookup."""
        lstm = self.lstm
        inputs = _rows_of(history, lstm.weight_ih_l0.T) + lstm.bias_ih_l0 + lstm.bias_hh_l0
        hidden = inputs.new_zeros(len(history), self.config.lstm_hidden)
        cell = torch.zeros_like(hidden)
        for step in range(history.shape[1]):  # gate order of nn.LSTM: input, forget, cell, out
            gates = inputs[:, step] + hidden @ lstm.weight_hh_l0.T
            in_gate, forget, candidate, out = gates.chunk(4, dim=1)
            cell = forget.sigmoid() * cell + in_gate.sigmoid() * candidate.tanh()
            hidden = out.sigmoid() * cell.tanh()
        return hidden

    def reward(self, state: Tensor, features: Tensor) -> Tensor:
        """``r(s, a)`` of items with features ``(B, K, d)`` under states ``(B, S)``: ``(B, K)``.

        Integer ``features`` ``(B, K)`` are one-hot item ids (-1: the zero vector).
        """
        # V [s; f] + b with V split by columns: the state's part once per user, not per item
        weight = self.reward_hidden.weight
        from_state = F.linear(state, weight[:, :state.shape[1]], self.reward_hidden.bias)
        if features.is_floating_point():
            from_items = F.linear(features, weight[:, state.shape[1]:])
        else:
            from_items = _rows_of(features, weight[:, state.shape[1]:].T)
        hidden = F.elu(from_state[:, None] + from_items)
        return self.reward_out(hidden).squeeze(-1)

    @property
    def feature_dim(self) -> int:
        """``d``, the item feature size."""
        return self.config.feature_dim

    def item_scores(self, history: Tensor, features: Tensor) -> Tensor:
        """``r(s, a)`` of items ``(B, K, d)`` after the last ``m`` clicks ``(B, m, d)``."""
        if history.shape[1] != self.config.history:
            raise ValueError(f"this user model reads the last m={self.config.history} clicks, "
                             f"got a history of {history.shape[1]}")
        return self.reward(self.state(history), features)

    def choice_logits(self, state: Tensor, features: Tensor, shown: Tensor | None = None
                      ) -> Tensor:
        """``eta r`` over the display set and, last, the no-click option: ``(B, K + 1)``.

        Args:
            state: ``(B, state_dim)``.
            features: ``(B, K, d)`` features of the displayed items (or one-hot ids
                ``(B, K)``).
            shown: optional bool ``(B, K)``; items not shown get probability 0.
        """
        zero = (torch.zeros_like(features[:, :1]) if features.is_floating_point()
                else torch.full_like(features[:, :1], -1))  # no click: the zero vector
        rewards = self.reward(state, torch.cat([features, zero], dim=1))
        if self.no_click_reward is not None:
            rewards = torch.cat([rewards[:, :-1], self.no_click_reward.expand(len(rewards), 1)],
                                dim=1)
        logits = self.config.eta * rewards
        if shown is not None:
            logits[:, :-1] = logits[:, :-1].masked_fill(~shown, -float("inf"))
        return logits

    def choice_probabilities(self, state: Tensor, features: Tensor,
                             shown: Tensor | None = None) -> Tensor:
        """The user's best response ``phi*`` of eq. 2 over the display set and no click.

        ``softmax(eta r)`` for the Shannon entropy (Lemma 1), the projection of
        ``eta r / 2`` onto the simplex for ``R(phi) = ||phi||^2``; ``(B, K + 1)``.
        """
        return self.best_response(self.choice_logits(state, features, shown))

    def best_response(self, logits: Tensor) -> Tensor:
        """Choice probabilities from :meth:`choice_logits` (``eta r``; -inf: not shown)."""
        if self.config.regularizer == "l2":
            return project_onto_simplex(logits / 2)
        return torch.softmax(logits, dim=-1)

    def checkpoint(self, **extra) -> dict:
        """Config and weights (plus ``extra`` entries), loadable with ``weights_only``."""
        return checkpoint_payload("gan-user", self.config.to_dict(), self.state_dict(), **extra)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> GANUserModel:
        """Rebuild from :meth:`checkpoint`; refuses other checkpoints."""
        check_checkpoint(checkpoint, "gan-user", rebuild="recgym fit gan-user")
        model = cls(config_from_checkpoint(GANUserConfig, checkpoint))
        model.load_state_dict(checkpoint["state_dict"])
        return model
