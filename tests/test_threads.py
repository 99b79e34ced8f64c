"""recgym's thread policy: each simulation call runs on its own torch threads, the caller keeps its.

The simulator's ``reset`` and ``step`` are wrapped to record ``torch.get_num_threads()`` as
they run; the caller sets a different count before each env call and must find it again
afterwards, also when the call raises.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

from recgym.core.batch import SimulationBatch
from recgym.core.sb3 import SB3VecEnv
from recgym.core.threads import NUM_THREADS_VARIABLE, resolve_num_threads

CALLER_THREADS = 3  # differs from both the default (1) and the explicit count used below


@pytest.fixture
def caller_threads():
    """The test's caller runs with ``CALLER_THREADS`` torch threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER_THREADS)
    yield CALLER_THREADS
    torch.set_num_threads(before)


@pytest.fixture
def no_variable(monkeypatch):
    monkeypatch.delenv(NUM_THREADS_VARIABLE, raising=False)


def record_threads(simulator) -> list[tuple[str, int]]:
    """Make ``simulator`` note the torch thread count inside each of its reset / step calls."""
    seen: list[tuple[str, int]] = []
    for name in ("reset", "step"):
        method = getattr(simulator, name)

        def recording(*args, _name=name, _method=method, **kwargs):
            seen.append((_name, torch.get_num_threads()))
            return _method(*args, **kwargs)

        setattr(simulator, name, recording)
    return seen


def vector_env(num_envs: int = 4, env_id: str = "SyntheticMDP-v0", **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)


@pytest.mark.usefixtures("no_variable")
@pytest.mark.parametrize("num_threads, inside", [(None, 1), (2, 2)])
def test_vector_env_steps_on_its_threads_and_restores_the_callers(caller_threads, num_threads,
                                                                  inside):
    envs = vector_env(**({} if num_threads is None else {"num_threads": num_threads}))
    assert envs.unwrapped.num_threads == inside
    seen = record_threads(envs.unwrapped.simulator)
    envs.reset(seed=0)
    assert torch.get_num_threads() == caller_threads
    for _ in range(3):
        envs.step(envs.action_space.sample())
        assert torch.get_num_threads() == caller_threads
    assert {name for name, _ in seen} == {"reset", "step"}
    assert all(threads == inside for _, threads in seen), seen


@pytest.mark.usefixtures("no_variable")
def test_single_env_and_sb3_adapter_step_on_their_threads(caller_threads):
    env = gym.make("SyntheticMDP-v0")
    seen = record_threads(env.unwrapped.simulator)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert torch.get_num_threads() == caller_threads

    adapter = SB3VecEnv(vector_env(num_threads=2))
    seen_vec = record_threads(adapter.rec_env.simulator)
    adapter.seed(0)
    adapter.reset()
    adapter.step(np.stack([adapter.action_space.sample() for _ in range(adapter.num_envs)]))
    assert torch.get_num_threads() == caller_threads
    assert seen and all(threads == 1 for _, threads in seen), seen
    assert seen_vec and all(threads == 2 for _, threads in seen_vec), seen_vec


@pytest.mark.usefixtures("no_variable")
def test_the_first_sessions_are_drawn_on_the_batchs_threads(caller_threads):
    simulator = vector_env().unwrapped.simulator
    seen = record_threads(simulator)
    batch = SimulationBatch(simulator, 8, num_threads=2)
    assert seen == [("reset", 2)]
    assert torch.get_num_threads() == caller_threads
    assert batch.state["state"].shape[0] == 8


@pytest.mark.usefixtures("no_variable")
def test_a_failing_step_gives_the_caller_its_threads_back(caller_threads):
    envs = vector_env()
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="slate item ids"):
        envs.step(np.full((4, envs.single_action_space.shape[0]), 10**6))
    assert torch.get_num_threads() == caller_threads


def test_the_variable_sets_the_default_and_the_argument_wins(monkeypatch):
    monkeypatch.setenv(NUM_THREADS_VARIABLE, "2")
    assert vector_env().unwrapped.num_threads == 2
    assert vector_env(num_threads=1).unwrapped.num_threads == 1
    assert gym.make("SyntheticMDP-v0").unwrapped.batch.num_threads == 2
    monkeypatch.setenv(NUM_THREADS_VARIABLE, " ")
    assert resolve_num_threads() == 1


@pytest.mark.parametrize("value, error, message", [
    (0, ValueError, r"num_threads must be in \[1, inf\], got 0"),
    (-2, ValueError, r"num_threads must be in \[1, inf\], got -2"),
    (1.5, TypeError, r"num_threads must be an integer, got 1.5"),
    ("2", TypeError, r"num_threads must be an integer, got '2'"),
    (True, TypeError, r"num_threads must be an integer, got True"),
])
def test_num_threads_argument_is_validated(value, error, message):
    with pytest.raises(error, match=message):
        vector_env(num_threads=value)
    with pytest.raises(error, match=message):
        gym.make("SyntheticMDP-v0", num_threads=value)


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "2 threads"])
def test_a_bad_variable_is_refused_by_name(monkeypatch, text):
    monkeypatch.setenv(NUM_THREADS_VARIABLE, text)
    with pytest.raises(ValueError, match=f"{NUM_THREADS_VARIABLE} must be a positive integer"):
        vector_env()


def _flat(values: list) -> list[np.ndarray]:
    """Arrays of a trajectory, with dict observations split into their keys."""
    return [array for value in values for array in
            (value.values() if isinstance(value, dict) else [value])]


@pytest.mark.usefixtures("no_variable")
@pytest.mark.parametrize("env_id", [
    "SyntheticMDP-v0",
    *(pytest.param(env_id, marks=pytest.mark.slow)  # 3-12 s each: checkpoint and 2-thread steps
      for env_id in ("GANUserModel-v0", "RecSimu-v0", "IRecGAN-v0")),
])
def test_trajectories_do_not_depend_on_the_thread_count(env_id):
    """Same seed, same trajectory on one thread and on two.

    1,024 users, so that torch does split the larger ops over both threads.
    """
    runs = []
    for num_threads in (1, 2):
        envs = vector_env(1024, env_id, num_threads=num_threads)
        envs.action_space.seed(5)
        observation, _ = envs.reset(seed=11)
        trajectory = [observation]
        for _ in range(5):
            observation, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
            trajectory += [observation, reward, terminated, truncated]
        runs.append(_flat(trajectory))
    for first, second in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, second)


def test_the_thread_count_survives_pickling():
    envs = pickle.loads(pickle.dumps(vector_env(num_threads=2)))
    assert envs.unwrapped.num_threads == 2
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
