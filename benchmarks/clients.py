"""Do third-party agents learn on plain ``gym.make(id)``? SB3 PPO / DQN against random.

For every registered id, trains SB3 (PPO; DQN too where the action is ``Discrete``) on
``make_vec_env(id)`` copies of ``gym.make(id)`` with the policies and kwargs of
:mod:`recgym.integrations.sb3`, then rolls the greedy model and the uniformly random policy
out in the env's simulator on the same user seeds and writes mean returns with standard
errors, the margin in standard errors of the difference and the training speed to
``benchmarks/results/clients.md``::

    python benchmarks/clients.py                      # every id, the budgets below
    python benchmarks/clients.py --ids IRecGAN-v0 --budget-scale 0.5
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import reporting

MARGIN = 4.0
"""A run learns when its mean return beats random by this many standard errors."""


@dataclass(frozen=True)
class Run:
    """One training run: an id, an SB3 algorithm, a budget in env steps, hyperparameters."""

    env_id: str
    algorithm: str
    budget: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 8


_PPO = {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3,
        "ent_coef": 0.01}
_DQN = {"learning_starts": 1_000, "batch_size": 64, "train_freq": 4, "learning_rate": 1e-3,
        "exploration_fraction": 0.3, "target_update_interval": 1_000, "buffer_size": 50_000}

RUNS = [
    Run("SyntheticMDP-v0", "PPO", 50_000, _PPO),
    Run("RecSimu-v0", "PPO", 40_000, _PPO),
    Run("RecSimu-v0", "DQN", 40_000, _DQN, n_envs=1),
    Run("RecSimuSlate-v0", "PPO", 40_000, _PPO),
    Run("IRecGAN-v0", "PPO", 20_000, _PPO),
    Run("GANUserModel-v0", "PPO", 30_000, _PPO),
]


def train(run: Run, budget: int, seed: int = 0):
    """An SB3 model trained for ``budget`` env steps, and the seconds it took."""
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    from recgym.integrations.sb3 import policy_class, policy_kwargs

    algorithm = {"PPO": PPO, "DQN": DQN}[run.algorithm]
    torch.manual_seed(seed)
    venv = make_vec_env(run.env_id, n_envs=run.n_envs, seed=seed)
    model = algorithm(policy_class(algorithm), venv, policy_kwargs=policy_kwargs(run.env_id),
                      seed=seed, device="cpu", **run.hyperparameters)
    start = time.perf_counter()
    model.learn(budget)
    return model, time.perf_counter() - start


def compare(env_id: str, model, n_sessions: int = 2000, seed: int = 1) -> dict[str, float]:
    """Greedy ``model`` against the random policy, rolled out on the same user seeds."""
    import gymnasium as gym

    from recgym.core import RandomPolicy, SB3Policy
    from recgym.core.env import num_candidates
    from recgym.evaluation import evaluate_policy

    env = gym.make(env_id)
    simulator, max_steps = env.unwrapped.simulator, env.spec.max_episode_steps
    trained = evaluate_policy(simulator, SB3Policy(model, env.unwrapped.observation_keys,
                                                   simulator.slate_size),
                              n_sessions, seed=seed, max_steps=max_steps)
    random = evaluate_policy(simulator, RandomPolicy(num_candidates(simulator),
                                                     simulator.slate_size, seed=seed),
                             n_sessions, seed=seed, max_steps=max_steps)
    std_err = math.hypot(trained.return_std_err, random.return_std_err)
    return {"trained": trained.mean_return, "trained_se": trained.return_std_err,
            "random": random.mean_return, "random_se": random.return_std_err,
            "z": (trained.mean_return - random.mean_return) / std_err}


def measure(run: Run, budget_scale: float = 1.0, n_sessions: int = 2000, seed: int = 0
            ) -> dict[str, Any]:
    """Train and compare one run: its row of the results table."""
    budget = max(int(run.budget * budget_scale), run.n_envs)
    model, seconds = train(run, budget, seed)
    return {"env_id": run.env_id, "algorithm": run.algorithm, "budget": budget,
            "seconds": seconds, "samples_per_s": budget / seconds,
            **compare(run.env_id, model, n_sessions, seed + 1)}


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The results as Markdown table lines."""
    lines = ["| id | library | algorithm | budget (env steps) | return, trained | "
             "return, random | margin (s.e. of diff.) | learns | training samples/s |",
             "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        lines.append(
            f"| {row['env_id']} | stable-baselines3 | {row['algorithm']} | {row['budget']:,} | "
            f"{row['trained']:.3f} ± {row['trained_se']:.3f} | "
            f"{row['random']:.3f} ± {row['random_se']:.3f} | {row['z']:+.1f} | "
            f"{'yes' if row['z'] >= MARGIN else 'no'} | {row['samples_per_s']:,.0f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the chosen ids and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", nargs="+", default=None, help="env ids (default: all)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply every budget (env steps) by this")
    parser.add_argument("--sessions", type=int, default=2000,
                        help="evaluation sessions per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(reporting.RESULTS / "clients.md"))
    args = parser.parse_args(argv)
    runs = [run for run in RUNS if args.ids is None or run.env_id in args.ids]
    if not runs:
        parser.error(f"no run for {args.ids}; ids: {sorted({run.env_id for run in RUNS})}")
    rows = []
    for run in runs:
        rows.append(measure(run, args.budget_scale, args.sessions, args.seed))
        print("\n".join(format_rows(rows[-1:])[2:]), flush=True)
    hyper = "\n".join(f"* {run.env_id} {run.algorithm}: {run.n_envs} env(s), "
                      f"{run.hyperparameters}" for run in runs)
    text = "\n".join([
        "# Third-party agents on plain gym.make: SB3 against the random policy", "",
        f"Command: `{reporting.command_line()}`", "",
        f"Machine: {reporting.machine_description('stable_baselines3', 'gymnasium')}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", "",
        "Each model trains on `make_vec_env(id)` (copies of plain `gym.make(id)`) with "
        "`policy_class(algorithm)` and `policy_kwargs(id)` of `recgym.integrations.sb3`, "
        f"then acts greedily; returns are means over {args.sessions} simulated sessions "
        "(registered episode limit) ± standard error, the random policy (distinct "
        "uniform items) on the same user seeds. Margin: difference over its standard "
        f"error; a run learns at >= {MARGIN:g}.", "",
        *format_rows(rows), "", "Hyperparameters (SB3 defaults otherwise):", "", hyper])
    print(f"wrote {reporting.write_results(args.out, text)}")


if __name__ == "__main__":
    main()
