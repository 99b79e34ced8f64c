"""Speed of the off-policy estimators and of the bootstrap on 1 million logged slates (k = 10).

Three timings:

1. every log-based estimator on ready arrays (``OPEInputs``) of 1,000,000 rows;
2. the session bootstrap (200 resamples) of all of them together;
3. ``ope.evaluate`` end to end on a 1,000,000-page-view SyntheticMDP-v0 log (random
   logging, target pi_mix): log validation, observation rebuild, target and logging
   probabilities, reward model, estimates and bootstrap (``sim`` left out: its cost
   is that of simulating, see ``synthetic_mdp_throughput.py``).

Writes ``benchmarks/results/ope_speed.md``::

    nice -n 10 .venv/bin/python benchmarks/ope_speed.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recgym.evaluation import collect_logs, ope
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy

RESULTS = Path(__file__).parent / "results"
NAMES = ["dm", "ips", "snips", "dr", "switch-dr", "slate-ips", "iips", "rips", "pi"]


def synthetic_inputs(rows: int, k: int, seed: int) -> ope.OPEInputs:
    """Random but valid arrays of ``rows`` page views with slates of ``k``."""
    rng = np.random.default_rng(seed)
    position_reward = (rng.random((rows, k)) < 0.02).astype(np.float64)
    pscore_position = rng.uniform(0.01, 1.0, (rows, k))
    target_position = rng.uniform(0.0, 1.0, (rows, k))
    return ope.OPEInputs(
        reward=position_reward.sum(1), position_reward=position_reward,
        pscore=rng.uniform(1e-3, 1.0, rows), target_prob=rng.uniform(0.0, 1.0, rows),
        pscore_position=pscore_position, target_position=target_position,
        pscore_prefix=np.cumprod(pscore_position, 1), target_prefix=np.cumprod(target_position, 1),
        reward_hat_logged=rng.random(rows), reward_hat_target=rng.random(rows),
        session=np.arange(rows) // 3)


def main() -> None:
    """Time the three stages and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--out", default=str(RESULTS / "ope_speed.md"))
    args = parser.parse_args()
    lines = []
    started = time.perf_counter()
    inputs = synthetic_inputs(args.rows, 10, 0)
    lines.append(f"| build + validate OPEInputs | {time.perf_counter() - started:.2f} |")
    numerators, denominators = [], []
    total = 0.0
    for name in NAMES:
        estimator = ope.make_estimator(name)
        started = time.perf_counter()
        estimator.estimate(inputs)
        numerator, denominator = estimator.row_terms(inputs)
        seconds = time.perf_counter() - started
        total += seconds
        numerators.append(numerator)
        denominators.append(np.ones_like(numerator) if denominator is None else denominator)
        lines.append(f"| estimator `{name}` | {seconds:.3f} |")
    lines.append(f"| all 9 estimators | {total:.2f} |")
    started = time.perf_counter()
    ope.bootstrap_ratio(np.stack(numerators), np.stack(denominators), inputs.session,
                        n_bootstrap=args.bootstrap, seed=0)
    lines.append(f"| bootstrap, {args.bootstrap} resamples of sessions, 9 estimators | "
                 f"{time.perf_counter() - started:.2f} |")
    sim = SyntheticMDP()
    sessions = int(args.rows / 2.9)
    logs = collect_logs(sim, logging_policy("random", sim, seed=0), sessions, seed=0,
                        extra_observation_keys=("true_state",))
    logs = logs.iloc[: args.rows] if len(logs) > args.rows else logs
    n_rows = len(logs)
    for validate in (False, True):
        started = time.perf_counter()
        table = ope.evaluate(logging_policy("mix", sim, seed=1), logs, NAMES,
                             logging_policy=logging_policy("random", sim),
                             n_bootstrap=args.bootstrap, validate=validate)
        lines.append(f"| `ope.evaluate` end to end, {n_rows:,} page views "
                     f"({'with' if validate else 'without'} LogDataset validation) | "
                     f"{time.perf_counter() - started:.1f} |")
    header = [
        "# OPE speed: 1 million logged slates (k = 10)",
        "",
        "Command: `nice -n 10 .venv/bin/python benchmarks/ope_speed.py` on "
        f"{platform.machine()} ({os.cpu_count()} CPU cores, shared with other jobs), "
        f"numpy {np.__version__}, torch {torch.__version__}, pandas {pd.__version__}.",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    note = ("\nMost of the end-to-end time is the target itself: `evaluate` calls pi_mix's "
            "`act` (a torch argsort of 50 items per row) 8 times to average the reward model "
            "over target slates (`n_target_samples=8`; a deterministic target is called once).\n")
    text = "\n".join(header + lines) + "\n" + note + "\nLast `ope.evaluate` table:\n\n```\n" \
        + ope.format_table(table) + "\n```\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
