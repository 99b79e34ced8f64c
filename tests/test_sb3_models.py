"""Saved stable-baselines3 models in the CLI: loaded without running code from the file."""

from __future__ import annotations

import base64
import collections
import json
import pickle
import re
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest
from stable_baselines3 import A2C, DQN, PPO

from recgym.cli import main
from recgym.cli.policies import load_sb3_model


class _TouchOnLoad:
    """A pickle that creates a file when it is unpickled (stands for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def model_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "ppo.zip"
    PPO("MlpPolicy", gym.make("SyntheticMDP-v0"), n_steps=16, batch_size=16, n_epochs=1,
        device="cpu", seed=0).learn(16).save(path)
    return path


def _rewrite_data(source: Path, target: Path, change) -> Path:
    """Copy a model zip with its JSON part changed by ``change(data)``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    change(data)
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


def _poison(marker: Path) -> dict:
    payload = base64.b64encode(pickle.dumps(_TouchOnLoad(marker))).decode()
    return {":type:": "<class 'object'>", ":serialized:": payload}


def _evaluate(model: Path, *extra: str, env: str = "SyntheticMDP-v0") -> int:
    return main(["evaluate", env, "--policy", "random", str(model), "--sessions", "8",
                 "--max-steps", "5", *extra])


def test_a_saved_model_is_evaluated_without_unpickling(model_zip, capsys):
    assert _evaluate(model_zip) == 0
    assert "ppo" in capsys.readouterr().out
    env = gym.make("SyntheticMDP-v0")
    model = load_sb3_model(model_zip, "ppo", env.observation_space, env.action_space)
    assert env.action_space.contains(model.predict(env.observation_space.sample())[0])


def test_pickles_the_file_carries_are_never_run_on_the_default_path(model_zip, tmp_path,
                                                                     capsys):
    marker = tmp_path / "code-ran"
    # a poisoned space is replaced by the env's own, so the file still loads
    replaced = _rewrite_data(model_zip, tmp_path / "spaces.zip",
                             lambda data: data["observation_space"].update(
                                 {":serialized:": _poison(marker)[":serialized:"]}))
    assert _evaluate(replaced) == 0
    # an object recgym cannot rebuild is refused, with the way out
    extra = _rewrite_data(model_zip, tmp_path / "extra.zip",
                          lambda data: data.update(callback=_poison(marker)))
    assert _evaluate(extra) == 2
    error = capsys.readouterr().err
    assert "['callback']" in error and "--trust-model" in error
    assert not marker.exists()
    # --trust-model is plain SB3 loading: the file's code runs (which is why it is opt-in)
    _evaluate(extra, "--trust-model")
    assert marker.exists()


@pytest.mark.parametrize(("args", "env", "message"), [
    (("--algo", "dqn"), "SyntheticMDP-v0", "ActorCriticPolicy.* not a DQN policy"),
    ((), "RecSimu-v0", "trained on a .*MultiDiscrete.* observation space"),
])
def test_a_model_of_another_algorithm_or_env_is_refused(model_zip, capsys, args, env,
                                                        message):
    assert _evaluate(model_zip, *args, env=env) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(model_zip) in error
    assert re.search(message, error)


def test_a_file_that_is_not_a_model_zip(tmp_path, capsys):
    fake = tmp_path / "model.zip"
    fake.write_text("not a zip")
    assert _evaluate(fake) == 2
    assert "is not a stable-baselines3 model zip" in capsys.readouterr().err


def _recgym_model(algorithm, env_id: str, path: Path) -> Path:
    """A model with recgym's own policy and extractor (``policy_class``, ``policy_kwargs``)."""
    from recgym.integrations.sb3 import policy_class, policy_kwargs

    extra = {PPO: {"n_steps": 32, "batch_size": 32, "n_epochs": 1}, A2C: {"n_steps": 8},
             DQN: {"learning_starts": 0, "buffer_size": 100}}[algorithm]
    env = gym.make(env_id)
    model = algorithm(policy_class(algorithm), env, policy_kwargs=policy_kwargs(env_id, env=env),
                      device="cpu", seed=0, **extra)
    model.learn(32).save(path)
    return path


@pytest.mark.parametrize(("algorithm", "env_id"), [(PPO, "SyntheticMDP-v0"),
                                                   (A2C, "SyntheticMDP-v0"),
                                                   (DQN, "RecSimu-v0"),
                                                   (PPO, "GANUserModel-v0")])
def test_recgyms_own_policies_load_safely_and_act_as_trained(algorithm, env_id, tmp_path,
                                                             capsys):
    """Policies of policy_class: an IndexError before (no ``__init__`` field to name them).

    Their pickled kwargs (extractor, simulator embeddings) and A2C's RMSprop were refused.
    """
    name = algorithm.__name__.lower()
    path = _recgym_model(algorithm, env_id, tmp_path / f"{name}.zip")
    env = gym.make(env_id)
    safe = load_sb3_model(path, name, env.observation_space, env.action_space)
    trusted = algorithm.load(path, device="cpu")
    assert type(safe.policy) is type(trusted.policy)
    env.observation_space.seed(0)
    for _ in range(5):
        observation = env.observation_space.sample()
        assert (safe.predict(observation, deterministic=True)[0]
                == trusted.predict(observation, deterministic=True)[0]).all()
    assert _evaluate(path, "--algo", name, env=env_id) == 0
    assert name in capsys.readouterr().out


def test_ope_takes_a_model_with_recgyms_policy_without_trust(tmp_path, capsys):
    path = _recgym_model(PPO, "SyntheticMDP-v0", tmp_path / "ppo.zip")
    logs = tmp_path / "logs.parquet"
    assert main(["generate-logs", "SyntheticMDP-v0", "--policy", "mix", "--sessions", "20",
                 "--out", str(logs)]) == 0
    assert main(["ope", "--policy", str(path), "--logs", str(logs), "--env", "SyntheticMDP-v0",
                 "--estimators", "ips", "dm", "--bootstrap", "10", "--plot",
                 str(tmp_path / "ope.png")]) == 0
    assert "ips" in capsys.readouterr().out


def test_a_policy_class_recgym_does_not_know_is_named_with_the_way_out(model_zip, tmp_path,
                                                                      capsys):
    payload = base64.b64encode(pickle.dumps(collections.OrderedDict)).decode()
    foreign = _rewrite_data(model_zip, tmp_path / "foreign.zip",
                            lambda data: data["policy_class"].update({":serialized:": payload}))
    assert _evaluate(foreign) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "(collections.OrderedDict)" in error and "--trust-model" in error
