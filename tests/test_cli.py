"""The recgym command: every subcommand runs, helps fast, and refuses bad input in one line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from recgym.cli import build_parser, envs, main
from recgym.cli.arguments import key_value, parse_value
from recgym.data import load_logs

COMMANDS = ["list", "demo", "generate-logs", "evaluate", "fit", "data", "ope", "train", "rl",
            "export-minari", "import-minari"]
HEAVY = ("torch", "pandas", "stable_baselines3", "agents")


def run(argv, capsys):
    """Exit status, stdout and stderr of ``recgym ARGV`` run in this process."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_names_every_env_and_the_shipped_data(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "SyntheticMDP-v0" in out and "GANUserModel-v0" in out
    shipped = {line.split()[0]: line for line in out.split("shipped checkpoints")[1].splitlines()
               if line.startswith("  ")}
    assert shipped["recsimu-ml-latest-small.pt"].endswith(
        "The default user model of `RecSimu-v0` and `RecSimuSlate-v0`")
    assert shipped["ml-latest-small"].endswith("MovieLens ml-latest-small (GroupLens, "
                                               "generated 2018-09-26)")
    assert "open-bandit-dataset-small" in shipped


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: recgym" in capsys.readouterr().out


def test_help_imports_nothing_heavy():
    """``recgym --help`` and every ``recgym COMMAND --help`` import no torch, pandas, ..."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "recgym.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage: recgym" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "recgym" in imported and not imported & set(HEAVY), imported & set(HEAVY)
    script = ("import contextlib, io, sys\n"
              "from recgym.cli import main\n"
              f"for command in {COMMANDS!r}:\n"
              "    with contextlib.redirect_stdout(io.StringIO()):\n"
              "        assert main([command, '--help']) == 0, command\n"
              f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"COMMAND --help imported {proc.stdout.strip()}"


def test_demo_prints_table_and_saves_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--sessions", "100", "--ppo-steps", "0", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("random", "mix", "max", "coverage@1"))
    assert plot.stat().st_size > 10_000


def test_generate_logs_then_evaluate(tmp_path, capsys):
    out = tmp_path / "logs.parquet"
    assert main(["generate-logs", "SyntheticMDP-v0", "--policy", "max", "--sessions", "50",
                 "--env-arg", "num_items=20", "--env-arg", "slate_size=3", "--out", str(out)]) == 0
    logs = load_logs(out).logs
    assert logs.session_id.nunique() == 50
    assert (logs.propensity == 1.0).all()
    assert logs.slate.map(len).eq(3).all()
    assert main(["evaluate", "SyntheticMDP-v0", "--policy", "random", "max", "--sessions",
                 "200"]) == 0
    table = capsys.readouterr().out
    assert "random" in table and "max" in table


def test_generate_logs_honours_the_registered_episode_limit(tmp_path, capsys):
    import gymnasium as gym

    limit = gym.spec("RecSimu-v0").max_episode_steps
    out = tmp_path / "logs.parquet"
    assert main(["generate-logs", "RecSimu-v0", "--policy", "random", "--sessions", "20",
                 "--out", str(out)]) == 0
    assert load_logs(out).logs.step.max() == limit - 1
    assert main(["generate-logs", "RecSimu-v0", "--policy", "random", "--sessions", "20",
                 "--max-steps", "3", "--out", str(out)]) == 0
    assert load_logs(out).logs.step.max() == 2
    assert "at most 3 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "NoSuchEnv-v0"], "unknown env 'NoSuchEnv-v0'; `recgym list`"),
        (["evaluate", "SyntheticMDP-v0", "--policy", "nonsense"], "'nonsense' is neither"),
        (["evaluate", "SyntheticMDP-v0", "--env-arg", "num_items"],
         "argument --env-arg: expected KEY=VALUE"),
        (["evaluate", "SyntheticMDP-v0", "--env-arg", "num_itemz=3"], "num_itemz"),
        (["evaluate", "SyntheticMDP-v0", "--max-steps", "0"],
         "argument --max-steps: expected an integer >= 1, got '0'"),
        (["evaluate", "SyntheticMDP-v0", "--max-steps", "-1"],
         "argument --max-steps: expected an integer >= 1, got '-1'"),
        (["evaluate", "SyntheticMDP-v0", "--algo", "nosuch"],
         "argument --algo: invalid choice: 'nosuch' (choose from 'a2c', 'ddpg', 'dqn'"),
        (["generate-logs", "SyntheticMDP-v0", "--out", "logs.csv"],
         "argument --out: logs are written as Parquet: the file name must end in .parquet"),
        (["generate-logs", "SyntheticMDP-v0", "--out", "no/such/folder/logs.parquet"],
         "folder 'no/such/folder' of 'no/such/folder/logs.parquet' does not exist"),
        (["ope", "--policy", "random", "--logs", "x.parquet", "--estimators", "nope"],
         "argument --estimators: invalid choice: 'nope'"),
        (["fit", "irecgan-user", "--data", "diginetica"], "--data diginetica needs --root"),
        (["data", "info", "no-such-dataset"], "known:"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_input_is_one_line_with_status_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("recgym: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not list(tmp_path.iterdir()), "a refused command wrote files"


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="unknown env"):
        main(["--debug", "evaluate", "NoSuchEnv-v0"])
    proc = subprocess.run([sys.executable, "-m", "recgym.cli", "--debug", "evaluate",
                           "NoSuchEnv-v0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: unknown env" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "recgym.cli", "evaluate", "NoSuchEnv-v0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("recgym: error: unknown env")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("error", "user_error"),
    [
        (KeyError("no dataset 'x'"), True),
        (FileExistsError("exists"), True),
        (ModuleNotFoundError("pip install it", name="stable_baselines3"), True),
        (ModuleNotFoundError("renamed", name="recgym.nothing"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_only_user_errors_become_one_line(error, user_error, monkeypatch, capsys):
    def fail(args: argparse.Namespace) -> None:
        raise error

    monkeypatch.setattr(envs, "cmd_list", fail)
    if not user_error:
        with pytest.raises(type(error)):
            main(["list"])
        return
    code, _, err = run(["list"], capsys)
    assert code == 2 and err == f"recgym: error: {error.args[0]}\n"


@pytest.mark.parametrize(
    ("text", "value"),
    [("100", 100), ("-3", -3), ("1e-3", 1e-3), ("0.5", 0.5), ("True", True),
     ("false", False), ("None", None), ("none", None), ("(600,)", (600,)),
     ("'cpu'", "cpu"), ("cpu", "cpu"), ("recall@100", "recall@100")],
)
def test_values_are_converted(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_key_value_names_the_malformed_value():
    assert key_value("num_items=100") == ("num_items", 100)
    assert key_value("device=cuda:0") == ("device", "cuda:0")
    for bad in ("num_items", "=3", "two words=1", "1x=2"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {bad!r}"):
            key_value(bad)


def test_static_choices_match_the_library():
    import stable_baselines3

    from recgym.cli.ope import ESTIMATORS
    from recgym.cli.policies import SB3_ALGORITHMS
    from recgym.evaluation.ope import ALL_ESTIMATORS

    assert ESTIMATORS == ALL_ESTIMATORS
    assert all(hasattr(stable_baselines3, name.upper()) for name in SB3_ALGORITHMS)


def test_fit_irecgan_user_on_diginetica_makes_an_env(shared_data, tmp_path, capsys):
    import gymnasium as gym

    out = tmp_path / "u.pt"
    assert main(["fit", "irecgan-user", "--data", "diginetica", "--root",
                 str(shared_data / "diginetica-cikm2016"), "--num-items", "300",
                 "--hidden-size", "16", "--embedding-dim", "8", "--num-layers", "1",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert "fitted U on diginetica" in capsys.readouterr().out
    env = gym.make("IRecGAN-v0", checkpoint=out)
    assert env.action_space.nvec.max() == 300
    env.reset(seed=0)
    env.step(env.action_space.sample())
