"""Logging policies of IRecGAN sec. 7.1: random, max (the oracle), mix; they read the true state."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recgym.core.policy import (
    RandomPolicy,
    SlateProbabilities,
    TargetProbabilityError,
    distinct_prefix,
    falling_factorials,
    sample_without_replacement,
)
from recgym.simulators.synthetic_mdp.users import SyntheticMDP, SyntheticWorld


class MaxRewardPolicy:
    """pi_max of sec. 7.1 (also the oracle): the k items of highest true reward, best first."""

    deterministic = True  # act is a function of the observation (for off-policy estimators)

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
        numpy_observation = {key: value.cpu().numpy() for key, value in observation.items()}
        probabilities = self.slate_probabilities(numpy_observation, slate.cpu().numpy())
        return torch.from_numpy(probabilities.slate).to(slate.device)

    def slate_probabilities(self, observation: dict[str, np.ndarray], slates: np.ndarray
                            ) -> SlateProbabilities:
        """Closed forms over logged rows (numpy): whole slate, positions, prefixes, inclusion."""
        if "true_state" not in observation:
            raise TargetProbabilityError("MixRewardPolicy reads the true state: the log needs a "
                                         "true_state column")
        rewards = self.rewards.numpy()
        ranking = np.argsort(-rewards, axis=1, kind="stable")  # same ties as torch's stable sort
        rank = np.empty_like(ranking)
        rank[np.arange(len(ranking))[:, None], ranking] = np.arange(rewards.shape[1])[None, :]
        slate_rank = rank[observation["true_state"][:, None], slates]  # (rows, k)
        k = slates.shape[1]
        top = self.top_probability
        start, stop = self.band_ranks
        band = stop - start
        is_top_at = slate_rank == np.arange(k)[None, :]
        in_band = (slate_rank >= start) & (slate_rank < stop)
        top_prefix = np.cumprod(is_top_at, axis=1)
        band_prefix = np.cumprod(in_band, axis=1) * distinct_prefix(slates)
        prefix = top * top_prefix + (1 - top) * band_prefix / falling_factorials(band, k)[None, :]
        position = top * is_top_at + (1 - top) * in_band / band
        inclusion = top * (slate_rank < k) + (1 - top) * in_band * k / band
        return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                                  inclusion=inclusion)


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
