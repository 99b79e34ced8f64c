"""Soak (slow): 1 M user-steps of every registered env on the vector path, N = 1,024.

Random valid slates; every observation, reward and info must be finite and inside its
space, and resident memory may grow by less than 5% after the first 10% of the run.
Run with ``pytest -m slow tests/test_soak.py``.
"""

from __future__ import annotations

import resource

import gymnasium as gym
import numpy as np
import pytest

import recgym

NUM_ENVS = 1024
USER_STEPS = 1_000_000


def _resident_mib() -> float:
    """Current resident set size (Linux /proc), MiB; peak RSS elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    array = np.asarray(value)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(recgym.ENV_DESCRIPTIONS))
def test_soak_one_million_user_steps(env_id):
    envs = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point")
    envs.action_space.seed(0)
    observation, _ = envs.reset(seed=0)
    steps = USER_STEPS // NUM_ENVS
    baseline = None
    for step in range(steps):
        observation, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        if step % 50 == 0 or step == steps - 1:
            assert envs.observation_space.contains(observation), (env_id, step)
            assert _finite(observation) and _finite(info), (env_id, step)
            assert np.isfinite(reward).all() and reward.shape == (NUM_ENVS,)
            assert terminated.dtype == truncated.dtype == np.bool_
            assert ((info["clicked"] >= -1) & (info["clicked"] < envs.unwrapped.simulator
                                               .num_items)).all()
        if step == steps // 10:
            baseline = _resident_mib()
    growth = _resident_mib() / baseline - 1
    assert growth < 0.05, f"{env_id}: resident memory grew {growth:.1%} after the first 10%"
