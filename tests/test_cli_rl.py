"""``recgym rl``: trains an SB3 agent whose zip the other commands load without trusting it.

Bad input (unknown id, DQN on slates, steps, --out, --set keys) is in test_bad_inputs.py.
"""

from __future__ import annotations

import re
import shlex
import zipfile

import pytest

from recgym.cli import main
from recgym.cli.rl import RL_ALGORITHMS
from recgym.integrations.sb3 import ALGORITHMS


def _rl(argv: list[str], capsys) -> tuple[int, str]:
    code = main(["rl", *argv, "--no-progress"])
    return code, capsys.readouterr().out


def _evaluate_line(out: str) -> list[str]:
    """The ``recgym evaluate`` command ``recgym rl`` printed, as arguments of ``main``."""
    line = next(line for line in out.splitlines() if line.startswith("evaluate it: "))
    words = shlex.split(line.removeprefix("evaluate it: "))
    assert words[:2] == ["recgym", "evaluate"], words
    return words[1:]


@pytest.mark.parametrize(("env_id", "algo"), [("SyntheticMDP-v0", "ppo"),
                                             ("SyntheticMDP-v0", "a2c"), ("RecSimu-v0", "dqn")])
def test_the_written_model_loads_in_evaluate_without_trust(env_id, algo, tmp_path, capsys):
    out_zip = tmp_path / f"{algo}.zip"
    code, out = _rl([env_id, "--algo", algo, "--steps", "256", "--n-envs", "2", "--out",
                     str(out_zip), "--eval-sessions", "20"], capsys)
    assert code == 0
    assert f"trained {algo.upper()} on {env_id} for 256 env steps (2 env copies)" in out
    assert re.search(r"mean return over 20 sessions: trained -?\d+\.\d+ ± \d+\.\d+, random", out)
    assert [path.name for path in tmp_path.iterdir()] == [out_zip.name]  # no temporary left
    with zipfile.ZipFile(out_zip) as archive:
        assert "policy.pth" in archive.namelist()
    evaluate = _evaluate_line(out)
    assert "--trust-model" not in evaluate
    assert main([*evaluate, "--sessions", "8", "--max-steps", "5"]) == 0
    assert out_zip.stem in capsys.readouterr().out


def test_settings_and_env_arguments_reach_the_model(tmp_path, capsys):
    import gymnasium as gym

    from recgym.cli.policies import load_sb3_model

    out_zip = tmp_path / "ppo.zip"
    code, out = _rl(["SyntheticMDP-v0", "--steps", "64", "--n-envs", "2", "--out",
                     str(out_zip), "--eval-sessions", "10", "--set", "n_steps=16",
                     "--set", "batch_size=32", "--env-arg", "num_items=20"], capsys)
    assert code == 0
    env = gym.make("SyntheticMDP-v0", num_items=20)
    model = load_sb3_model(out_zip, "ppo", env.observation_space, env.action_space)
    assert (model.n_steps, model.batch_size, model.n_envs) == (16, 32, 2)
    assert model.learning_rate == 1e-3  # the measured default the --set left alone
    evaluate = _evaluate_line(out)
    assert evaluate[-2:] == ["--env-arg", "num_items=20"]
    assert main([*evaluate, "--sessions", "8"]) == 0


def test_saving_progress_leaves_the_model_as_train_agent_makes_it(tmp_path, capsys):
    """Four saves of the training state mid-run (--save-every) change no weight."""
    import io

    import torch

    from recgym.integrations.sb3 import train_agent

    out_zip = tmp_path / "ppo.zip"
    code, out = _rl(["SyntheticMDP-v0", "--steps", "1024", "--n-envs", "2", "--set",
                     "n_steps=64", "--set", "batch_size=64", "--save-every", "200", "--out",
                     str(out_zip), "--eval-sessions", "10"], capsys)
    assert code == 0
    assert [path.name for path in tmp_path.iterdir()] == [out_zip.name]  # progress removed
    expected = train_agent("SyntheticMDP-v0", "ppo", 1024, n_envs=2, n_steps=64,
                           batch_size=64).policy.state_dict()
    with zipfile.ZipFile(out_zip) as archive:
        written = torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    assert written.keys() == expected.keys()
    assert all(torch.equal(written[name], expected[name]) for name in expected)


def test_the_command_knows_the_librarys_algorithms():
    assert RL_ALGORITHMS == ALGORITHMS


@pytest.mark.slow
def test_ppo_with_the_documented_budget_beats_random(tmp_path, capsys):
    """docs/clients.md: SyntheticMDP-v0, PPO, 50,000 env steps learns (> 4 s.e. of diff.)."""
    code, out = _rl(["SyntheticMDP-v0", "--algo", "ppo", "--steps", "50000", "--out",
                     str(tmp_path / "ppo.zip"), "--eval-sessions", "2000"], capsys)
    assert code == 0, out
    margin = float(re.search(r"difference: ([+-]\d+\.\d+) standard errors", out).group(1))
    assert margin >= 4.0, out
