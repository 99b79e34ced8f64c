"""``recgym rl ENV_ID --algo {ppo,a2c,dqn} --steps N --out model.zip``: train an SB3 agent.

The agent trains on ``make_vec_env(ENV_ID)`` copies of plain ``gym.make(ENV_ID)`` with the
policy, kwargs and hyper-parameters of :mod:`recgym.integrations.sb3` (those
``benchmarks/clients.py`` measured), and the zip it writes is what ``recgym evaluate``,
``ope`` and ``generate-logs`` take as ``--policy`` (loaded safely, no ``--trust-model``).
"""

from __future__ import annotations

import argparse
import shlex
import time
from typing import Any

from recgym.cli.arguments import env_id, key_value, model_output, positive_int

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


def cmd_rl(args: argparse.Namespace) -> None:
    """Train, write the zip atomically, and compare the model with the random policy."""
    from recgym.data import atomic_write
    from recgym.integrations.sb3 import N_ENVS, compare_with_random, train_agent

    env_kwargs, settings = dict(args.env_arg), dict(args.settings)
    _check(args, env_kwargs, settings)
    n_envs = args.n_envs or N_ENVS[args.algo]
    started = time.perf_counter()
    model = train_agent(args.env, args.algo, args.steps, n_envs=n_envs, seed=args.seed,
                        env_kwargs=env_kwargs, progress=not args.no_progress, **settings)
    with atomic_write(args.out, suffix=".zip") as temporary:
        model.save(temporary)
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
                    "generate-logs --policy`, and compare it with the random policy.")
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
    command.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    command.set_defaults(func=cmd_rl)
