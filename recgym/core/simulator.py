"""The batched user-simulation contract every recgym user model implements.

A simulator steps a whole batch of users in one call, on torch tensors, on any device.
Its state is a flat ``dict`` of tensors whose first dimension is the batch, which lets
the generic machinery (autoreset, masking, evaluation) merge states of different users
without knowing what they mean. Randomness comes from per-user streams
(:class:`recgym.core.random.UserRandom`), never from global state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import gymnasium as gym
from torch import Tensor

from recgym.core.random import MaskedUserRandom, UserRandom

State = dict[str, Tensor]
Randomness = UserRandom | MaskedUserRandom


@dataclass
class Step:
    """What one simulator step returns for a batch of ``B`` users.

    Attributes:
        state: the users' next state.
        reward: float32 ``(B,)``.
        clicked: int64 ``(B,)``, the clicked item id or -1 for no click.
        terminated: bool ``(B,)``, the user left (the session is over).
        info: extra per-user tensors, each with leading dimension ``B``.
    """

    state: State
    reward: Tensor
    clicked: Tensor
    terminated: Tensor
    info: dict[str, Tensor] = field(default_factory=dict)


@runtime_checkable
class UserSimulator(Protocol):
    """A batch of users that reacts to slates.

    Attributes:
        num_items: size of the catalogue; item ids are ``0 .. num_items - 1``.
        slate_size: items per slate ``k``.
    """

    num_items: int
    slate_size: int

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Start ``batch_size`` new sessions."""
        ...

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Show each user a slate (int64 ``(B, k)`` of item ids) and sample the response."""
        ...

    def observe(self, state: State) -> dict[str, Tensor]:
        """Everything an agent may see, as tensors with leading dimension ``B``."""
        ...

    def observation_spaces(self) -> dict[str, gym.Space]:
        """The single-user Gymnasium space of each key :meth:`observe` returns."""
        ...


@runtime_checkable
class GroundTruth(Protocol):
    """Simulators whose true item rewards are known (synthetic worlds) also expose them."""

    def true_item_rewards(self, state: State) -> Tensor:
        """Expected reward of each item for each user, float ``(B, num_items)``."""
        ...
