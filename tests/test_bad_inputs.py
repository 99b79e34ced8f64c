"""Bad input, table-driven: every case must raise a clear error that names what is wrong.

Each row is a call, the exception type it must raise and a pattern the message must
contain: the argument, the value or the file. Surfaces: env constructors (single and
vector), reset and step, the top-k wrappers, log files, checkpoints and the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import recgym  # noqa: F401  (registers the envs)
from recgym.cli import main
from recgym.core import TopKSlate, TopKSlateVector
from recgym.core.checkpoint import CheckpointError
from recgym.data import LogDataset, load_logs

ENVS = ["SyntheticMDP-v0", "RecSimu-v0", "RecSimuSlate-v0", "IRecGAN-v0", "GANUserModel-v0"]


def _make(env_id: str, **kwargs):
    return lambda: gym.make(env_id, **kwargs)


def _make_vec(env_id: str, num_envs=2, **kwargs):
    return lambda: gym.make_vec(env_id, num_envs=num_envs,
                                vectorization_mode="vector_entry_point", **kwargs)


def _constructor_cases() -> list:
    cases = []
    for env_id in ENVS:
        for value, error, pattern in [("2", TypeError, r"slate_size must be an integer, got '2'"),
                                      (None, TypeError, "slate_size must be an integer, got None"),
                                      (2.5, TypeError, "slate_size must be an integer, got 2.5"),
                                      (True, TypeError, "slate_size must be an integer"),
                                      (0, ValueError, r"slate_size must be in \[1, "),
                                      (-1, ValueError, r"slate_size must be in \[1, "),
                                      (10**6, ValueError, r"slate_size must be in \[1, \d+\]")]:
            if env_id == "RecSimu-v0":
                continue  # one item per step by definition: RecSimuSlate-v0 takes slate_size
            cases.append(pytest.param(_make(env_id, slate_size=value), error, pattern,
                                      id=f"{env_id}-slate_size={value!r}"))
        for value, pattern in [("cuda", "no CUDA device"), ("tpu", "device must be a torch"),
                               (3, "device must be a torch device"),
                               ("cuda:7", "no CUDA device|only")]:
            cases.append(pytest.param(_make(env_id, device=value), ValueError, pattern,
                                      id=f"{env_id}-device={value!r}"))
        for value, error, pattern in [(-3, ValueError, r"num_envs must be in \[1, inf\]"),
                                      (0, ValueError, r"num_envs must be in \[1, inf\]"),
                                      (2.5, TypeError, "num_envs must be an integer, got 2.5"),
                                      ("4", TypeError, "num_envs must be an integer, got '4'")]:
            cases.append(pytest.param(_make_vec(env_id, num_envs=value), error, pattern,
                                      id=f"{env_id}-num_envs={value!r}"))
        cases.append(pytest.param(_make_vec(env_id, max_episode_steps=0), ValueError,
                                  r"max_episode_steps must be in \[1, inf\]",
                                  id=f"{env_id}-max_episode_steps=0"))
        cases.append(pytest.param(_make_vec(env_id, compile="yes"), TypeError,
                                  "compile must be True or False", id=f"{env_id}-compile='yes'"))
    for key in ("num_items", "num_states", "history_length", "world_seed"):
        for value, error in [("abc", TypeError), (None, TypeError), (1.5, TypeError),
                             (-1, ValueError)]:
            cases.append(pytest.param(_make("SyntheticMDP-v0", **{key: value}), error,
                                      f"{key} must be", id=f"SyntheticMDP-{key}={value!r}"))
    for key in ("history_length",):
        for value, error in [("abc", TypeError), (0, ValueError)]:
            cases.append(pytest.param(_make("IRecGAN-v0", **{key: value}), error,
                                      f"{key} must be", id=f"IRecGAN-{key}={value!r}"))
    for kwargs, error, pattern in [
        ({"rewards": [float("nan"), 1.0]}, ValueError, r"rewards\[0\] must be finite"),
        ({"rewards": [0.0, float("inf")]}, ValueError, r"rewards\[1\] must be finite"),
        ({"rewards": [1.0]}, ValueError, "rewards needs 2 values, got 1"),
        ({"rewards": "01"}, TypeError, "rewards must be a sequence of numbers"),
        ({"rewards": [0, "x"]}, TypeError, r"rewards\[1\] must be a number"),
        ({"purchase_reward": float("nan")}, ValueError, "purchase_reward must be finite"),
        ({"purchase_reward": "big"}, TypeError, "purchase_reward must be a number"),
        ({"single_item": "yes"}, TypeError, "single_item must be True or False"),
    ]:
        cases.append(pytest.param(_make("RecSimu-v0", **kwargs), error, pattern,
                                  id=f"RecSimu-{kwargs}"))
    cases.append(pytest.param(_make("GANUserModel-v0", observe_ids="no"), TypeError,
                              "observe_ids must be True or False", id="GAN-observe_ids='no'"))
    cases.append(pytest.param(_make("SyntheticMDP-v0", observe_state=1), TypeError,
                              "observe_state must be True or False",
                              id="SyntheticMDP-observe_state=1"))
    return cases


def _reset(env_id: str, **kwargs):
    def call():
        gym.make(env_id).reset(**kwargs)
    return call


def _vector_reset(seed=None, options=None):
    def call():
        _make_vec("SyntheticMDP-v0", num_envs=3)().reset(seed=seed, options=options)
    return call


def _step(action, env_id="SyntheticMDP-v0"):
    def call():
        env = gym.make(env_id)
        env.reset(seed=0)
        env.step(action)
    return call


def _vector_step(actions):
    def call():
        envs = _make_vec("SyntheticMDP-v0", num_envs=2)()
        envs.reset(seed=0)
        envs.step(actions)
    return call


def _step_after_the_end():
    env = gym.make("SyntheticMDP-v0", slate_size=1)
    env.reset(seed=0)
    for _ in range(1000):  # the session ends at the first slate without a click
        if env.step([0])[2]:
            break
    env.step([0])


def _vector_step_before_reset():
    envs = _make_vec("SyntheticMDP-v0")()
    envs.step(envs.action_space.sample())


def _topk(scores, vector=False):
    def call():
        if vector:
            TopKSlateVector(_make_vec("SyntheticMDP-v0", num_envs=2)()).actions(scores)
        else:
            TopKSlate(gym.make("SyntheticMDP-v0")).action(scores)
    return call


def _step_cases() -> list:
    cases = []
    for env_id in ENVS:
        for seed, error, pattern in [(1.5, TypeError, "seed must be an integer, got 1.5"),
                                     ("3", TypeError, "seed must be an integer, got '3'"),
                                     (-1, ValueError, r"seed must be in \[0, "),
                                     (2**63, ValueError, r"seed must be in \[0, ")]:
            cases.append(pytest.param(_reset(env_id, seed=seed), error, pattern,
                                      id=f"{env_id}-reset(seed={seed!r})"))
    slate = list(range(10))
    cases += [
        pytest.param(_vector_reset(seed=2**63 - 2), ValueError, r"seed must be in \[0, ",
                     id="vector-seed-overflows-with-3-users"),
        pytest.param(_vector_reset(seed=[1, 2]), ValueError, "seed list needs 3 entries",
                     id="vector-seed-list-too-short"),
        pytest.param(_vector_reset(seed=[1, 2, 1.5]), TypeError, "seed must be an integer",
                     id="vector-seed-list-float"),
        pytest.param(_vector_reset(options={"reset_mask": [True, False]}), ValueError,
                     r"reset_mask must have shape \(3,\)", id="vector-reset-mask-shape"),
        pytest.param(_vector_step_before_reset, RuntimeError, "call envs.reset",
                     id="vector-step-before-reset"),
        pytest.param(_step_after_the_end, RuntimeError, "call env.reset",
                     id="single-step-after-termination"),
        pytest.param(_step(slate[:9]), ValueError, "slate", id="single-slate-too-short"),
        pytest.param(_step([*slate[:9], 50]), ValueError, "50", id="single-item-out-of-range"),
        pytest.param(_step([*slate[:9], -1]), ValueError, "-1", id="single-negative-item"),
        pytest.param(_step([0.5] * 10), (TypeError, ValueError), "integer|int",
                     id="single-float-slate"),
        pytest.param(_step("0123456789"), (TypeError, ValueError), "slate|action",
                     id="single-string-slate"),
        pytest.param(_step(9742, "RecSimu-v0"), ValueError, "9742", id="recsimu-item-9742"),
        pytest.param(_vector_step(np.zeros((3, 10), np.int64)), ValueError, "2",
                     id="vector-too-many-slates"),
        pytest.param(_vector_step(np.zeros((2, 4), np.int64)), ValueError, "slate|10",
                     id="vector-short-slates"),
        pytest.param(_topk(np.zeros(55, np.float32)), ValueError, r"shape \(50,\)",
                     id="topk-55-scores-for-50"),
        pytest.param(_topk(np.zeros((2, 55), np.float32), vector=True), ValueError,
                     r"shape \(2, 50\)", id="topk-vector-55-scores-for-50"),
        pytest.param(_topk(np.full(50, np.nan, np.float32)), ValueError, "NaN",
                     id="topk-nan-scores"),
    ]
    return cases


def _write(tmp, name: str, content: bytes | str):
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files of every kind, written once."""
    tmp = tmp_path_factory.mktemp("bad")
    good = pd.DataFrame({"session_id": [0, 0], "step": [0, 1], "slate": [[1, 2], [2, 3]],
                         "click": [1, -1]})
    LogDataset(good, num_items=5).save(tmp / "good.parquet")
    torch.save(torch.zeros(3), tmp / "bare.pt")
    torch.save({"kind": "recsimu", "config": {}, "state_dict": {}}, tmp / "recsimu_kind.pt")
    (tmp / "folder.pt").mkdir()
    return {
        "missing": tmp / "missing.parquet",
        "folder": tmp,
        "empty": _write(tmp, "empty.csv", b""),
        "binary": _write(tmp, "binary.csv", bytes(range(256))),
        "latin1": _write(tmp, "latin1.csv", "session_id,step\n\xe9t\xe9,0\n".encode("latin-1")),
        "not_a_log": _write(tmp, "table.csv", "a,b\n1,2\n"),
        "parquet_as_csv": _write(tmp, "logs.csv", (tmp / "good.parquet").read_bytes()),
        "csv_as_parquet": _write(tmp, "text.parquet", "session_id,step\n0,0\n"),
        "ckpt_missing": tmp / "nothing.pt",
        "ckpt_folder": tmp / "folder.pt",
        "ckpt_empty": _write(tmp, "empty.pt", b""),
        "ckpt_noise": _write(tmp, "noise.pt", bytes(range(256)) * 4),
        "ckpt_text": _write(tmp, "text.pt", "hello"),
        "ckpt_truncated": _write(tmp, "truncated.pt",
                                 (tmp / "recsimu_kind.pt").read_bytes()[:100]),
        "ckpt_bare": tmp / "bare.pt",
        "ckpt_recsimu": tmp / "recsimu_kind.pt",
        "good_logs": tmp / "good.parquet",
    }


FILE_CASES = [
    ("missing", load_logs, FileNotFoundError),
    ("folder", load_logs, ValueError),
    ("empty", load_logs, ValueError),
    ("binary", load_logs, ValueError),
    ("latin1", load_logs, ValueError),
    ("not_a_log", load_logs, ValueError),
    ("parquet_as_csv", load_logs, ValueError),
    ("csv_as_parquet", load_logs, ValueError),
]
CHECKPOINT_CASES = [
    ("ckpt_missing", FileNotFoundError), ("ckpt_folder", FileNotFoundError),
    ("ckpt_empty", CheckpointError), ("ckpt_noise", CheckpointError),
    ("ckpt_text", CheckpointError), ("ckpt_truncated", CheckpointError),
    ("ckpt_bare", CheckpointError),
]
CLI_CASES = [
    (["evaluate", "SyntheticMDP-v0", "--max-steps", "0"], "--max-steps"),
    (["evaluate", "SyntheticMDP-v0", "--max-steps", "-1"], "--max-steps"),
    (["evaluate", "SyntheticMDP-v0", "--sessions", "0"], "--sessions"),
    (["evaluate", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["evaluate", "SyntheticMDP-v0", "--policy", "nosuch"], "nosuch"),
    (["evaluate", "SyntheticMDP-v0", "--algo", "nosuch"], "--algo"),
    (["evaluate", "SyntheticMDP-v0", "--env-arg", "num_items"], "--env-arg"),
    (["evaluate", "SyntheticMDP-v0", "--env-arg", "num_items=abc"], "num_items"),
    (["evaluate", "SyntheticMDP-v0", "--env-arg", "slate_size=0"], "slate_size"),
    (["evaluate", "SyntheticMDP-v0", "--env-arg", "device=cuda"], "device"),
    (["generate-logs", "SyntheticMDP-v0", "--out", "logs.csv"], "--out"),
    (["generate-logs", "SyntheticMDP-v0", "--out", "no/such/folder/logs.parquet"], "--out"),
    (["generate-logs", "SyntheticMDP-v0", "--policy", "max", "--sessions", "-5",
      "--out", "x.parquet"], "--sessions"),
    (["fit", "recsimu", "--data", "FILE:binary"], "binary.csv"),
    (["fit", "recsimu", "--data", "FILE:missing"], "missing"),
    (["fit", "irecgan-user", "--data", "FILE:not_a_log"], "table.csv|session_id"),
    (["train", "mult-vae", "--set", "epochs=-1"], "epochs"),
    (["train", "mult-vae", "--set", "epochs=abc"], "epochs"),
    (["train", "mult-vae", "--set", "nosuch=1"], "nosuch"),
    (["train", "mult-vae", "--heldout", "-1"], "--heldout"),
    (["ope", "--policy", "random", "--logs", "FILE:empty"], "empty.csv"),
    (["data", "info", "FILE:latin1"], "latin1.csv"),
    (["evaluate", "RecSimu-v0", "--policy", "FILE:ckpt_text"], "text.pt"),
    (["evaluate", "RecSimu-v0", "--env-arg", "checkpoint=FILE:ckpt_recsimu"],
     "recsimu_kind.pt|config"),
    (["evaluate", "IRecGAN-v0", "--env-arg", "checkpoint=FILE:ckpt_recsimu"],
     "checkpoint of 'recsimu', expected 'irecgan-user'"),
    (["evaluate", "GANUserModel-v0", "--env-arg", "checkpoint=FILE:ckpt_bare"], "bare.pt"),
    (["rl", "NoSuchEnv-v0", "--steps", "8", "--out", "m.zip"],
     "argument ENV_ID: unknown env 'NoSuchEnv-v0'; registered: SyntheticMDP-v0"),
    (["rl", "SyntheticMDP-v0", "--algo", "dqn", "--steps", "8", "--out", "m.zip"],
     "argument --algo: DQN needs a Discrete action space.*MultiDiscrete: use one of ppo, a2c"),
    (["rl", "SyntheticMDP-v0", "--algo", "sac", "--steps", "8", "--out", "m.zip"], "--algo"),
    (["rl", "SyntheticMDP-v0", "--steps", "0", "--out", "m.zip"], "argument --steps"),
    (["rl", "SyntheticMDP-v0", "--steps", "8", "--out", "m.pt"],
     r"argument --out: .*must end in \.zip"),
    (["rl", "SyntheticMDP-v0", "--steps", "8", "--out", "no/such/folder/m.zip"],
     "argument --out: folder 'no/such/folder'"),
    (["rl", "SyntheticMDP-v0", "--steps", "8", "--out", "m.zip", "--set", "nosuch=1"],
     "argument --set: PPO has no setting 'nosuch'; allowed: .*learning_rate"),
    (["rl", "SyntheticMDP-v0", "--steps", "8", "--out", "m.zip", "--n-envs", "0"],
     "argument --n-envs"),
    (["rl", "SyntheticMDP-v0", "--steps", "8", "--out", "m.zip", "--env-arg", "slate_size=0"],
     "slate_size"),
]


def _raises(call: Callable[[], object], error, pattern: str) -> None:
    with pytest.raises(error) as caught:
        call()
    assert re.search(pattern, str(caught.value)), f"message does not name it: {caught.value}"


@pytest.mark.parametrize(("call", "error", "pattern"), _constructor_cases())
def test_constructor_arguments(call, error, pattern):
    _raises(call, error, pattern)


@pytest.mark.parametrize(("call", "error", "pattern"), _step_cases())
def test_reset_step_and_wrappers(call, error, pattern):
    _raises(call, error, pattern)


@pytest.mark.parametrize(("name", "loader", "error"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_log_files(files, name, loader, error):
    _raises(lambda: loader(files[name]), error, re.escape(files[name].name))


@pytest.mark.parametrize("env_id", ["RecSimu-v0", "IRecGAN-v0", "GANUserModel-v0"])
@pytest.mark.parametrize(("name", "error"), CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_env_checkpoints(files, env_id, name, error):
    _raises(_make(env_id, checkpoint=files[name]), error, re.escape(files[name].name))


@pytest.mark.parametrize(("argv", "pattern"), CLI_CASES, ids=[" ".join(c[0][:3]) + f"-{i}"
                                                               for i, c in enumerate(CLI_CASES)])
def test_cli(files, argv, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [str(files[a[5:]]) if a.startswith("FILE:") else
            a.replace(a[a.index("FILE:"):], str(files[a[a.index("FILE:") + 5:]]))
            if "FILE:" in a else a for a in argv]
    if argv[0] == "train":
        argv += ["--data", str(files["good_logs"]), "--out", str(tmp_path)]
    status = main(argv)
    error = capsys.readouterr().err.strip()
    # one line, or one line per problem for an invalid log (each with its fix); no traceback
    assert status == 2 and "Traceback" not in error, error
    assert error.startswith("recgym: error:") and re.search(pattern, error), error
    assert not list(tmp_path.glob("*.parquet")) + list(tmp_path.glob("*.zip")), \
        "nothing may be written on bad input"


def test_the_table_is_at_least_150_cases():
    total = (len(_constructor_cases()) + len(_step_cases()) + len(FILE_CASES)
             + 3 * len(CHECKPOINT_CASES) + len(CLI_CASES))
    assert total >= 150, total
