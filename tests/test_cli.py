"""The recgym command: every subcommand runs, helps, and refuses bad arguments clearly."""

from __future__ import annotations

import pytest

from recgym.cli import build_parser, main
from recgym.data import load_logs


def test_list_names_every_env(capsys):
    main(["list"])
    assert "SyntheticMDP-v0" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["list", "demo", "generate-logs", "evaluate", "data", "fit",
                                     "ope"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: recgym" in capsys.readouterr().out


def test_demo_prints_table_and_saves_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    main(["demo", "--sessions", "100", "--ppo-steps", "0", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert all(name in out for name in ("random", "mix", "max", "coverage@1"))
    assert plot.stat().st_size > 10_000


def test_generate_logs_then_evaluate(tmp_path, capsys):
    out = tmp_path / "logs.parquet"
    main(["generate-logs", "SyntheticMDP-v0", "--policy", "max", "--sessions", "50",
          "--env-arg", "num_items=20", "--env-arg", "slate_size=3", "--out", str(out)])
    logs = load_logs(out).logs
    assert logs.session_id.nunique() == 50
    assert (logs.propensity == 1.0).all()
    assert logs.slate.map(len).eq(3).all()
    main(["evaluate", "SyntheticMDP-v0", "--policy", "random", "max", "--sessions", "200"])
    table = capsys.readouterr().out
    assert "random" in table and "max" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "NoSuchEnv-v0"], "recgym list"),
        (["evaluate", "SyntheticMDP-v0", "--policy", "nonsense"], "neither"),
        (["evaluate", "SyntheticMDP-v0", "--env-arg", "num_items"], "KEY=VALUE"),
    ],
)
def test_bad_arguments_are_explained(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_fit_irecgan_user_on_diginetica_makes_an_env(shared_data, tmp_path, capsys):
    import gymnasium as gym

    out = tmp_path / "u.pt"
    main(["fit", "irecgan-user", "--data", "diginetica", "--root",
          str(shared_data / "diginetica-cikm2016"), "--num-items", "300", "--hidden-size", "16",
          "--embedding-dim", "8", "--num-layers", "1", "--epochs", "1", "--out", str(out)])
    assert "fitted U on diginetica" in capsys.readouterr().out
    env = gym.make("IRecGAN-v0", checkpoint=out)
    assert env.action_space.nvec.max() == 300
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(SystemExit, match="--root"):
        main(["fit", "irecgan-user", "--data", "diginetica", "--out", str(out)])
