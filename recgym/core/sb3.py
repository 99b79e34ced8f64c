"""The batched simulation path as a stable-baselines3 ``VecEnv``.

SB3 expects same-step autoreset: when a user's session ends, ``step_wait`` already
returns the first observation of the next session and puts the last one of the old
session in ``infos[i]["terminal_observation"]``. This adapter drives the same
:class:`~recgym.core.batch.SimulationBatch` as :class:`~recgym.core.env.RecVectorEnv`,
so SB3 steps thousands of users per call instead of looping over Python envs.

Requires ``stable-baselines3`` (``pip install recgym[sb3]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from recgym.core.batch import as_slate_tensor
from recgym.core.env import RecVectorEnv, num_candidates
from recgym.core.threads import own_threads
from recgym.core.wrappers import scores_to_slate


class SB3VecEnv(VecEnv):
    """Wrap a :class:`RecVectorEnv` for stable-baselines3.

    Args:
        vec_env: a recgym vector env (e.g. from ``gym.make_vec(..., vectorization_mode=
            "vector_entry_point")``).
        scores: expose a ``Box`` of candidate scores (top-k slates) instead of slates,
            for continuous-action algorithms.
    """

    def __init__(self, vec_env: RecVectorEnv, *, scores: bool = False) -> None:
        vec_env = vec_env.unwrapped
        if not isinstance(vec_env, RecVectorEnv):
            raise TypeError(f"SB3VecEnv wraps a recgym RecVectorEnv, got {type(vec_env).__name__}")
        self.rec_env = vec_env
        self.batch = vec_env.batch
        self.scores = scores
        action_space = vec_env.single_action_space
        if scores:
            action_space = gym.spaces.Box(-1.0, 1.0, (num_candidates(vec_env.simulator),),
                                          np.float32)
        super().__init__(vec_env.num_envs, vec_env.single_observation_space, action_space)
        self._actions = None
        self._seed: int | None = None

    @property
    def num_threads(self) -> int:
        """Torch intra-op threads of each step (the agent's own are restored after)."""
        return self.batch.num_threads

    @own_threads
    def reset(self):
        """Start a session for every user; seeds from ``seed()`` apply here."""
        seed, self._seed = self._seed, None
        observation, _ = self.rec_env.reset(seed=seed)
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the slates (or scores) for ``step_wait``."""
        self._actions = actions

    @own_threads
    def step_wait(self):
        """Step every user; ended sessions restart at once (SB3 convention)."""
        simulator = self.rec_env.simulator
        if self.scores:
            slate = scores_to_slate(self._actions, simulator.slate_size).to(self.batch.device)
        else:
            slate = as_slate_tensor(self._actions, simulator.slate_size,
                                    num_candidates(simulator), self.batch.device,
                                    batch_size=self.num_envs,
                                    single_item=self.rec_env.single_item)
        reward, _, terminated, truncated, _ = self.batch.step(slate)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if bool(done.any()):
            keys = self.rec_env.observation_keys
            finished = done.nonzero().flatten().tolist()
            final = self.batch.observe_numpy(keys)
            truncated_np = (truncated & ~terminated).cpu().numpy()
            for i in finished:
                last = final[i] if len(keys) == 1 else {k: v[i] for k, v in final.items()}
                infos[i]["terminal_observation"] = last
                infos[i]["TimeLimit.truncated"] = bool(truncated_np[i])
            self.batch.reset(done)
        return (self.rec_env.observe(), reward.cpu().numpy(), done.cpu().numpy(), infos)

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """Seed user ``i`` with ``seed + i`` at the next ``reset``."""
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """The attribute of the (shared) underlying env, once per selected user."""
        value = getattr(self.rec_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        """Set an attribute on the underlying env (shared by every user)."""
        setattr(self.rec_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        """Call a method of the underlying env once, returning its result per user."""
        result = getattr(self.rec_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        """The batched env is never wrapped per user."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self):
        """Rendering is not supported."""
        return [None for _ in range(self.num_envs)]


def make_sb3_vec_env(env_id: str, num_envs: int, *, seed: int | None = None,
                     scores: bool = False, device: torch.device | str = "cpu",
                     **kwargs) -> SB3VecEnv:
    """``gym.make_vec`` on the batched path, wrapped for stable-baselines3."""
    vec_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                           device=device, **kwargs)
    adapter = SB3VecEnv(vec_env, scores=scores)
    adapter.seed(seed)
    return adapter
