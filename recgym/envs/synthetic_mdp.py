"""The synthetic m-state recommendation MDP of IRecGAN (Bai et al., NeurIPS 2019), sec. 7.1.

A ground-truth world in which every quantity a learned simulator or an agent tries to
recover is known: the transition tensor ``P(s' | item, s)`` and the rewards
``r(item | s)``. It is the world of IRecGAN's simulated online test, and recgym uses it to
check simulators, agents and off-policy estimators against the truth.

Readings of the paper chosen here (the text leaves them open):

* ``s0`` is state 0 of the ``m`` states; every session starts there, and transitions may
  return to it.
* "randomly initialised transition probability matrix": each row ``P(. | a, s)`` is drawn
  uniformly from the probability simplex (Dirichlet(1)).
* The click candidate is drawn among the *distinct* items of the slate (a repeated item
  is shown once), with probability ``r(a | s) / sum_{b in slate} r(b | s)``. The Bernoulli
  success is the click: reward 1, the item is recorded as clicked and the user moves to
  ``s' ~ P(. | a, s)``. A failure is no click, reward 0, and the end of the session.
* One uniform decides candidate and success together: ``P(click a) = r(a)^2 / sum r``,
  and ``P(leave) = 1 - sum r(a)^2 / sum r``; a second uniform drives the transition.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from recgym.core.env import RecEnv, RecVectorEnv
from recgym.core.policy import (
    RandomPolicy,
    distinct,
    repeated_positions,
    sample_without_replacement,
)
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
        rewards: float ``(m, n)``, ``r(item | state)`` in [0, 1].
        transition: float ``(n, m, m)``, ``P(next_state | item, state)``; rows sum to 1.
    """

    rewards: Tensor
    transition: Tensor

    @classmethod
    def random(cls, num_states: int, num_items: int, seed: int) -> SyntheticWorld:
        """Rewards ~ U(0, 1) and Dirichlet(1) transition rows, drawn from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        rewards = torch.rand(num_states, num_items, generator=generator, dtype=torch.float64)
        exponentials = -torch.log1p(-torch.rand(num_items, num_states, num_states,
                                                generator=generator, dtype=torch.float64))
        transition = exponentials / exponentials.sum(-1, keepdim=True)
        return cls(rewards.float(), transition.float())

    @property
    def num_states(self) -> int:
        """Number of states ``m``."""
        return self.rewards.shape[0]

    @property
    def num_items(self) -> int:
        """Number of items ``n``."""
        return self.rewards.shape[1]


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
        if num_states < 1:
            raise ValueError(f"num_states (m) must be >= 1, got {num_states}")
        if num_items < 1:
            raise ValueError(f"num_items (n) must be >= 1, got {num_items}")
        if not 1 <= slate_size <= num_items:
            raise ValueError(f"slate_size (k) must be between 1 and num_items={num_items}, "
                             f"got {slate_size}: a slate shows k distinct items of n")
        if history_length < 1:
            raise ValueError(f"history_length must be >= 1, got {history_length}")
        self.world = world or SyntheticWorld.random(num_states, num_items, world_seed)
        self.num_states = num_states
        self.num_items = num_items
        self.slate_size = slate_size
        self.history_length = history_length
        self.device = torch.device(device)
        self._rewards_flat = self.world.rewards.reshape(-1).to(self.device)
        self._cumulative_transition = (
            self.world.transition.cumsum(-1).reshape(num_items * num_states, num_states)
            .to(self.device)
        )

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
        """Sample click candidate, Bernoulli success and transition for every user."""
        current, history = state["state"], state["history"]
        reward = self._rewards_flat.take(current[:, None] * self.num_items + slate)
        # A repeated item is shown once: each of its c copies carries 1/c of its weight,
        # which leaves the distribution over distinct items exactly as without repeats.
        weight = reward / self._multiplicity(slate)
        click_mass = (weight * reward).cumsum(1)
        uniforms = rng.uniform(2)
        threshold = uniforms[:, :1] * weight.sum(1, keepdim=True)
        position = torch.searchsorted(click_mass, threshold, right=True).squeeze(1)
        success = position < self.slate_size
        item = slate.gather(1, position.clamp(max=self.slate_size - 1)[:, None]).squeeze(1)
        rows = self._cumulative_transition.index_select(0, item * self.num_states + current)
        next_state = torch.searchsorted(rows, uniforms[:, 1:].contiguous(), right=True).squeeze(1)
        next_history = torch.cat([history[:, 1:], item[:, None]], dim=1)
        return Step(
            state={
                "state": torch.where(success, next_state.clamp(max=self.num_states - 1), current),
                "history": torch.where(success[:, None], next_history, history),
            },
            reward=success.to(torch.float32),
            clicked=torch.where(success, item, -1),
            terminated=~success,
        )

    def _multiplicity(self, slate: Tensor) -> Tensor:
        """How many times each slate entry's item occurs in its slate, float ``(B, k)``."""
        ones = torch.ones(slate.shape, dtype=torch.float32, device=slate.device)
        counts = torch.zeros(slate.shape[0], self.num_items, device=slate.device)
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


class MaxRewardPolicy:
    """pi_max of sec. 7.1 (also the oracle): the k items of highest true reward, best first."""

    def __init__(self, world: SyntheticWorld, slate_size: int) -> None:
        self.rewards = world.rewards
        self.slate_size = slate_size

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Top-k items by ``r(. | s)`` under each user's true state."""
        rewards = self.rewards.to(observation["true_state"].device)[observation["true_state"]]
        return rewards.topk(self.slate_size, dim=1).indices

    def slate_probability(self, observation: dict[str, Tensor], slate: Tensor) -> Tensor:
        """1 for the true top-k slate in order, else 0."""
        return (self.act(observation) == slate).all(1).to(torch.float64)


class MixRewardPolicy:
    """pi_mix of sec. 7.1: either the top-k items, or k items from the 20%-50% reward band.

    Reading of "randomly selects k items with either the top 20%-50% ground-truth reward or
    the highest ground-truth reward": at each step, with probability ``top_probability``
    the slate is the true top-k (as pi_max); otherwise it is ``k`` distinct items drawn
    uniformly, in random order, from the items ranked in the top 20%-50% by true reward
    (ranks ``floor(0.2 n)`` to ``floor(0.5 n) - 1``).
    """

    def __init__(self, world: SyntheticWorld, slate_size: int, *, top_probability: float = 0.5,
                 band: tuple[float, float] = (0.2, 0.5), seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        n = world.num_items
        self.band_ranks = (int(band[0] * n), int(band[1] * n))
        band_size = self.band_ranks[1] - self.band_ranks[0]
        if band_size < slate_size:
            raise ValueError(f"the {band} reward band holds {band_size} of {n} items, fewer than "
                             f"slate_size={slate_size}; widen the band or shrink the slate")
        if not 0.0 <= top_probability <= 1.0:
            raise ValueError(f"top_probability must be in [0, 1], got {top_probability}")
        self.rewards = world.rewards
        self.slate_size = slate_size
        self.top_probability = top_probability
        self.generator = torch.Generator(device).manual_seed(seed)

    def _ranking(self, observation: dict[str, Tensor]) -> Tensor:
        rewards = self.rewards.to(observation["true_state"].device)[observation["true_state"]]
        return rewards.argsort(dim=1, descending=True, stable=True)

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Top-k with probability ``top_probability``, else k random items of the band."""
        ranking = self._ranking(observation)
        start, stop = self.band_ranks
        band = ranking[:, start:stop]
        picks = sample_without_replacement(torch.zeros(band.shape, device=band.device),
                                           self.slate_size, self.generator)
        from_band = band.gather(1, picks)
        coin = torch.rand(ranking.shape[0], generator=self.generator, device=ranking.device)
        top = coin[:, None] < self.top_probability
        return torch.where(top, ranking[:, : self.slate_size], from_band)

    def slate_probability(self, observation: dict[str, Tensor], slate: Tensor) -> Tensor:
        """Exact probability of each logged ordered slate, float64 ``(B,)``."""
        ranking = self._ranking(observation)
        is_top = (ranking[:, : self.slate_size] == slate).all(1)
        start, stop = self.band_ranks
        band = ranking[:, start:stop]
        in_band = (slate[:, :, None] == band[:, None, :]).any(-1).all(1) & distinct(slate)
        band_slates = float(np.prod(np.arange(stop - start, stop - start - self.slate_size, -1),
                                    dtype=np.float64))
        return (self.top_probability * is_top.to(torch.float64)
                + (1.0 - self.top_probability) * in_band.to(torch.float64) / band_slates)


def _observation_keys(observe_state: bool) -> tuple[str, ...]:
    return ("clicks", "true_state") if observe_state else ("clicks",)


class SyntheticMDPEnv(RecEnv):
    """One user of the synthetic recommendation MDP (IRecGAN sec. 7.1).

    ## Description

    The synthetic recommendation MDP of IRecGAN (Bai et al., NeurIPS 2019), section 7.1.
    The world has ``m`` hidden user states and ``n`` items, with random transitions
    ``P(s' | item, s)`` and rewards ``r(item | s) ~ U(0, 1)`` drawn from ``world_seed``.
    Each step the agent shows ``k`` items; the user picks one as the click candidate with
    probability proportional to its reward, then clicks it with probability equal to its
    reward. A click continues the session and moves the user to a new state; no click ends
    it.

    ## Action Space

    ``MultiDiscrete([n] * k)``: the slate, ``k`` item ids, best position first. A slate
    with repeated items shows each item once: the repeats are dropped (they can neither
    be clicked nor change the click probabilities).

    ## Observation Space

    | key | shape | dtype | range | meaning |
    |---|---|---|---|---|
    | clicks | (history_length,) | int64 | 0 .. n | last clicks, oldest first; n: none yet |
    | true_state | () | int64 | 0 .. m-1 | hidden state (with ``observe_state=True``) |

    With ``observe_state=False`` (default) the observation is the ``clicks`` array itself;
    otherwise a ``Dict`` of both.

    ## Rewards

    1 for a click (the Bernoulli success), 0 otherwise. The return of a session is its
    number of clicks.

    ## Starting State

    Every session starts in the special state s0 (state 0) with an empty click history.

    ## Episode End

    Terminated when the user does not click. Truncated after ``max_episode_steps`` (200 as
    registered).

    ## Arguments

    ```python
    import gymnasium as gym, recgym
    env = gym.make("SyntheticMDP-v0", num_states=10, num_items=50, slate_size=10,
                   history_length=10, observe_state=False, world_seed=0, device="cpu")
    ```

    The ground truth is ``env.unwrapped.simulator.world`` (``rewards``, ``transition``).

    ## Vectorized environment

    ``gym.make_vec("SyntheticMDP-v0", num_envs=4096, vectorization_mode="vector_entry_point")``
    steps all users in one torch call (:class:`SyntheticMDPVectorEnv`); add ``compile=True``
    to fuse each step with ``torch.compile`` (same trajectories, about twice as fast at
    thousands of users, after ~10-20 s of compilation).

    ## Version History

    * v0: initial version.
    """

    def __init__(self, num_states: int = 10, num_items: int = 50, slate_size: int = 10, *,
                 history_length: int = 10, observe_state: bool = False, world_seed: int = 0,
                 device: torch.device | str = "cpu", render_mode: str | None = None) -> None:
        simulator = SyntheticMDP(num_states, num_items, slate_size,
                                 history_length=history_length, world_seed=world_seed,
                                 device=device)
        super().__init__(simulator, observation_keys=_observation_keys(observe_state),
                         device=device, render_mode=render_mode)


class SyntheticMDPVectorEnv(RecVectorEnv):
    """``num_envs`` users of :class:`SyntheticMDPEnv` stepped together (same arguments)."""

    def __init__(self, num_envs: int = 1, num_states: int = 10, num_items: int = 50,
                 slate_size: int = 10, *, history_length: int = 10, observe_state: bool = False,
                 world_seed: int = 0, max_episode_steps: int | None = 200,
                 device: torch.device | str = "cpu", compile: bool = False,
                 render_mode: str | None = None) -> None:
        simulator = SyntheticMDP(num_states, num_items, slate_size,
                                 history_length=history_length, world_seed=world_seed,
                                 device=device)
        super().__init__(simulator, num_envs, observation_keys=_observation_keys(observe_state),
                         max_episode_steps=max_episode_steps, device=device,
                         compile=compile, render_mode=render_mode)


LOGGING_POLICIES = ("random", "max", "mix")


def logging_policy(name: str, simulator: SyntheticMDP, *, seed: int = 0):
    """The logging policies of sec. 7.1 by name: ``random``, ``max`` (the oracle) or ``mix``.

    They read the true state (observation key ``true_state``): they are the ground-truth
    policies that generate offline logs, not agents.
    """
    if name == "random":
        return RandomPolicy(simulator.num_items, simulator.slate_size, seed=seed,
                            device=simulator.device)
    if name == "max":
        return MaxRewardPolicy(simulator.world, simulator.slate_size)
    if name == "mix":
        return MixRewardPolicy(simulator.world, simulator.slate_size, seed=seed,
                               device=simulator.device)
    raise ValueError(f"unknown logging policy {name!r}; choose one of {LOGGING_POLICIES}")
