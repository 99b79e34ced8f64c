"""Nothing is lost: a command killed with SIGKILL resumes to the uninterrupted result.

A killed writer never leaves a partial file at the output path either. The kills are slow
tests (``pytest -m slow tests/test_kill_resume.py``); the fast ones interrupt in-process
and check that chunked work equals one piece and that a resume is refused when its
arguments differ from the interrupted run's.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recgym.evaluation
from recgym.cli import main
from recgym.cli.envs import CHUNK_SESSIONS, parts_folder
from recgym.cli.policies import simulator_for_env
from recgym.core.checkpoint import read_checkpoint_file
from recgym.data import LogDataset, load_logs, load_progress, save_progress
from recgym.evaluation import collect_logs, ope
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """Max-policy sessions of a small synthetic world (long sessions, clicks and leaves)."""
    world = SyntheticMDP(num_states=4, num_items=12, slate_size=3)
    path = tmp_path_factory.mktemp("logs") / "logs.parquet"
    frame = collect_logs(world, logging_policy("max", world), 300, max_steps=30)
    # explicit feedback of both classes everywhere, so RecSimu's held-out tuples have both
    frame["feedback"] = np.random.default_rng(0).integers(0, 2, len(frame))
    LogDataset(frame, num_items=world.num_items).save(path)
    return path


def _recgym(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recgym.cli", *argv], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after(process: subprocess.Popen, progress: Path, timeout: float = 300) -> None:
    """SIGKILL the process once ``progress`` exists (it has saved some work)."""
    started = time.monotonic()
    while not progress.exists() and process.poll() is None:
        assert time.monotonic() - started < timeout, "no progress file appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def _finish(*argv: str) -> None:
    process = _recgym(*argv)
    _, error = process.communicate(timeout=600)
    assert process.returncode == 0, error


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint_file(path)["state_dict"]


def _same_weights(first: Path, second: Path) -> None:
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


FITS = {
    "irecgan-user": (["fit", "irecgan-user", "--epochs", "40", "--hidden-size", "16",
                      "--embedding-dim", "8", "--num-layers", "1", "--batch-size", "16"],
                     ".trainer"),
    "recsimu": (["fit", "recsimu", "--state-length", "2", "--epochs", "8",
                 "--pretrain-epochs", "2", "--embedding-epochs", "1"], ".trainer"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FITS))
def test_a_killed_fit_resumes_to_the_uninterrupted_result(name, logs, tmp_path):
    argv, suffix = FITS[name]
    whole, resumed = tmp_path / "whole.pt", tmp_path / "resumed.pt"
    _finish(*argv, "--data", str(logs), "--out", str(whole))
    _kill_after(_recgym(*argv, "--data", str(logs), "--out", str(resumed)),
                resumed.with_name(resumed.name + suffix))
    _finish(*argv, "--data", str(logs), "--out", str(resumed), "--resume")
    _same_weights(whole, resumed)


@pytest.mark.slow
def test_a_killed_gan_user_fit_resumes_to_the_uninterrupted_result(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_gan_user import synthetic_user_logs

    frame, features = synthetic_user_logs(sessions=300)
    items = pd.DataFrame(features.numpy(), columns=[f"genre_{i}" for i in range(6)])
    items.index = pd.RangeIndex(len(items), name="item_id")
    data = tmp_path / "logs.parquet"
    LogDataset(frame, items=items, num_items=len(items)).save(data)
    argv = ["fit", "gan-user", "--data", str(data), "--hidden", "16", "--history", "2",
            "--epochs", "30", "--adversarial-epochs", "10", "--regularizer", "l2"]
    whole, resumed = tmp_path / "whole.pt", tmp_path / "resumed.pt"
    _finish(*argv, "--out", str(whole))
    _kill_after(_recgym(*argv, "--out", str(resumed)), resumed.with_suffix(".fit.pt"))
    _finish(*argv, "--out", str(resumed), "--resume")
    _same_weights(whole, resumed)


@pytest.mark.slow
def test_a_killed_irecgan_fit_resumes_to_the_uninterrupted_result(logs, tmp_path):
    """Killed inside the adversarial stage, where U, A and D are written each epoch."""
    argv = ["fit", "irecgan", "--data", str(logs), "--embedding-dim", "8", "--hidden-size",
            "16", "--num-layers", "1", "--user-epochs", "2", "--agent-epochs", "2",
            "--epochs", "6", "--rollouts", "2"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _finish(*argv, "--out-dir", str(whole))
    _kill_after(_recgym(*argv, "--out-dir", str(resumed)),
                resumed / "adversarial.progress.pt")
    _finish(*argv, "--out-dir", str(resumed), "--resume")
    for name in ("user", "agent", "discriminator"):
        _same_weights(whole / f"{name}.pt", resumed / f"{name}.pt")


@pytest.mark.slow
def test_a_killed_cf_training_resumes_to_the_uninterrupted_result(tmp_path):
    argv = ["train", "mult-vae", "--data", "ml-latest-small", "--set", "epochs=12",
            "--no-progress"]
    _finish(*argv, "--out", str(tmp_path / "whole"))
    out = tmp_path / "resumed"
    checkpoint = out / "mult-vae-ml-latest-small-seed0.pt"
    _kill_after(_recgym(*argv, "--out", str(out)), checkpoint)
    _finish(*argv, "--out", str(out), "--resume")
    _same_weights(tmp_path / "whole" / checkpoint.name, checkpoint)


WORLD = ["SyntheticMDP-v0", "--env-arg", "num_items=20", "--env-arg", "slate_size=3"]
GENERATE = ["generate-logs", *WORLD, "--policy", "mix", "--sessions", "20"]


def _chunked_logs(name: str, sessions: int, chunk: int) -> pd.DataFrame:
    """What generate-logs must write: chunk ``s`` is ``collect_logs`` seeded ``s``, ids + ``s``."""
    world = simulator_for_env(WORLD[0], {"num_items": 20, "slate_size": 3}).simulator
    parts = []
    for start in range(0, sessions, chunk):
        part = collect_logs(world, logging_policy(name, world, seed=start),
                            min(chunk, sessions - start), seed=start, max_steps=200,
                            extra_observation_keys=("true_state",))
        parts.append(part.assign(session_id=part.session_id + start))
    return LogDataset(pd.concat(parts, ignore_index=True), num_items=20).logs


@pytest.mark.parametrize(("policy", "chunk", "expected_chunk"),
                         [("max", 7, 50), ("mix", CHUNK_SESSIONS, 50), ("mix", 7, 7)])
def test_chunked_log_generation_is_one_batch_for_deterministic_policies_and_small_runs(
        policy, chunk, expected_chunk, tmp_path, monkeypatch):
    """The max policy (any chunks) and one-chunk runs are one batch; else chunk s is seed s."""
    monkeypatch.setattr("recgym.cli.envs.CHUNK_SESSIONS", chunk)
    out = tmp_path / "logs.parquet"
    assert main(["generate-logs", *WORLD, "--policy", policy, "--sessions", "50", "--out",
                 str(out)]) == 0
    pd.testing.assert_frame_equal(load_logs(out).logs, _chunked_logs(policy, 50, expected_chunk))
    assert not parts_folder(out).exists()


@pytest.fixture
def interrupted_generation(tmp_path, monkeypatch) -> Path:
    """``--out`` of a generate-logs run (GENERATE, chunks of 7) stopped after its first chunk."""
    monkeypatch.setattr("recgym.cli.envs.CHUNK_SESSIONS", 7)
    calls = []

    def stop_at_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return collect_logs(*args, **kwargs)

    out = tmp_path / "logs.parquet"
    with monkeypatch.context() as patch:
        patch.setattr(recgym.evaluation, "collect_logs", stop_at_second_chunk)
        with pytest.raises(KeyboardInterrupt):
            main([*GENERATE, "--out", str(out)])
    assert not out.exists() and len(list(parts_folder(out).glob("*.parquet"))) == 1
    return out


def test_an_interrupted_log_generation_resumes_to_the_uninterrupted_log(
        interrupted_generation, capsys):
    out = interrupted_generation
    assert main([*GENERATE, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "a previous run was interrupted" in error and "--resume" in error
    assert "--overwrite" in error and str(parts_folder(out)) in error
    assert main([*GENERATE, "--out", str(out), "--resume"]) == 0
    pd.testing.assert_frame_equal(load_logs(out).logs, _chunked_logs("mix", 20, 7))
    assert not parts_folder(out).exists()


@pytest.mark.parametrize(("option", "value", "saved"),
                         [("--sessions", "21", "20"), ("--seed", "1", "0"),
                          ("--policy", "random", "'mix'")])
def test_a_resume_with_other_arguments_is_refused_naming_the_argument(
        interrupted_generation, option, value, saved, capsys):
    argv = [*GENERATE, "--out", str(interrupted_generation), "--resume", option, value]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"had {option} {saved}, this one has {option} " in error
    assert "pass the same arguments" in error
    assert parts_folder(interrupted_generation).exists()  # refused: nothing was touched


def test_overwrite_discards_an_interrupted_generation(interrupted_generation):
    out = interrupted_generation
    assert main([*GENERATE, "--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert load_logs(out).logs.session_id.nunique() == 20
    assert not parts_folder(out).exists()


def test_a_resume_with_nothing_to_resume_starts_afresh(tmp_path, capsys):
    out = tmp_path / "logs.parquet"
    assert main([*GENERATE, "--out", str(out), "--resume"]) == 0
    assert f"nothing to resume at {parts_folder(out)}: starting afresh" in capsys.readouterr().out
    pd.testing.assert_frame_equal(load_logs(out).logs, _chunked_logs("mix", 20, 20))


def test_a_generation_that_fails_at_once_leaves_no_progress(tmp_path):
    out = tmp_path / "logs.parquet"
    assert main(["generate-logs", "SyntheticMDP-v0", "--env-arg", "num_items=20", "--policy",
                 "mix", "--out", str(out)]) == 2  # the reward band is smaller than a slate
    assert not parts_folder(out).exists() and not out.exists()


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    argv = [*GENERATE, "--out", str(tmp_path / "logs.parquet"), "--resume", "--overwrite"]
    assert main(argv) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def _ope(frame: pd.DataFrame, world: SyntheticMDP, progress: ope.BootstrapProgress | None
         ) -> pd.DataFrame:
    return ope.evaluate(logging_policy("random", world), frame, ["dm", "dr", "ips"],
                        logging_policy=logging_policy("mix", world), n_bootstrap=60,
                        bootstrap_progress=progress)


def test_an_interrupted_ope_bootstrap_resumes_to_the_uninterrupted_intervals(
        tmp_path, monkeypatch):
    world = SyntheticMDP(num_states=4, num_items=12, slate_size=3)
    frame = collect_logs(world, logging_policy("mix", world), 200, max_steps=30,
                         extra_observation_keys=("true_state",))
    whole = _ope(frame, world, None)
    progress = ope.BootstrapProgress(tmp_path / "ope.progress.json", {"--seed": 0}, every=10)
    saves = []

    def stop_after_second_save(*args, **kwargs):
        save_progress(*args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ope, "save_progress", stop_after_second_save)
        with pytest.raises(KeyboardInterrupt):
            _ope(frame, world, progress)
    with pytest.raises(ValueError, match=r"had --seed 0, this one has --seed 1; pass the same"):
        _ope(frame, world, ope.BootstrapProgress(progress.path, {"--seed": 1}))
    pd.testing.assert_frame_equal(_ope(frame, world, progress), whole)


@pytest.mark.slow
def test_a_killed_log_generation_resumes_to_the_uninterrupted_log(tmp_path):
    """Killed after its first chunk of sessions is saved; never a partial file at --out."""
    argv = ["generate-logs", "SyntheticMDP-v0", "--policy", "mix", "--sessions",
            str(3 * CHUNK_SESSIONS)]
    whole, resumed = tmp_path / "whole.parquet", tmp_path / "resumed.parquet"
    _finish(*argv, "--out", str(whole))
    _kill_after(_recgym(*argv, "--out", str(resumed)),
                parts_folder(resumed) / "sessions-0000000000.parquet")
    assert not resumed.exists()
    _finish(*argv, "--out", str(resumed), "--resume")
    pd.testing.assert_frame_equal(pd.read_parquet(resumed), pd.read_parquet(whole))
    assert not parts_folder(resumed).exists()


@pytest.mark.slow
def test_a_killed_ope_resumes_to_the_uninterrupted_table(tmp_path):
    """Killed inside the bootstrap's reward-model refits, once their progress is saved."""
    logs = tmp_path / "logs.parquet"
    _finish("generate-logs", "SyntheticMDP-v0", "--policy", "mix", "--sessions", "2000",
            "--out", str(logs))
    argv = ["ope", "--policy", "random", "--logs", str(logs), "--env", "SyntheticMDP-v0",
            "--logging-policy", "mix", "--estimators", "dm", "dr", "ips", "--bootstrap", "1500",
            "--plot", ""]
    whole, resumed = tmp_path / "whole.csv", tmp_path / "resumed.csv"
    _finish(*argv, "--out", str(whole))
    _kill_after(_recgym(*argv, "--out", str(resumed)),
                resumed.with_name(resumed.name + ".progress.json"))
    assert not resumed.exists()
    _finish(*argv, "--out", str(resumed), "--resume")
    pd.testing.assert_frame_equal(pd.read_csv(resumed), pd.read_csv(whole))
    assert not resumed.with_name(resumed.name + ".progress.json").exists()


RL = ["rl", "SyntheticMDP-v0", "--steps", "1024", "--n-envs", "2", "--set", "n_steps=64",
      "--set", "batch_size=64", "--save-every", "256", "--eval-sessions", "10",
      "--no-progress"]
RL_A2C = ["rl", "SyntheticMDP-v0", "--algo", "a2c", "--steps", "1024", "--n-envs", "2",
          "--save-every", "256", "--eval-sessions", "10", "--no-progress"]
RL_DQN = ["rl", "RecSimu-v0", "--algo", "dqn", "--steps", "400", "--set", "learning_starts=100",
          "--set", "buffer_size=1000", "--save-every", "100", "--eval-sessions", "10",
          "--no-progress"]


def _policy_weights(model_zip: Path) -> dict[str, torch.Tensor]:
    import io
    import zipfile

    with zipfile.ZipFile(model_zip) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)


def _same_policy(first: Path, second: Path) -> None:
    a, b = _policy_weights(first), _policy_weights(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _interrupted_rl(argv: list[str], out: Path, monkeypatch, saves: int = 2) -> None:
    """Run ``recgym rl`` to ``out`` and stop it right after its ``saves``-th progress save."""
    import recgym.cli.rl

    save, done = recgym.cli.rl._save_training, []

    def stop_after_saves(*args, **kwargs):
        save(*args, **kwargs)
        done.append(1)
        if len(done) == saves:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(recgym.cli.rl, "_save_training", stop_after_saves)
        with pytest.raises(KeyboardInterrupt):
            main([*argv, "--out", str(out)])
    assert not out.exists() and (out.with_name(out.name + ".progress") / "training.pkl").exists()


@pytest.mark.parametrize("argv", [RL, RL_A2C, RL_DQN],
                         ids=["ppo", "a2c", "dqn"])
def test_an_interrupted_rl_run_resumes_to_the_uninterrupted_model(argv, tmp_path, monkeypatch,
                                                                   capsys):
    """Weights, optimizer, env copies, replay buffer and generators all come back."""
    whole, resumed = tmp_path / "whole.zip", tmp_path / "resumed.zip"
    assert main([*argv, "--out", str(whole)]) == 0
    _interrupted_rl(argv, resumed, monkeypatch)
    progress = resumed.with_name(resumed.name + ".progress")
    assert main([*argv, "--out", str(resumed)]) == 2
    assert f"left its progress in {progress}" in capsys.readouterr().err
    assert main([*argv, "--out", str(resumed), "--resume"]) == 0
    assert "resuming at " in capsys.readouterr().out
    _same_policy(whole, resumed)
    assert not progress.exists()


def test_an_rl_resume_with_other_arguments_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ppo.zip"
    _interrupted_rl(RL, out, monkeypatch, saves=1)
    progress = out.with_name(out.name + ".progress")
    saved = (progress / "training.pkl").read_bytes()
    capsys.readouterr()
    for option, value, before in [("--steps", "2048", "1024"), ("--seed", "1", "0"),
                                  ("--n-envs", "4", "2"), ("--env-arg", "num_items=20", "[]")]:
        assert main([*RL, option, value, "--out", str(out), "--resume"]) == 2
        error = capsys.readouterr().err
        assert f"had {option} {before}, this one has {option} " in error, error
    assert (progress / "training.pkl").read_bytes() == saved  # refused: nothing was touched
    assert main([*RL, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert out.exists() and not progress.exists()


@pytest.mark.slow
@pytest.mark.parametrize("argv", [[*RL[:3], "2048", *RL[4:]], RL_DQN], ids=["ppo", "dqn"])
def test_a_killed_rl_run_resumes_to_the_uninterrupted_model(argv, tmp_path):
    whole, resumed = tmp_path / "whole.zip", tmp_path / "resumed.zip"
    _finish(*argv, "--out", str(whole))
    _kill_after(_recgym(*argv, "--out", str(resumed)),
                resumed.with_name(resumed.name + ".progress") / "training.pkl")
    assert not resumed.exists()
    _finish(*argv, "--out", str(resumed), "--resume")
    _same_policy(whole, resumed)


FIDELITY = ["fidelity", "--logging", "random", "--sessions", "150", "--held-out", "40",
            "--eval-sessions", "60", "--simulator", "item-rate", "--ensemble", "2"]
FIDELITY_STEM = "fidelity_synthetic-mdp_random_item-rate"


def _fidelity_tables(out_dir: Path) -> tuple[str, str]:
    return ((out_dir / f"{FIDELITY_STEM}.csv").read_text(),
            (out_dir / f"{FIDELITY_STEM}_summary.csv").read_text())


def test_a_saved_part_leaves_the_generators_as_running_it_did(tmp_path):
    """A kind that draws from the global generators: what follows it sees the same draws."""
    import random

    from recgym.cli.fidelity import SavedParts

    def draw(size: int) -> tuple:
        return (torch.rand(size), np.random.rand(size), random.random())

    def run(parts: SavedParts) -> tuple:
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        return parts("fit", draw, 3), draw(2)

    computed = run(SavedParts(tmp_path, {"--seed": 0}))
    loaded = run(parts := SavedParts(tmp_path, {"--seed": 0}))
    assert parts.loaded == ["fit"]
    for first, second in zip(computed, loaded, strict=True):
        for a, b in zip(first, second, strict=True):
            assert np.array_equal(a, b)
    assert load_progress(tmp_path / "run.json", {"--seed": 0})["run"] == {"--seed": 0}


def test_an_interrupted_fidelity_run_resumes_to_the_uninterrupted_table(tmp_path, monkeypatch,
                                                                        capsys):
    """Stopped in the ensemble's roll-outs: logs, fit, world and simulator roll-outs saved."""
    score_module = importlib.import_module("recgym.fidelity.score")  # the attribute: score()
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main([*FIDELITY, "--out-dir", str(whole)]) == 0

    def stop_in_the_ensemble(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(score_module, "_roll_outs", stop_in_the_ensemble)
        with pytest.raises(KeyboardInterrupt):
            main([*FIDELITY, "--out-dir", str(resumed)])
    progress = resumed / f"{FIDELITY_STEM}.progress"
    finished = {path.stem for path in progress.glob("*.pkl")}
    assert {"logs", "fit", "ensemble-fit-0", "world-random", "simulator-random"} <= finished
    assert not (resumed / f"{FIDELITY_STEM}.csv").exists()
    capsys.readouterr()
    assert main([*FIDELITY, "--out-dir", str(resumed)]) == 2
    assert f"left its progress in {progress}" in capsys.readouterr().err
    assert main([*FIDELITY, "--seed", "1", "--out-dir", str(resumed), "--resume"]) == 2
    assert "had --seed 0, this one has --seed 1" in capsys.readouterr().err
    assert main([*FIDELITY, "--out-dir", str(resumed), "--resume"]) == 0
    assert f"resumed: {len(finished)} parts (logs, " in capsys.readouterr().out
    assert _fidelity_tables(resumed) == _fidelity_tables(whole)
    assert not progress.exists()


@pytest.mark.slow
def test_a_killed_fidelity_run_resumes_to_the_uninterrupted_table(tmp_path):
    """A learned kind and PPO in world and simulator; killed once the fit is saved."""
    argv = [*FIDELITY[:-4], "--simulator", "irecgan", "--set", "epochs=2", "--set",
            "hidden_size=8", "--set", "embedding_dim=4", "--set", "num_layers=1",
            "--ppo-timesteps", "2048"]
    stem = "fidelity_synthetic-mdp_random_irecgan"
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _finish(*argv, "--out-dir", str(whole))
    _kill_after(_recgym(*argv, "--out-dir", str(resumed)),
                resumed / f"{stem}.progress" / "fit.pkl")
    _finish(*argv, "--out-dir", str(resumed), "--resume")
    for suffix in (".csv", "_summary.csv"):
        assert (resumed / f"{stem}{suffix}").read_text() == (whole / f"{stem}{suffix}").read_text()
    assert not (resumed / f"{stem}.progress").exists()


def _ope_ground_truth():
    """benchmarks/ope_ground_truth.py as a module (it imports its siblings by name)."""
    import importlib.util

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("ope_ground_truth",
                                                  folder / "ope_ground_truth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_interrupted_ope_ground_truth_study_resumes_to_the_same_tables(tmp_path,
                                                                          monkeypatch):
    """The benchmark saves each (logging, size, seed) part; a resume gives the same tables."""
    study = _ope_ground_truth()
    argv = ["--sizes", "20", "--seeds", "2", "--ppo-steps", "64", "--truth-sessions", "50",
            "--sim-sessions", "10", "--sim-kinds", "count", "--ppo-cache",
            str(tmp_path / "ppo.zip")]

    def tables(out: Path) -> list[str]:
        return [line for line in out.with_suffix(".md").read_text().splitlines()
                if line.startswith("|")]

    study.main([*argv, "--out", str(tmp_path / "whole")])
    calls = {"n": 0}
    real_collect = study.collect_logs

    def failing_collect(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the cf logs, then two parts done, then the kill
            raise KeyboardInterrupt
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(study, "collect_logs", failing_collect)
    with pytest.raises(KeyboardInterrupt):
        study.main([*argv, "--out", str(tmp_path / "parts")])
    saved = json.loads((tmp_path / "parts.progress.json").read_text())
    assert len(saved["done"]) == 2
    with pytest.raises(FileExistsError, match="--resume"):
        study.main([*argv, "--out", str(tmp_path / "parts")])
    monkeypatch.setattr(study, "collect_logs", real_collect)
    study.main([*argv, "--out", str(tmp_path / "parts"), "--resume"])
    assert tables(tmp_path / "parts") == tables(tmp_path / "whole")
    assert not (tmp_path / "parts.progress.json").exists()
