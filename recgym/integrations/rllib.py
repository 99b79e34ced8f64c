"""Recgym envs inside RLlib (Ray): every id registered by name, batched users in each runner.

RLlib's new API stack builds each env runner's env with ``gym.make_vec``. With
``gym_env_vectorize_mode="vector_entry_point"`` it calls the registered creator with
``{"num_envs": n, ...}``; the creator here then returns recgym's own
:class:`~recgym.core.env.RecVectorEnv`, so one runner steps its ``n`` users in one torch call
(not ``n`` Python envs). Recgym vector envs use Gymnasium's next-step autoreset, which
RLlib's :class:`SingleAgentEnvRunner` supports.

Two adaptations are made for RLlib's default models, which need flat ``Box`` observations:

* observations are encoded as one float32 vector (see :func:`observation_encoder`):
  ``one_hot`` for small id spaces (what SB3 does for ``MultiDiscrete``), ``ids`` (ids
  scaled to [0, 1]) when the one-hot would exceed ``ONE_HOT_LIMIT`` values (RecSimu's
  20 x 9,742 item ids), ``native`` to keep the recgym space for
  :class:`~recgym.integrations.rllib_module.ItemEmbeddingRLModule` (item ids embedded,
  :func:`~recgym.integrations.rllib_module.rl_module_spec`) or another custom RLModule;
* RLlib seeds runner ``w`` with ``seed + w``, and a recgym vector env gives user ``i`` the
  seed ``s + i``; reset seeds are multiplied by ``num_envs`` so runners draw disjoint
  blocks of user seeds (runner ``w``, user ``i``: ``(seed + w) * num_envs + i``).

Requires Ray with RLlib (``pip install "recgym[ray]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorObservationWrapper

from recgym.core.env import to_numpy_observation
from recgym.registration import ENV_DESCRIPTIONS

ENCODINGS = ("auto", "one_hot", "ids", "native")
ONE_HOT_LIMIT = 4096
_SEED_MODULUS = 2**62


def _leaves(space: gym.Space) -> list[tuple[str | None, gym.Space]]:
    if isinstance(space, gym.spaces.Dict):
        return [(key, sub) for key, sub in space.spaces.items()]
    return [(None, space)]


def _sizes(space: gym.Space) -> np.ndarray | None:
    """Number of values of each id slot of a Discrete / MultiDiscrete space (None: a Box)."""
    if isinstance(space, gym.spaces.Discrete):
        return np.array([space.n], dtype=np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return np.asarray(space.nvec, dtype=np.int64).reshape(-1)
    if isinstance(space, gym.spaces.Box):
        return None
    raise TypeError(f"cannot encode a {type(space).__name__} observation for RLlib; use "
                    "observation_encoding='native' with an RLModule that reads it")


def observation_encoder(space: gym.Space, encoding: str = "auto"
                        ) -> tuple[gym.spaces.Box, Callable[[Any], np.ndarray]]:
    """A flat float32 ``Box`` and a batched function mapping observations of ``space`` into it.

    Args:
        space: a recgym single-user observation space (Box, Discrete, MultiDiscrete or a
            Dict of them).
        encoding: ``one_hot`` (each id slot one-hot), ``ids`` (id / (n - 1), one value per
            slot) or ``auto`` (one_hot when the total width is at most ``ONE_HOT_LIMIT``).

    The function takes a batch (arrays with a leading user axis, or a dict of them) and
    returns a ``(B, width)`` float32 array.
    """
    if encoding not in ENCODINGS[:3]:
        raise ValueError(f"observation encoding must be one of {ENCODINGS[:3]}, got {encoding!r}")
    leaves = _leaves(space)
    if encoding == "auto":
        width = sum(int(sizes.sum()) if (sizes := _sizes(sub)) is not None
                    else int(np.prod(sub.shape)) for _, sub in leaves)
        encoding = "one_hot" if width <= ONE_HOT_LIMIT else "ids"
    parts: list[tuple[str | None, np.ndarray | None, int]] = []
    lows, highs = [], []
    for key, sub in leaves:
        sizes = _sizes(sub)
        if sizes is None:
            width = int(np.prod(sub.shape))
            lows.append(np.broadcast_to(sub.low, sub.shape).reshape(-1))
            highs.append(np.broadcast_to(sub.high, sub.shape).reshape(-1))
        else:
            width = int(sizes.sum()) if encoding == "one_hot" else len(sizes)
            lows.append(np.zeros(width, np.float32))
            highs.append(np.ones(width, np.float32))
        parts.append((key, sizes, width))
    box = gym.spaces.Box(np.concatenate(lows).astype(np.float32),
                         np.concatenate(highs).astype(np.float32), dtype=np.float32)
    one_hot = encoding == "one_hot"
    offsets = [np.concatenate([[0], np.cumsum(s)[:-1]]) if s is not None else None
               for _, s, _ in parts]

    def encode(observation: Any) -> np.ndarray:
        columns = []
        for (key, sizes, width), offset in zip(parts, offsets, strict=True):
            value = np.asarray(observation[key] if key is not None else observation)
            batch = value.shape[0]
            value = value.reshape(batch, -1)
            if sizes is None:
                columns.append(value.astype(np.float32))
            elif one_hot:
                block = np.zeros((batch, width), np.float32)
                block[np.arange(batch)[:, None], value + offset] = 1.0
                columns.append(block)
            else:
                columns.append(value / np.maximum(sizes - 1, 1).astype(np.float32))
        return np.concatenate(columns, axis=1, dtype=np.float32)

    return box, encode


class RLlibVectorEnv(VectorObservationWrapper):
    """A recgym vector env as RLlib's env runners want it: encoded observations, strided seeds.

    Args:
        env: a recgym vector env (from ``gym.make_vec(id, vectorization_mode=
            "vector_entry_point")``).
        encoding: observation encoding (see :func:`observation_encoder`), or ``native``:
            the recgym observations as they are (only the seeds are strided).
    """

    def __init__(self, env: VectorEnv, encoding: str = "auto") -> None:
        super().__init__(env)
        if encoding == "native":
            self._encode = None
            return
        self.single_observation_space, self._encode = observation_encoder(
            env.single_observation_space, encoding)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              env.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every user; an int ``seed`` is spread over a block of ``num_envs`` seeds."""
        if isinstance(seed, int | np.integer):
            seed = int(seed) * self.num_envs % _SEED_MODULUS
        return super().reset(seed=seed, options=options)

    def observations(self, observations: Any) -> Any:
        """Encode a batch of recgym observations (``(num_envs, width)`` float32; native: as is)."""
        return observations if self._encode is None else self._encode(observations)


class RLlibEnv(gym.ObservationWrapper):
    """One recgym user with the same flat observation as :class:`RLlibVectorEnv`."""

    def __init__(self, env: gym.Env, encoding: str = "auto") -> None:
        super().__init__(env)
        self.observation_space, self._encode = observation_encoder(env.observation_space,
                                                                   encoding)

    def observation(self, observation: Any) -> np.ndarray:
        """Encode one observation (a batch of one, then unbatched)."""
        if isinstance(observation, dict):
            return self._encode({k: np.asarray(v)[None] for k, v in observation.items()})[0]
        return self._encode(np.asarray(observation)[None])[0]


def make_rllib_env(env_id: str, env_config: dict[str, Any] | None = None) -> gym.Env | VectorEnv:
    """Build a recgym env for RLlib from its ``env_config``.

    Args:
        env_id: a registered recgym id (see ``recgym.ENV_DESCRIPTIONS``).
        env_config: RLlib's env config (an ``EnvContext``). ``num_envs`` (set by RLlib in
            ``vector_entry_point`` mode) selects the batched path; ``observation_encoding``
            picks the encoding (default ``auto``; ``native`` for
            :class:`~recgym.integrations.rllib_module.ItemEmbeddingRLModule`); every other
            key is passed to the env's constructor (e.g. ``{"num_items": 100}``).
    """
    import recgym  # noqa: F401  (registers the ids with Gymnasium in this worker)

    if env_id not in ENV_DESCRIPTIONS:
        raise ValueError(f"unknown recgym env {env_id!r}; choose from {sorted(ENV_DESCRIPTIONS)}")
    kwargs = dict(env_config or {})
    num_envs = kwargs.pop("num_envs", None)
    encoding = kwargs.pop("observation_encoding", "auto")
    if encoding not in ENCODINGS:
        raise ValueError(f"observation_encoding must be one of {ENCODINGS}, got {encoding!r}")
    if num_envs is None:
        env = gym.make(env_id, **kwargs)
        return env if encoding == "native" else RLlibEnv(env, encoding)
    vector = gym.make_vec(env_id, num_envs=int(num_envs),
                          vectorization_mode="vector_entry_point", **kwargs)
    return RLlibVectorEnv(vector, encoding)


def register_rllib_envs(env_ids: Iterable[str] | None = None) -> list[str]:
    """Register recgym ids with Ray Tune's registry so RLlib configs can name them.

    After this, ``PPOConfig().environment("RecSimu-v0")`` works. Pair it with
    :func:`env_runner_options` to step many users per runner in one batched call.

    Args:
        env_ids: ids to register (default: every recgym id).

    Returns:
        The registered ids.
    """
    from ray.tune.registry import register_env

    ids = list(ENV_DESCRIPTIONS if env_ids is None else env_ids)
    unknown = sorted(set(ids) - set(ENV_DESCRIPTIONS))
    if unknown:
        raise ValueError(f"unknown recgym env(s) {unknown}; choose from {sorted(ENV_DESCRIPTIONS)}")
    for env_id in ids:
        register_env(env_id, lambda config, env_id=env_id: make_rllib_env(env_id, config))
    return ids


def env_runner_options(num_envs_per_env_runner: int = 256, **options: Any) -> dict[str, Any]:
    """Keyword arguments for ``AlgorithmConfig.env_runners`` that select the batched path.

    ``config.env_runners(**env_runner_options(1024, num_env_runners=4))`` gives every
    runner one recgym vector env of 1,024 users (``gym_env_vectorize_mode`` set to
    ``vector_entry_point``); other options pass through unchanged.
    """
    if num_envs_per_env_runner < 1:
        raise ValueError(f"num_envs_per_env_runner must be >= 1, got {num_envs_per_env_runner}")
    return {"num_envs_per_env_runner": num_envs_per_env_runner,
            "gym_env_vectorize_mode": "vector_entry_point", **options}


class RLlibPolicy:
    """An RLlib RLModule trained on a recgym env as a recgym ``Policy`` (greedy slates).

    Lets :func:`recgym.evaluation.evaluate_policy` and ``collect_logs`` run an RLlib policy
    with the same roll-outs as any other policy.

    Args:
        module: the trained module, e.g. ``algo.get_module()``; its ``forward_inference``
            must return ``action_dist_inputs`` (categorical logits per slate position, as
            RLlib's default modules and ``ItemEmbeddingRLModule`` do for ``Discrete`` and
            ``MultiDiscrete`` actions).
        env: the env it was trained on, as :func:`make_rllib_env` builds it with
            ``num_envs`` set and the same ``observation_encoding`` (gives the observation
            keys and encoding).
    """

    def __init__(self, module: Any, env: RLlibVectorEnv) -> None:
        self.module = module
        self.env = env
        rec_env = env.unwrapped
        self.observation_keys = rec_env.observation_keys
        space = rec_env.single_action_space
        sizes = [space.n] if isinstance(space, gym.spaces.Discrete) else list(space.nvec)
        self.sizes = [int(n) for n in sizes]
        self.slate_size = rec_env.simulator.slate_size

    def act(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """The most likely item at every slate position, int64 ``(B, slate_size)``."""
        device = next(iter(observation.values())).device
        encoded = self.env.observations(to_numpy_observation(observation,
                                                             self.observation_keys))
        encoded = {key: torch.from_numpy(value) for key, value in encoded.items()} \
            if isinstance(encoded, dict) else torch.from_numpy(encoded)
        with torch.no_grad():
            output = self.module.forward_inference({"obs": encoded})
        logits = output["action_dist_inputs"].split(self.sizes, dim=1)
        slate = torch.stack([part.argmax(dim=1) for part in logits], dim=1)
        return slate.to(device=device, dtype=torch.int64)
