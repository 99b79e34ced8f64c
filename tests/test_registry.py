"""Every registered recgym env passes Gymnasium's and stable-baselines3's env checkers."""

from __future__ import annotations

import importlib
import pickle
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import recgym

RECGYM_IDS = sorted(
    env_id for env_id, spec in gym.registry.items()
    if isinstance(spec.entry_point, str) and spec.entry_point.startswith("recgym.")
)

# the worked example of docs/adding_a_simulator.md gets every check a registered id gets
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
minimal_simulator = importlib.import_module("minimal_simulator")
minimal_simulator.register()
ENV_IDS = [*RECGYM_IDS, minimal_simulator.ENV_ID]


def test_registry_lists_every_described_env():
    assert RECGYM_IDS == sorted(recgym.ENV_DESCRIPTIONS)
    for env_id in RECGYM_IDS:
        assert gym.spec(env_id).vector_entry_point is not None, env_id


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_spaces_and_step(env_id):
    envs = gym.make_vec(env_id, num_envs=5, vectorization_mode="vector_entry_point")
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert reward.shape == terminated.shape == truncated.shape == (5,)
    assert info["clicked"].shape == (5,)


def _rollout(env, seed: int, steps: int):
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    events = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        events.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            events.append(env.reset()[0])
    return events


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if np.asarray(a).dtype.kind == "f":
        # learned rewards are float32 network outputs: batch size changes the last bits
        return bool(np.allclose(a, b, rtol=1e-5, atol=1e-5))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout(env_id):
    first = _rollout(gym.make(env_id), seed=7, steps=60)
    second = _rollout(gym.make(env_id), seed=7, steps=60)
    other = _rollout(gym.make(env_id), seed=8, steps=60)
    assert _same(tuple(first), tuple(second))
    assert not _same(tuple(first), tuple(other))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_pickles_and_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    action = env.action_space.sample()
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        out = env.step(action)
        out_clone = clone.step(action)
        assert _same(out[:4], out_clone[:4])
        if out[2] or out[3]:
            break
    vector = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    vector.reset(seed=1)
    vector_clone = pickle.loads(pickle.dumps(vector))
    actions = vector.action_space.sample()
    assert _same(vector.step(actions)[:4], vector_clone.step(actions)[:4])


def _user(observation, i):
    if isinstance(observation, dict):
        return {key: value[i] for key, value in observation.items()}
    return observation[i]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_user_i_matches_single_env_seeded_s_plus_i(env_id):
    num_envs, seed, steps = 3, 100, 30
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                          max_episode_steps=8)
    space = vector.single_action_space
    space.seed(0)
    actions = [[space.sample() for _ in range(num_envs)] for _ in range(steps)]
    obs, _ = vector.reset(seed=seed)
    vector_events = [[(_user(obs, i), 0.0, False, False)] for i in range(num_envs)]
    for step_actions in actions:
        obs, reward, terminated, truncated, _ = vector.step(np.stack(step_actions))
        for i in range(num_envs):
            vector_events[i].append((_user(obs, i), float(reward[i]), bool(terminated[i]),
                                     bool(truncated[i])))
    restarts = 0
    for i in range(num_envs):
        single = gym.make(env_id, max_episode_steps=8)
        obs, _ = single.reset(seed=seed + i)
        events, done = [(obs, 0.0, False, False)], False
        for step_actions in actions:
            if done:
                obs, done = single.reset()[0], False
                restarts += 1
                events.append((obs, 0.0, False, False))
                continue
            obs, reward, terminated, truncated, _ = single.step(step_actions[i])
            done = terminated or truncated
            events.append((obs, reward, terminated, truncated))
        assert _same(tuple(events), tuple(vector_events[i]))
    assert restarts > 0, "the test should cover at least one autoreset"


# attribute names a Dict observation key must not shadow: SB3's CombinedExtractor keeps one
# sub-network per key in an nn.ModuleDict, RLlib and others keep per-key state in dicts
_RESERVED_KEYS = {name for owner in (torch.nn.ModuleDict, dict) for name in dir(owner)}


def _observation_keys(space: gym.Space) -> list[str]:
    return list(space.spaces) if isinstance(space, gym.spaces.Dict) else []


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observation_keys_do_not_shadow_container_attributes(env_id):
    env = gym.make(env_id)
    simulator = env.unwrapped.simulator
    keys = set(simulator.observation_spaces()) | set(_observation_keys(env.observation_space))
    assert not keys & _RESERVED_KEYS, f"{env_id} observation keys {sorted(keys & _RESERVED_KEYS)}"


def test_reserved_key_check_can_fail():
    assert {"items", "keys", "values", "update"} <= _RESERVED_KEYS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_algorithms_build_and_update_on_plain_gym_make(env_id):
    env = gym.make(env_id)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) \
        else "MlpPolicy"
    models = [PPO(policy, env, n_steps=16, batch_size=16, n_epochs=1, device="cpu", seed=0),
              A2C(policy, env, n_steps=8, device="cpu", seed=0)]
    if isinstance(env.action_space, gym.spaces.Discrete):
        models.append(DQN(policy, env, learning_starts=8, buffer_size=64, batch_size=8,
                          train_freq=4, device="cpu", seed=0))
    for model in models:
        model.learn(32)
        action, _ = model.predict(env.observation_space.sample(), deterministic=True)
        assert env.action_space.contains(action), (env_id, type(model).__name__)


MANUAL_SECTIONS = ("## Description", "## Action Space", "## Observation Space", "## Rewards",
                   "## Starting State", "## Episode End", "## Arguments",
                   "## Vectorized environment", "## Version History")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_env_has_a_complete_manual(env_id):
    spec = gym.spec(env_id)
    module_name, class_name = spec.entry_point.split(":")
    module = importlib.import_module(module_name)
    manual = getattr(module, class_name).__doc__ or ""
    missing = [section for section in MANUAL_SECTIONS if section not in manual]
    assert not missing, f"{class_name} manual lacks {missing}"
    assert len((module.__doc__ or "").splitlines()) >= 5, \
        f"{module_name} docstring should state the dynamics and the readings chosen"
    vector_class = spec.vector_entry_point.split(":")[1]
    assert vector_class in manual, f"{class_name} manual should name {vector_class}"
