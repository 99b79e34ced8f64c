"""Do third-party agents learn on plain ``gym.make(id)``? SB3 PPO / DQN against random.

For every registered id, trains SB3 (PPO; DQN too where the action is ``Discrete``) on
``make_vec_env(id)`` copies of ``gym.make(id)`` with the policies and kwargs of
:mod:`recgym.integrations.sb3`, then rolls the greedy model and the uniformly random policy
out in the env's simulator on the same user seeds and writes mean returns with standard
errors, the margin in standard errors of the difference and the training speed to
``benchmarks/results/clients.md``::

    python benchmarks/clients.py                      # every id, the budgets below
    python benchmarks/clients.py --ids IRecGAN-v0 --budget-scale 0.5

Each finished run's row is kept in ``OUT.progress.json`` (atomically); a killed run
continues with ``--resume`` (same arguments) and skips the finished rows, which are
seeded, so the table equals an uninterrupted run's; ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import reporting

from recgym.cli.resume import add_resume_options, continues_interrupted_run, run_arguments
from recgym.data import load_progress, save_progress

MARGIN = 4.0
"""A run learns when its mean return beats random by this many standard errors."""


@dataclass(frozen=True)
class Run:
    """One training run: an id, an SB3 algorithm and a budget in env steps.

    The hyper-parameters and env copies are recgym's own (``algorithm_kwargs``,
    ``N_ENVS`` of :mod:`recgym.integrations.sb3`), which ``recgym rl`` trains with too.
    """

    env_id: str
    algorithm: str
    budget: int


RUNS = [
    Run("SyntheticMDP-v0", "PPO", 50_000),
    Run("RecSimu-v0", "PPO", 40_000),
    Run("RecSimu-v0", "DQN", 40_000),
    Run("RecSimuSlate-v0", "PPO", 40_000),
    Run("IRecGAN-v0", "PPO", 100_000),
    Run("GANUserModel-v0", "PPO", 30_000),
]


def train(run: Run, budget: int, seed: int = 0):
    """An SB3 model trained for ``budget`` env steps, and the seconds it took."""
    from recgym.integrations.sb3 import train_agent

    start = time.perf_counter()
    model = train_agent(run.env_id, run.algorithm, budget, seed=seed)
    return model, time.perf_counter() - start


def measure(run: Run, budget_scale: float = 1.0, n_sessions: int = 2000, seed: int = 0
            ) -> dict[str, Any]:
    """Train and compare one run: its row of the results table."""
    from recgym.integrations.sb3 import N_ENVS, compare_with_random

    budget = max(int(run.budget * budget_scale), N_ENVS[run.algorithm.lower()])
    model, seconds = train(run, budget, seed)
    return {"env_id": run.env_id, "algorithm": run.algorithm, "budget": budget,
            "seconds": seconds, "samples_per_s": budget / seconds,
            **compare_with_random(run.env_id, model, n_sessions, seed + 1)}


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
    add_resume_options(parser, "OUT.progress.json")
    args = parser.parse_args(argv)
    runs = [run for run in RUNS if args.ids is None or run.env_id in args.ids]
    if not runs:
        parser.error(f"no run for {args.ids}; ids: {sorted({run.env_id for run in RUNS})}")
    from recgym.integrations.sb3 import N_ENVS, algorithm_kwargs

    progress = Path(args.out).with_suffix(".progress.json")
    settings = run_arguments(args, "ids", "budget_scale", "sessions", "seed")
    rows = load_progress(progress, settings)["rows"] \
        if continues_interrupted_run(progress, args) else []
    for run in runs[len(rows):]:
        rows.append(measure(run, args.budget_scale, args.sessions, args.seed))
        save_progress(progress, settings, rows=rows)
        print("\n".join(format_rows(rows[-1:])[2:]), flush=True)
    hyper = "\n".join(f"* {run.env_id} {run.algorithm}: {N_ENVS[run.algorithm.lower()]} env(s), "
                      f"{algorithm_kwargs(run.env_id, run.algorithm)}" for run in runs)
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
    progress.unlink()


if __name__ == "__main__":
    main()
