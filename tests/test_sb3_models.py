"""Saved stable-baselines3 models in the CLI: loaded without running code from the file."""

from __future__ import annotations

import base64
import json
import pickle
import re
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest
from stable_baselines3 import PPO

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
