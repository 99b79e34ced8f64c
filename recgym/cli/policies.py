"""Policies and simulators by name, as the ``recgym`` commands take them.

A policy is ``random``, ``max`` / ``mix`` (the logging policies of IRecGAN sec. 7.1,
which read the ground truth of a synthetic world) or the path of a saved
stable-baselines3 model; a simulator is the user model behind a registered env id.
gymnasium, torch and stable-baselines3 are imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recgym.core import Policy, UserSimulator

REFERENCE_POLICIES = ("random", "max", "mix")
# stable-baselines3 algorithms whose saved models a policy may be (tests check they exist)
SB3_ALGORITHMS = ("a2c", "ddpg", "dqn", "ppo", "sac", "td3")


def simulator_for_env(env_id: str, kwargs: dict[str, Any]) -> tuple[UserSimulator,
                                                                   tuple[str, ...]]:
    """The simulator behind a registered env id, and the observation keys its env exposes.

    Raises:
        ValueError: ``env_id`` is not a recgym env.
    """
    import gymnasium as gym

    import recgym

    if env_id not in recgym.ENV_DESCRIPTIONS:
        raise ValueError(f"unknown env {env_id!r}; `recgym list` shows the registered ones")
    vec_env = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    unwrapped = vec_env.unwrapped
    return unwrapped.simulator, tuple(unwrapped.observation_keys)


def make_policy(spec: str, *, num_items: int, slate_size: int,
                simulator: UserSimulator | None = None,
                observation_keys: tuple[str, ...] = ("clicks",), algo: str = "ppo",
                seed: int = 0, stochastic: bool = False) -> Policy:
    """A reference policy by name, or a saved stable-baselines3 model by path.

    Args:
        spec: ``random``, ``max``, ``mix`` or a model file.
        num_items: catalogue size.
        slate_size: items per slate.
        simulator: the synthetic world ``max`` / ``mix`` read their truth from.
        observation_keys: what a saved model was trained to see.
        algo: the stable-baselines3 algorithm of a saved model (one of `SB3_ALGORITHMS`).
        seed: seed of stochastic reference policies.
        stochastic: sample from a saved model's distribution instead of acting greedily.

    Raises:
        ValueError: ``max`` / ``mix`` without a synthetic world.
        FileNotFoundError: ``spec`` is neither a reference policy nor a file.
        ModuleNotFoundError: a model file, but stable-baselines3 is not installed.
    """
    from recgym.core import RandomPolicy

    if spec == "random":
        return RandomPolicy(num_items, slate_size, seed=seed)
    if spec in REFERENCE_POLICIES:
        if simulator is None or not hasattr(simulator, "world"):
            raise ValueError(f"policy {spec!r} reads the ground truth of a synthetic world; "
                             "use it with SyntheticMDP-v0 (and the --env-arg of the logs)")
        from recgym.simulators.synthetic_mdp import logging_policy

        return logging_policy(spec, simulator, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"policy {spec!r} is neither one of {REFERENCE_POLICIES} "
                                "nor a file")
    try:
        import stable_baselines3
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("loading a model needs stable-baselines3: "
                                  "pip install recgym[sb3]", name=error.name) from error
    from recgym.core import SB3Policy

    model = getattr(stable_baselines3, algo.upper()).load(path, device="cpu")
    return SB3Policy(model, observation_keys, slate_size, deterministic=not stochastic)
