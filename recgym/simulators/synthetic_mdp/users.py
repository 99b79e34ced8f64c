"""The synthetic m-state MDP of IRecGAN sec. 7.1 as a batched ``UserSimulator`` (a known world).

The readings of the paper chosen here are listed in the manual of ``SyntheticMDP-v0``
(:mod:`recgym.envs.synthetic_mdp`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from recgym.core import validation
from recgym.core.policy import repeated_positions
from recgym.core.simulator import Randomness, State, Step


def observation_spaces(history_length: int, num_items: int, num_states: int
                       ) -> dict[str, gym.Space]:
    """The MDP's observation: recent clicks (``num_items`` = none yet) and the true state."""
    return {
        "clicks": gym.spaces.MultiDiscrete(np.full(history_length, num_items + 1,
                                                   dtype=np.int64)),
        "true_state": gym.spaces.Discrete(num_states),
    }


@dataclass(frozen=True)
class SyntheticWorld:
    """The ground truth of one synthetic MDP.

    Attributes:
        rewards: float ``(m, n)``, ``r(item | state)`` in [0, 1]: drives the click.
        transition: float ``(n, m, m)``, ``P(next_state | item, state)``; rows sum to 1.
        continuation: optional float ``(m, n)``, ``P(continue | clicked item, state)``. None
            (the paper's world): a click always continues the session. Given, a click on
            ``a`` in ``s`` ends the session with probability ``1 - continuation[s, a]``, so
            what is clicked and what keeps a user are two separate tables.
    """

    rewards: Tensor
    transition: Tensor
    continuation: Tensor | None = None

    @classmethod
    def random(cls, num_states: int, num_items: int, seed: int, *,
               continuation: tuple[float, float] | None = None) -> SyntheticWorld:
        """Rewards ~ U(0, 1) and Dirichlet(1) transition rows, drawn from ``seed``.

        Args:
            num_states: ``m``.
            num_items: ``n``.
            seed: seed of every draw.
            continuation: ``(low, high)``: also draw ``P(continue | item, state) ~ U(low,
                high)``, independent of the rewards (drawn after them, so the rewards and
                transitions of a seed are the same with or without it).
        """
        generator = torch.Generator().manual_seed(seed)
        rewards = torch.rand(num_states, num_items, generator=generator, dtype=torch.float64)
        exponentials = -torch.log1p(-torch.rand(num_items, num_states, num_states,
                                                generator=generator, dtype=torch.float64))
        transition = exponentials / exponentials.sum(-1, keepdim=True)
        keep = None
        if continuation is not None:
            low, high = continuation
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"continuation bounds must satisfy 0 <= low <= high <= 1, "
                                 f"got {continuation}")
            uniform = torch.rand(num_states, num_items, generator=generator, dtype=torch.float64)
            keep = (low + (high - low) * uniform).float()
        return cls(rewards.float(), transition.float(), keep)

    @classmethod
    def clickbait(cls, num_states: int, num_items: int, seed: int, *,
                  bait_share: float = 0.2, churn_states: int = 2,
                  bait_rewards: tuple[float, float] = (0.8, 1.0),
                  churn_rewards: tuple[float, float] = (0.0, 0.2),
                  churn_probability: float = 0.9) -> SyntheticWorld:
        """A world where the greedy slate is wrong: planning pays.

        :meth:`random`'s tables, then: a ``bait_share`` of the items is clicked eagerly in
        every ordinary state (``r ~ U(bait_rewards)``), and a click on one leads with
        ``churn_probability`` to one of the last ``churn_states`` states, where every item
        has ``r ~ U(churn_rewards)`` and the session soon ends; a click on any other item
        leads to an ordinary state (its :meth:`random` row, renormalised). The top-k slate
        of a state holds bait and wins the next click; slates without bait keep users
        clicking for longer (about three times the clicks over 10 steps at m = 10, n = 50).
        """
        validation.real("bait_share", bait_share, minimum=1 / num_items, maximum=1.0)
        churn_states = validation.integer("churn_states", churn_states, minimum=1,
                                          maximum=num_states - 1)
        validation.real("churn_probability", churn_probability, minimum=0.0, maximum=1.0)
        for name, (low, high) in (("bait_rewards", bait_rewards),
                                  ("churn_rewards", churn_rewards)):
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"{name} must satisfy 0 <= low <= high <= 1, got "
                                 f"{(low, high)}")
        base = cls.random(num_states, num_items, seed)
        generator = torch.Generator().manual_seed(seed + 1)
        bait = torch.randperm(num_items, generator=generator)[:round(bait_share * num_items)]
        ordinary = num_states - churn_states

        def uniform(shape: tuple[int, int], bounds: tuple[float, float]) -> Tensor:
            low, high = bounds
            return low + (high - low) * torch.rand(shape, generator=generator)

        rewards = base.rewards.clone()
        rewards[:ordinary, bait] = uniform((ordinary, len(bait)), bait_rewards)
        rewards[ordinary:] = uniform((churn_states, num_items), churn_rewards)
        transition = base.transition.double().clone()
        transition[:, :, ordinary:] = 0.0
        transition /= transition.sum(-1, keepdim=True)
        transition[bait] *= 1.0 - churn_probability
        transition[bait, :, ordinary:] += churn_probability / churn_states
        return cls(rewards, transition.float())

    @property
    def num_states(self) -> int:
        """Number of states ``m``."""
        return self.rewards.shape[0]

    @property
    def num_items(self) -> int:
        """Number of items ``n``."""
        return self.rewards.shape[1]


def _draw(cumulative: Tensor, uniform: Tensor) -> Tensor:
    """Per row, how many entries of the cumulative row are at or below its uniform, ``(B, 1)``.

    The inverse-CDF draw ``searchsorted(right=True)``, which on these sorted rows returns
    exactly the count: counting is twice as fast for a batch, and one call instead of
    two for a single env's one user.
    """
    if cumulative.shape[0] == 1:
        return torch.searchsorted(cumulative, uniform.contiguous(), right=True)
    return (cumulative <= uniform).sum(1, keepdim=True)


class SyntheticMDP:
    """Batched simulator of the synthetic MDP (implements ``UserSimulator``).

    Args:
        num_states: ``m`` (including the start state s0 = 0).
        num_items: ``n``.
        slate_size: ``k``.
        history_length: how many recent clicks the agent observes.
        world_seed: seed of the random world (P, r).
        world: a given world instead of a random one.
        device: where the simulation runs.
    """

    def __init__(self, num_states: int = 10, num_items: int = 50, slate_size: int = 10, *,
                 history_length: int = 10, world_seed: int = 0,
                 world: SyntheticWorld | None = None,
                 device: torch.device | str = "cpu") -> None:
        if world is not None:
            num_states, num_items = world.num_states, world.num_items
        num_states = validation.integer("num_states", num_states, minimum=1)
        num_items = validation.integer("num_items", num_items, minimum=1)
        slate_size = validation.integer("slate_size", slate_size, minimum=1, maximum=num_items)
        history_length = validation.integer("history_length", history_length, minimum=1)
        world_seed = validation.integer("world_seed", world_seed, minimum=0)
        self.world = world or SyntheticWorld.random(num_states, num_items, world_seed)
        self.num_states = num_states
        self.num_items = num_items
        self.slate_size = slate_size
        self.history_length = history_length
        self.device = validation.device(device)
        self._rewards_flat = self.world.rewards.reshape(-1).to(self.device)
        self._cumulative_transition = (
            self.world.transition.cumsum(-1).reshape(num_items * num_states, num_states)
            .to(self.device)
        )
        continuation = self.world.continuation
        self._continuation_flat = (None if continuation is None
                                   else continuation.reshape(-1).to(self.device))

    @property
    def no_click(self) -> int:
        """Padding id in the click history: no click yet."""
        return self.num_items

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Every session starts in s0 with an empty click history."""
        return {
            "state": torch.zeros(batch_size, dtype=torch.int64, device=self.device),
            "history": torch.full((batch_size, self.history_length), self.no_click,
                                  dtype=torch.int64, device=self.device),
        }

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Sample click candidate, Bernoulli success and transition for every user.

        With a continuation table, a third uniform decides whether a click continues.
        Written with few torch calls, columns kept ``(B, 1)`` between them: for the single
        env's batch of one, each call costs more than its arithmetic.
        """
        current, history = state["state"], state["history"]
        reward = self._rewards_flat.take(
            torch.add(slate, current.unsqueeze(1), alpha=self.num_items))
        # A repeated item is shown once: each of its c copies carries 1/c of its weight,
        # which leaves the distribution over distinct items exactly as without repeats.
        weight = reward / self._multiplicity(slate)
        uniforms = rng.uniform(2 if self._continuation_flat is None else 3)
        threshold = uniforms[:, :1] * weight.sum(1, keepdim=True)
        position = _draw(weight.mul_(reward).cumsum(1), threshold)
        clicks = position < self.slate_size
        item_column = slate.gather(1, position.clamp_(max=self.slate_size - 1))
        item, success = item_column.view(-1), clicks.view(-1)
        rows = self._cumulative_transition.index_select(
            0, torch.add(current, item, alpha=self.num_states))
        next_state = _draw(rows, uniforms[:, 1:2])
        terminated = ~success
        if self._continuation_flat is not None:
            keep = self._continuation_flat.take(torch.add(item, current, alpha=self.num_items))
            terminated = terminated | (uniforms[:, 2] >= keep)
        return Step(
            state={
                "state": torch.where(success, next_state.view(-1).clamp_(max=self.num_states - 1),
                                     current),
                "history": torch.where(clicks, torch.cat([history[:, 1:], item_column], dim=1),
                                       history),
            },
            reward=success.to(torch.float32),
            clicked=torch.where(success, item, -1),
            terminated=terminated,
        )

    def _multiplicity(self, slate: Tensor) -> Tensor:
        """How many times each slate entry's item occurs in its slate, float ``(B, k)``."""
        counts = torch.zeros(slate.shape[0], self.num_items, device=slate.device)
        ones = torch.ones_like(slate, dtype=torch.float32)
        return counts.scatter_add_(1, slate, ones).gather(1, slate)

    def observe(self, state: State) -> dict[str, Tensor]:
        """The recent clicks (what a recommender sees) and the true state (privileged)."""
        return {"clicks": state["history"], "true_state": state["state"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observation keys."""
        return observation_spaces(self.history_length, self.num_items, self.num_states)

    def true_item_rewards(self, state: State) -> Tensor:
        """``r(item | s)`` for each user's current state, ``(B, n)``."""
        return self.world.rewards.to(self.device)[state["state"]]

    def click_probabilities(self, state: State, slate: Tensor) -> Tensor:
        """Exact ``P(click slate[j])`` for each position, ``(B, k)`` (reference for tests)."""
        reward = self.world.rewards.to(self.device)[state["state"][:, None], slate]
        reward = reward.masked_fill(repeated_positions(slate), 0.0)
        return reward * reward / reward.sum(1, keepdim=True)

    def continue_probabilities(self, state: State, slate: Tensor) -> Tensor:
        """Exact ``P(continue | click slate[j])`` per position, ``(B, k)`` (reference for tests).

        All ones without a continuation table (a click always continues).
        """
        if self.world.continuation is None:
            return torch.ones(slate.shape, device=slate.device)
        return self.world.continuation.to(self.device)[state["state"][:, None], slate]


