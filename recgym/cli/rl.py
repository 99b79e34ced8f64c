"""``recgym rl ENV_ID --algo {ppo,a2c,dqn} --steps N --out model.zip``: train an SB3 agent.

The agent trains on ``make_vec_env(ENV_ID)`` copies of plain ``gym.make(ENV_ID)`` with the
policy, kwargs and hyper-parameters of :mod:`recgym.integrations.sb3` (those
``benchmarks/clients.py`` measured), and the zip it writes is what ``recgym evaluate``,
``ope`` and ``generate-logs`` take as ``--policy`` (loaded safely, no ``--trust-model``).

Training saves its state beside the zip every ``--save-every`` env steps, at the start of
a rollout (between two updates): the model with its optimizer, the env copies as they
are, a DQN's replay buffer and every random generator training draws from. A killed run
continues with ``--resume`` to the bit-identical model of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

from recgym.cli.arguments import env_id, key_value, model_output, positive_int
from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments

# recgym.integrations.sb3.ALGORITHMS (a test keeps them equal), known without torch
RL_ALGORITHMS = ("ppo", "a2c", "dqn")


def _check(args: argparse.Namespace, env_kwargs: dict[str, Any],
           settings: dict[str, Any]) -> None:
    """Refuse settings and an algorithm that cannot work, before training starts."""
    import gymnasium as gym

    from recgym.integrations.sb3 import check_algorithm, check_settings

    try:
        check_settings(args.algo, settings)
    except ValueError as error:
        raise ValueError(f"argument --set: {error}") from None
    action_space = gym.make(args.env, **env_kwargs).action_space
    try:
        check_algorithm(args.algo, args.env, action_space)
    except ValueError as error:
        raise ValueError(f"argument --algo: {error}") from None


def _evaluate_command(args: argparse.Namespace) -> str:
    """The ``recgym evaluate`` line that compares the written model with random."""
    words = ["recgym", "evaluate", args.env, "--policy", "random", str(args.out),
             "--algo", args.algo]
    for key, value in args.env_arg:
        words += ["--env-arg", f"{key}={value}"]
    return " ".join(map(shlex.quote, words))


SAVE_EVERY = 10_000
"""Default env steps between two saves of an ``rl`` run's progress."""


def progress_folder(out: Path) -> Path:
    """Where ``recgym rl`` keeps the progress of a run writing ``out``, until it ends."""
    return out.with_name(out.name + ".progress")


def _save_training(model: Any, path: Path) -> None:
    """Write everything ``model.learn`` needs to go on as if never stopped, atomically.

    SB3's zip holds the weights, the optimizer, the step counters and the last
    observations; the env copies (their users, step counts and generators) are pickled
    as they are, as are a DQN's replay buffer and the global generators of torch, NumPy
    and Python that action sampling and minibatches draw from.
    """
    import io
    import pickle
    import random

    import numpy as np
    import torch

    from recgym.data import atomic_write

    zipped = io.BytesIO()
    model.save(zipped)
    replay = None
    if getattr(model, "replay_buffer", None) is not None:
        replay = io.BytesIO()
        model.save_replay_buffer(replay)
        replay = replay.getvalue()
    state = {"model": zipped.getvalue(), "env": model.env, "replay_buffer": replay,
             "action_space": model.action_space.np_random.bit_generator.state,
             "torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    with atomic_write(path, suffix=".pkl") as temporary:
        temporary.write_bytes(pickle.dumps(state))


def _load_training(path: Path, algo: str) -> Any:
    """The model :func:`_save_training` wrote, its envs and generators where they were."""
    import io
    import pickle
    import random

    import numpy as np
    import stable_baselines3
    import torch

    state = pickle.loads(path.read_bytes())  # written by this command (see --resume)
    # load() reseeds every generator; they are set back after it
    model = getattr(stable_baselines3, algo.upper()).load(io.BytesIO(state["model"]),
                                                          device="cpu")
    model.set_env(state["env"], force_reset=False)
    if state["replay_buffer"] is not None:
        model.load_replay_buffer(io.BytesIO(state["replay_buffer"]))
    model.action_space.np_random.bit_generator.state = state["action_space"]
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    return model


def _saving_progress(folder: Path, run: dict[str, Any], every: int) -> Any:
    """An SB3 callback that saves the training into ``folder`` every ``every`` env steps.

    It saves at the start of a rollout, where the last update is done and the next
    rollout not begun, so the state is whole; the run's arguments go with the first save.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from recgym.data import save_progress

    class SaveProgress(BaseCallback):
        def _on_training_start(self) -> None:
            self.saved_at = self.model.num_timesteps

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps // every > self.saved_at // every:
                if not (folder / "run.json").exists():
                    save_progress(folder / "run.json", run)
                _save_training(self.model, folder / "training.pkl")
                self.saved_at = self.model.num_timesteps

        def _on_step(self) -> bool:
            return True

    return SaveProgress()


def cmd_rl(args: argparse.Namespace) -> None:
    """Train (or continue a killed run), write the zip atomically, compare with random."""
    import shutil

    from recgym.data import atomic_write, load_progress
    from recgym.integrations.sb3 import N_ENVS, ProgressBar, compare_with_random, train_agent

    env_kwargs, settings = dict(args.env_arg), dict(args.settings)
    _check(args, env_kwargs, settings)
    n_envs = args.n_envs or N_ENVS[args.algo]
    folder = progress_folder(args.out)
    run = {"env": args.env, **run_arguments(args, "algo", "steps", "seed", "settings",
                                           "env_arg"), "--n-envs": n_envs}
    started = time.perf_counter()
    model = None
    if continues_interrupted_run(folder, args):
        load_progress(folder / "run.json", run)
        if (folder / "training.pkl").exists():
            model = _load_training(folder / "training.pkl", args.algo)
            print(f"resuming at {model.num_timesteps:,} of {args.steps:,} env steps")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if model is None:  # built and its envs reset; learn() below is all of its training
        model = train_agent(args.env, args.algo, 0, n_envs=n_envs, seed=args.seed,
                            env_kwargs=env_kwargs, **settings)
    callbacks = [_saving_progress(folder, run, args.save_every)]
    if not args.no_progress:
        callbacks.append(ProgressBar())
    model.learn(args.steps - model.num_timesteps, callback=callbacks,
                reset_num_timesteps=False)
    with atomic_write(args.out, suffix=".zip") as temporary:
        model.save(temporary)
    if folder.exists():
        shutil.rmtree(folder)
    copies = f"{n_envs} env cop{'y' if n_envs == 1 else 'ies'}"
    print(f"trained {args.algo.upper()} on {args.env} for {args.steps:,} env steps ({copies}) "
          f"in {time.perf_counter() - started:.1f} s; wrote {args.out}")
    result = compare_with_random(args.env, model, args.eval_sessions, args.seed + 1,
                                 **env_kwargs)
    print(f"mean return over {args.eval_sessions} sessions: trained "
          f"{result['trained']:.3f} ± {result['trained_se']:.3f}, random "
          f"{result['random']:.3f} ± {result['random_se']:.3f} (difference: "
          f"{result['z']:+.1f} standard errors)")
    print(f"evaluate it: {_evaluate_command(args)}")


def add_rl_commands(subparsers: Any) -> None:
    """Add ``rl ENV_ID --algo ... --steps N --out model.zip`` to the ``recgym`` parser."""
    command = subparsers.add_parser(
        "rl", help="train a stable-baselines3 agent (PPO, A2C, DQN) on a registered env",
        description="Train a stable-baselines3 agent on copies of plain gym.make(ENV_ID) "
                    "with recgym's per-id policy and the hyper-parameters measured to learn "
                    "(docs/clients.md), write it as a model zip for `recgym evaluate / ope / "
                    "generate-logs --policy`, and compare it with the random policy. "
                    "The training state is saved beside the zip as it goes (a pickle: "
                    "--resume only runs of your own); --resume continues a killed run to "
                    "the model an uninterrupted run writes, bit for bit.")
    command.add_argument("env", type=env_id, metavar="ENV_ID",
                         help="registered env id, e.g. SyntheticMDP-v0")
    command.add_argument("--algo", type=str.lower, choices=RL_ALGORITHMS, default="ppo",
                         help="stable-baselines3 algorithm (dqn: Discrete actions only, "
                              "RecSimu-v0); default ppo")
    command.add_argument("--steps", type=positive_int, required=True, metavar="N",
                         help="env steps of training, summed over the copies (budgets that "
                              "learn: docs/clients.md, e.g. 50000 for SyntheticMDP-v0)")
    command.add_argument("--out", type=model_output, required=True, metavar="MODEL.zip",
                         help="model file to write (.zip) in an existing folder")
    command.add_argument("--n-envs", type=positive_int, default=None, metavar="N",
                         help="env copies to train on (default 8; dqn: 1)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--set", dest="settings", action="append", default=[],
                         type=key_value, metavar="KEY=VALUE",
                         help="algorithm setting, e.g. --set learning_rate=3e-4 (repeatable)")
    command.add_argument("--env-arg", action="append", default=[], type=key_value,
                         metavar="KEY=VALUE",
                         help="env constructor argument, repeatable (num_items=100)")
    command.add_argument("--eval-sessions", type=positive_int, default=200, metavar="N",
                         help="sessions of the closing comparison with random (default 200)")
    command.add_argument("--save-every", type=positive_int, default=SAVE_EVERY, metavar="N",
                         help="save the training state every N env steps, at the next "
                              f"rollout start (default {SAVE_EVERY:,}): what a killed run "
                              "loses at most, plus a rollout")
    add_resume_options(command, "MODEL.zip.progress/")
    command.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    command.set_defaults(func=cmd_rl)
