"""Policies and simulators by name, as the ``recgym`` commands take them.

A policy is ``random``, ``max`` / ``mix`` (the logging policies of IRecGAN sec. 7.1,
which read the ground truth of a synthetic world) or the path of a saved
stable-baselines3 model; a simulator is the user model behind a registered env id.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

REFERENCE_POLICIES = ("random", "max", "mix")


def parse_env_args(pairs: list[str]) -> dict[str, Any]:
    """``["num_items=100", "device='cpu'"]`` to constructor keyword arguments."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--env-arg expects KEY=VALUE (e.g. num_items=100), got {pair!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def simulator_for_env(env_id: str, kwargs: dict[str, Any]):
    """The simulator behind a registered env id, and the observation keys its env exposes."""
    import gymnasium as gym

    import recgym

    if env_id not in recgym.ENV_DESCRIPTIONS:
        raise SystemExit(f"unknown env {env_id!r}; `recgym list` shows the registered ones")
    vec_env = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    unwrapped = vec_env.unwrapped
    return unwrapped.simulator, tuple(unwrapped.observation_keys)


def make_policy(spec: str, *, num_items: int, slate_size: int, simulator=None,
                observation_keys: tuple[str, ...] = ("clicks",), algo: str = "ppo",
                seed: int = 0, stochastic: bool = False):
    """A reference policy by name, or a saved stable-baselines3 model by path.

    Args:
        spec: ``random``, ``max``, ``mix`` or a model file.
        num_items: catalogue size.
        slate_size: items per slate.
        simulator: the synthetic world ``max`` / ``mix`` read their truth from.
        observation_keys: what a saved model was trained to see.
        algo: the stable-baselines3 algorithm of a saved model (``ppo``, ``a2c``, ...).
        seed: seed of stochastic reference policies.
        stochastic: sample from a saved model's distribution instead of acting greedily.
    """
    from recgym.core import RandomPolicy

    if spec == "random":
        return RandomPolicy(num_items, slate_size, seed=seed)
    if spec in REFERENCE_POLICIES:
        if simulator is None or not hasattr(simulator, "world"):
            raise SystemExit(f"policy {spec!r} reads the ground truth of a synthetic world; "
                             "use it with SyntheticMDP-v0 (and the --env-arg of the logs)")
        from recgym.simulators.synthetic_mdp import logging_policy

        return logging_policy(spec, simulator, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise SystemExit(f"policy {spec!r} is neither one of {REFERENCE_POLICIES} nor a file")
    try:
        import stable_baselines3
    except ImportError as error:
        raise SystemExit("loading a model needs stable-baselines3: pip install recgym[sb3]") \
            from error
    from recgym.core import SB3Policy

    model = getattr(stable_baselines3, algo.upper()).load(path, device="cpu")
    return SB3Policy(model, observation_keys, slate_size, deterministic=not stochastic)
