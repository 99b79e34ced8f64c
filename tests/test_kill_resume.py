"""Nothing is lost (slow): a command killed with SIGKILL resumes to the uninterrupted result.

A killed writer never leaves a partial file at the output path either.

Run with ``pytest -m slow tests/test_kill_resume.py``.
"""

from __future__ import annotations

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

from recgym.core.checkpoint import read_checkpoint_file
from recgym.data import LogDataset
from recgym.evaluation import collect_logs
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


@pytest.mark.slow
def test_killed_log_generation_leaves_no_partial_file(tmp_path):
    out = tmp_path / "logs.parquet"
    argv = ["generate-logs", "SyntheticMDP-v0", "--policy", "mix", "--sessions", "200000",
            "--out", str(out)]
    process = _recgym(*argv)
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not out.exists()
    _finish(*argv[:5], "2000", "--out", str(out))
    first = pd.read_parquet(out)
    _finish(*argv[:5], "2000", "--out", str(tmp_path / "again.parquet"))
    pd.testing.assert_frame_equal(first, pd.read_parquet(tmp_path / "again.parquet"))
