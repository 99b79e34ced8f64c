"""Act with item scores instead of slates: the top-k wrapper for continuous-action agents.

Algorithms such as SAC, TD3 or DDPG output a ``Box`` vector. :class:`TopKSlate` gives the
agent a ``Box(-1, 1, (n_candidates,))`` action space and shows the user the ``k``
highest-scoring candidates, best first (ties go to the lower id).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorActionWrapper, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor


def scores_to_slate(scores: Tensor | np.ndarray, k: int) -> Tensor:
    """Top-``k`` candidate ids per row of ``scores``, int64 ``(B, k)``.

    Raises:
        ValueError: a score is NaN, or there are fewer than ``k`` candidates.
    """
    scores = torch.as_tensor(np.asarray(scores) if not isinstance(scores, Tensor) else scores)
    if scores.dim() == 1:
        scores = scores[None]
    if not scores.dtype.is_floating_point:
        raise TypeError(f"scores must be floating point, got dtype {scores.dtype}")
    if scores.shape[-1] < k:
        raise ValueError(f"need at least {k} candidate scores, got {scores.shape[-1]}")
    if bool(torch.isnan(scores).any()):
        rows = torch.isnan(scores).any(dim=-1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"scores contain NaN (rows {rows}); every candidate needs a real score")
    return torch.topk(scores, k, dim=-1, sorted=True).indices


def _slate_shape(space: gym.Space, wrapper: str) -> tuple[int, int]:
    """``(n_candidates, k)`` of a slate space; ``k = 0`` marks a ``Discrete`` single item."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.flat[0]), int(space.nvec.shape[0])
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), 0
    raise TypeError(f"{wrapper} wraps a MultiDiscrete slate or Discrete item space, got {space}")


def _check_scores(scores, shape: tuple[int, ...], wrapper: str) -> None:
    """Refuse scores whose shape is not the action space's (one score per candidate)."""
    given = tuple(np.shape(scores))
    if given != shape:
        raise ValueError(f"{wrapper} needs one score per candidate, an array of shape {shape}, "
                         f"got shape {given}")


def _score_space(n_candidates: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, shape=(n_candidates,), dtype=np.float32)


class TopKSlate(gym.ActionWrapper):
    """Turn a ``Box`` of candidate scores into the top-k slate (or top item) of a recgym env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        n_candidates, self._slate_size = _slate_shape(env.action_space, "TopKSlate")
        self.slate_size = max(self._slate_size, 1)
        self.action_space = _score_space(n_candidates)

    def action(self, action):
        """Scores ``(n_candidates,)`` to a slate ``(k,)``, or to one item id."""
        _check_scores(action, self.action_space.shape, "TopKSlate")
        slate = scores_to_slate(action, self.slate_size)[0].numpy()
        return slate if self._slate_size else int(slate[0])


class TopKSlateVector(VectorActionWrapper):
    """:class:`TopKSlate` for a vector env: scores ``(N, n_candidates)`` to slates ``(N, k)``."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        n_candidates, self._slate_size = _slate_shape(env.single_action_space, "TopKSlateVector")
        self.slate_size = max(self._slate_size, 1)
        self.single_action_space = _score_space(n_candidates)
        self.action_space = batch_space(self.single_action_space, env.num_envs)

    def actions(self, actions) -> np.ndarray:
        """Scores to slates ``(N, k)`` (or item ids ``(N,)``) for every user."""
        _check_scores(actions, self.action_space.shape, "TopKSlateVector")
        slates = scores_to_slate(actions, self.slate_size).numpy()
        return slates if self._slate_size else slates[:, 0]

