"""The Policy protocol: anything that maps a batch of observations to a batch of slates.

Observations are what a simulator's ``observe`` returns: a dict of tensors with leading
batch dimension. Our agents implement :class:`Policy` directly; stable-baselines3 models
satisfy it through :class:`SB3Policy` (``SB3Policy.from_model(model)`` reads the slate
size and observation keys from the model; its ``observation_spaces`` tell off-policy
evaluation which observation to rebuild from a log).

Off-policy estimators also ask how likely a policy was to show a logged slate. A policy
answers by what it declares, never by its type: ``deterministic = True`` (``act`` is a
function of the observation), ``slate_probabilities(observation, slates)`` returning
:class:`SlateProbabilities` (whole slate, positions, prefixes, inclusion), or at least
``slate_probability(observation, slate)`` for whole slates; ``uniform_over_items = n``
declares the uniform random policy, which the pseudo-inverse estimator can use in closed
form.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from recgym.core.env import to_numpy_observation


@runtime_checkable
class Policy(Protocol):
    """Recommends one slate of ``slate_size`` distinct item ids per user."""

    slate_size: int

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Slates for a batch of users, int64 ``(B, slate_size)``."""
        ...


class TargetProbabilityError(ValueError):
    """A policy cannot give the probability of a logged slate (or of its positions)."""


@dataclass
class SlateProbabilities:
    """A policy's probabilities of ``n`` logged slates (numpy, for off-policy estimators).

    Attributes:
        slate: float64 ``(n,)``, probability of the whole ordered slate.
        position: float64 ``(n, k)``, marginal probability that the logged item at
            position ``j`` is shown at position ``j``; None if the policy cannot say.
        prefix: float64 ``(n, k)``, probability of the logged top-``(j+1)`` prefix;
            None if the policy cannot say.
        inclusion: float64 ``(n, k)``, probability that the logged item at position ``j``
            is anywhere in the policy's slate (expected count for policies that may repeat
            items); None if the policy cannot say.
        why_not: why ``position`` / ``prefix`` are missing (empty when present).
    """

    slate: np.ndarray
    position: np.ndarray | None = None
    prefix: np.ndarray | None = None
    inclusion: np.ndarray | None = None
    why_not: str = ""


def distinct_prefix(slates: np.ndarray) -> np.ndarray:
    """Bool ``(n, k)``: items ``0..j`` of each slate are pairwise distinct."""
    k = slates.shape[1]
    repeated = np.zeros(slates.shape, bool)
    for j in range(1, k):
        repeated[:, j] = (slates[:, :j] == slates[:, j:j + 1]).any(1)
    return np.cumsum(repeated, axis=1) == 0


def falling_factorials(n: int, k: int) -> np.ndarray:
    """``[n, n(n-1), ..., n(n-1)...(n-k+1)]`` as float64: ordered prefixes of distinct items."""
    return np.cumprod(np.arange(n, n - k, -1, dtype=np.float64))


def distinct(slate: Tensor) -> Tensor:
    """Bool ``(B,)``: the slate has no repeated item."""
    ordered, _ = slate.sort(dim=1)
    return (ordered[:, 1:] != ordered[:, :-1]).all(dim=1)


def repeated_positions(slate: Tensor) -> Tensor:
    """Bool ``(B, k)``: the item at this position already appears earlier in the slate.

    Envs show a repeated item once: its later positions are masked out.
    """
    return (slate[:, :, None] == slate[:, None, :]).tril_(-1).any(-1)


def sample_without_replacement(scores: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct positions per row, uniformly among those where ``scores`` is finite.

    Ranking i.i.d. uniform keys and keeping the top ``k`` draws an ordered ``k``-subset
    uniformly; infinite scores (``-inf``) exclude a position.
    """
    keys = torch.rand(scores.shape, generator=generator, device=scores.device)
    keys = keys.masked_fill(~torch.isfinite(scores), -1.0)
    return keys.topk(k, dim=1).indices


class RandomPolicy:
    """Uniformly random slates of ``slate_size`` distinct items out of ``num_items``.

    The probability of any ordered slate of distinct items is ``1 / (n (n-1) ... (n-k+1))``.
    """

    def __init__(self, num_items: int, slate_size: int, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if not 1 <= slate_size <= num_items:
            raise ValueError(f"need 1 <= slate_size <= num_items, got {slate_size}, {num_items}")
        self.num_items = num_items
        self.uniform_over_items = num_items
        self.slate_size = slate_size
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Random slates, one per user in the batch."""
        batch = next(iter(observation.values())).shape[0]
        scores = torch.zeros(batch, self.num_items, device=self.device)
        return sample_without_replacement(scores, self.slate_size, self.generator)

    def slate_probability(self, observation: dict[str, Tensor], slate: Tensor) -> Tensor:
        """Probability of each logged ordered slate, float64 ``(B,)``."""
        ordered_subsets = math.perm(self.num_items, self.slate_size)
        return distinct(slate).to(torch.float64) / float(ordered_subsets)

    def slate_probabilities(self, observation: dict[str, np.ndarray], slates: np.ndarray
                            ) -> SlateProbabilities:
        """Closed forms: ``1 / n(n-1)...`` per distinct prefix, ``1 / n`` per position."""
        k = slates.shape[1]
        prefix = distinct_prefix(slates) / falling_factorials(self.num_items, k)[None, :]
        position = np.full(slates.shape, 1.0 / self.num_items)
        return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                                  inclusion=position * k)


MAX_LOGITS_PER_CALL = 1 << 22
"""An SB3 model is asked about at most this many (user, action output) cells at once."""


def _per_position(distribution: Any) -> list:
    """SB3's categorical distributions as one per slate position (``Discrete``: one)."""
    return list(distribution) if isinstance(distribution, (list, tuple)) else [distribution]


class SB3Policy:
    """A stable-baselines3 model (or anything with ``predict``) as a recgym Policy.

    Args:
        model: has ``predict(observation, deterministic) -> (action, state)`` and an
            ``action_space``; a ``Box`` action space is read as item scores and the
            top ``slate_size`` items form the slate.
        observation_keys: the observation keys the model was trained on, in order.
        slate_size: items per slate.
        deterministic: act greedily (True) or sample from the model's distribution.
    """

    def __init__(self, model: Any, observation_keys: Sequence[str], slate_size: int,
                 deterministic: bool = True) -> None:
        self.model = model
        self.observation_keys = tuple(observation_keys)
        self.slate_size = slate_size
        self.deterministic = deterministic

    @classmethod
    def from_model(cls, model: Any, *, slate_size: int | None = None,
                   observation_keys: Sequence[str] | None = None,
                   deterministic: bool = True) -> SB3Policy:
        """Wrap a trained (or loaded) stable-baselines3 model, reading what it needs from it.

        Args:
            model: e.g. ``PPO.load(path)`` or a model after ``learn``.
            slate_size: items per slate; default: 1 for a ``Discrete`` action space, the
                number of positions of a ``MultiDiscrete`` one (required for ``Box`` scores).
            observation_keys: the env keys the model reads; default: the keys of a ``Dict``
                observation space, else ``("clicks",)`` (the bare observation of
                SyntheticMDP-v0 and IRecGAN-v0).
            deterministic: act greedily (True) or sample.
        """
        import gymnasium as gym

        space = model.observation_space
        if observation_keys is None:
            observation_keys = tuple(space.spaces) if isinstance(space, gym.spaces.Dict) \
                else ("clicks",)
        if slate_size is None:
            action = model.action_space
            if isinstance(action, gym.spaces.Discrete):
                slate_size = 1
            elif isinstance(action, gym.spaces.MultiDiscrete):
                slate_size = int(np.prod(action.nvec.shape))
            else:
                raise ValueError(f"a model over a {type(action).__name__} action space needs "
                                 "slate_size (items per slate)")
        return cls(model, observation_keys, slate_size, deterministic=deterministic)

    @property
    def observation_spaces(self) -> dict[str, Any]:
        """Single-user space of each observation key the model reads (from the model)."""
        import gymnasium as gym

        space = self.model.observation_space
        if isinstance(space, gym.spaces.Dict):
            return {key: space[key] for key in self.observation_keys}
        if len(self.observation_keys) != 1:
            raise ValueError(f"the model observes one array, not the keys "
                             f"{list(self.observation_keys)}")
        return {self.observation_keys[0]: space}

    @property
    def num_items(self) -> int | None:
        """Catalogue size of a ``Discrete`` / ``MultiDiscrete`` action space (else None)."""
        import gymnasium as gym

        action = self.model.action_space
        if isinstance(action, gym.spaces.Discrete):
            return int(action.n)
        if isinstance(action, gym.spaces.MultiDiscrete):
            return int(action.nvec.max())
        return None

    def _rows_per_call(self) -> int:
        """Users per ``predict`` call, keeping the model's logits near 4M numbers."""
        outputs = max(int(np.sum(getattr(self.model.action_space, "nvec", 0))),
                      int(getattr(self.model.action_space, "n", 0) or 0),
                      int(np.prod(getattr(self.model.action_space, "shape", None) or (1,))))
        return max(1, MAX_LOGITS_PER_CALL // max(outputs, 1))

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Ask the model for a slate for every user in the batch."""
        device = next(iter(observation.values())).device
        batch = len(next(iter(observation.values())))
        rows = self._rows_per_call()
        if batch > rows:
            return torch.cat([self.act({key: value[start:start + rows]
                                        for key, value in observation.items()})
                              for start in range(0, batch, rows)])
        numpy_obs = to_numpy_observation(observation, self.observation_keys)
        action, _ = self.model.predict(numpy_obs, deterministic=self.deterministic)
        action = torch.as_tensor(np.asarray(action), device=device)
        if action.dtype.is_floating_point:
            from recgym.core.wrappers import scores_to_slate

            return scores_to_slate(action, self.slate_size)
        return action.to(torch.int64).reshape(-1, self.slate_size)

    def slate_probabilities(self, observation: dict[str, np.ndarray], slates: np.ndarray, *,
                            chunk_rows: int = 65_536) -> SlateProbabilities:
        """Per-position sampling probabilities of a ``(Multi)Discrete`` model (numpy, in chunks).

        SB3 samples each position independently, so the slate's probability is the product
        of the positions' and the inclusion of a logged item sums its probability over all
        positions. A model with recgym's ``SlateDistribution`` (``policy_kwargs`` of
        ``recgym.integrations.sb3`` on slate ids) draws a ranking instead: its slate and
        prefix probabilities are Plackett-Luce products of each slot's conditional
        probability; per-position and inclusion marginals are not given (``why_not``).
        Raises :class:`TargetProbabilityError` over a ``Box`` action space.
        """
        self._require_categorical()
        chunks = self._chunks(observation, slates, min(chunk_rows, self._rows_per_call()))
        if self._ranks_slates():
            return self._ranking_probabilities(chunks, slates.shape)
        position_parts, inclusion_parts = [], []
        with torch.no_grad():
            for numpy_obs, slate in chunks:
                obs_tensor, _ = self.model.policy.obs_to_tensor(numpy_obs)
                distribution = _per_position(
                    self.model.policy.get_distribution(obs_tensor).distribution)
                every = torch.stack([d.probs.cpu().gather(1, slate) for d in distribution],
                                    1).double()  # (B, position of the model, logged position)
                position_parts.append(torch.diagonal(every, dim1=1, dim2=2).numpy())
                inclusion_parts.append(every.sum(1).numpy())
        position = np.concatenate(position_parts) if position_parts else np.zeros(slates.shape)
        inclusion = np.concatenate(inclusion_parts) if inclusion_parts else np.zeros(slates.shape)
        prefix = np.cumprod(position, axis=1)
        return SlateProbabilities(slate=prefix[:, -1].copy(), position=position, prefix=prefix,
                                  inclusion=inclusion)

    def _ranks_slates(self) -> bool:
        """The model draws one ranking (recgym's ``SlateDistribution``), not independent slots."""
        return bool(getattr(self.model.policy, "slate", False))

    def _step_probabilities(self, numpy_obs: Any, slates: Tensor) -> Tensor:
        """``(B, k)`` float64: each logged slot's probability given the logged slots before it."""
        obs_tensor, _ = self.model.policy.obs_to_tensor(numpy_obs)
        distribution = self.model.policy.get_distribution(obs_tensor)
        columns = slates.to(distribution.scores.device).reshape(len(slates), -1)
        return distribution.step_log_probs(columns).exp().double().cpu()

    def _chunks(self, observation: dict[str, np.ndarray], slates: np.ndarray, chunk_rows: int
                ) -> Iterator[tuple[Any, Tensor]]:
        """The model's observation and the logged slates, ``chunk_rows`` rows at a time."""
        for start in range(0, len(slates), chunk_rows):
            rows = slice(start, min(start + chunk_rows, len(slates)))
            chunk = {key: torch.from_numpy(np.ascontiguousarray(value[rows]))
                     for key, value in observation.items()}
            yield (to_numpy_observation(chunk, self.observation_keys),
                   torch.from_numpy(np.ascontiguousarray(slates[rows])))

    def _ranking_probabilities(self, chunks: Iterator[tuple[Any, Tensor]],
                               shape: tuple[int, ...]) -> SlateProbabilities:
        """Slate and prefix probabilities of a ranking model (no per-position marginals)."""
        with torch.no_grad():
            steps = [self._step_probabilities(numpy_obs, slate).numpy()
                     for numpy_obs, slate in chunks]
        prefix = np.cumprod(np.concatenate(steps), axis=1) if steps else np.zeros(shape)
        return SlateProbabilities(
            slate=prefix[:, -1].copy(), prefix=prefix,
            why_not="the model ranks items (Plackett-Luce, recgym's SlateDistribution): the "
                    "probability that an item is at position j, or anywhere in the slate, "
                    "sums over every ranking before it and has no closed form")

    def _require_categorical(self) -> None:
        import gymnasium as gym

        space = self.model.action_space
        if not isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.Discrete)):
            raise TargetProbabilityError(
                f"SB3Policy(deterministic=False) over a {type(space).__name__} action space "
                "samples Gaussian scores and takes their top-k: its slate probabilities have "
                "no closed form. Use deterministic=True, or estimators that need only act() "
                "(dm, sim)")

    def slate_probability(self, observation: dict[str, Tensor], slate: Tensor) -> Tensor:
        """Probability that :meth:`act` shows each given slate, float64 ``(B,)``.

        * ``deterministic=True``: 1 where ``act`` returns exactly ``slate``, else 0 (for
          any action space: greedy ``MultiDiscrete`` choices and top-k of ``Box`` scores
          are both deterministic functions of the observation).
        * ``deterministic=False`` with a ``MultiDiscrete`` action space: SB3 samples each
          position independently, so the probability of an ordered slate is the product
          over positions of ``model.policy.get_distribution(obs)`` probabilities (for a
          ranking model, of each slot's probability given the slots before it).

        Raises:
            TargetProbabilityError: a sampling policy over ``Box`` scores (a Gaussian pushed
                through top-k has no closed-form slate probability); use
                ``deterministic=True`` or estimators that only need ``act`` (DM, sim).
        """
        slate = slate.to(torch.int64)
        if self.deterministic:
            return (self.act(observation).to(slate.device) == slate).all(1).to(torch.float64)
        self._require_categorical()
        numpy_obs = to_numpy_observation(observation, self.observation_keys)
        if self._ranks_slates():
            with torch.no_grad():
                return self._step_probabilities(numpy_obs, slate).prod(1).to(slate.device)
        with torch.no_grad():
            obs_tensor, _ = self.model.policy.obs_to_tensor(numpy_obs)
            distribution = _per_position(
                self.model.policy.get_distribution(obs_tensor).distribution)
            columns = slate.to(obs_tensor.device if isinstance(obs_tensor, Tensor)
                               else "cpu").reshape(len(slate), -1)
            per_position = torch.stack(
                [d.probs.gather(1, columns[:, j:j + 1]).squeeze(1).double()
                 for j, d in enumerate(distribution)], dim=1)
        return per_position.prod(1).to(slate.device)
