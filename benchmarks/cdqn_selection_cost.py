"""Cascading DQN action selection time against the number of candidates (Chen et al. 2019).

Algorithm 1 picks a slate of ``k`` items with ``k`` passes over the ``K`` candidates, so
its cost should grow linearly in ``K`` (sec. 5.1: ``O(k |I|)``), where enumerating slates
would grow like ``K^k``. Untrained networks (selection cost does not depend on the
weights), 1024 users per call, random item features of ``d = 21`` as in GANUserModel-v0.

    python benchmarks/cdqn_selection_cost.py
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

from agents.cascading_dqn import CascadingDQN, CascadingDQNConfig
from recgym.data import atomic_write


def time_act(agent: CascadingDQN, observation: dict, repeats: int) -> float:
    """Median CPU time of this process for ``agent.act`` on ``observation``, in seconds.

    CPU time rather than wall time: the benchmark machine is shared with other jobs.
    """
    agent.act(observation)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        agent.act(observation)
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    """Time both variants for every pool size and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, nargs="+", default=[40, 400, 4000])
    parser.add_argument("--users", type=int, default=1024)
    parser.add_argument("--slate-size", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/cdqn_selection_cost.md")
    args = parser.parse_args()
    d, m, k = 21, 10, args.slate_size
    generator = torch.Generator().manual_seed(0)
    rows = []
    for variant in ("cascading", "additive"):
        agent = CascadingDQN(CascadingDQNConfig(feature_dim=d, history=m, slate_size=k,
                                                variant=variant, hidden=args.hidden))
        base = None
        for size in args.candidates:
            observation = {
                "history": torch.rand(args.users, m * d, generator=generator),
                "candidates": torch.rand(args.users, size * d, generator=generator)}
            seconds = time_act(agent, observation, args.repeats)
            base = base or (seconds, size)
            rows.append(f"| {agent.name} | {size} | {1000 * seconds:.1f} | "
                        f"{1e6 * seconds / args.users:.1f} | "
                        f"{(seconds / base[0]) / (size / base[1]):.2f} | "
                        f"{math.comb(size, k):.2e} |")
            print(rows[-1], flush=True)
    lines = ["# Cascading DQN: selection time against the number of candidates", "",
             f"Command: `{' '.join(['python benchmarks/cdqn_selection_cost.py', *sys.argv[1:]])}` "
             f"({date.today().isoformat()}); {args.users} users per call, k = {k}, d = {d}, "
             f"m = {m}, hidden l = {args.hidden}; CPU time of the process "
             "(OMP_NUM_THREADS=1; the 2 cores were shared with other jobs, so wall time "
             "would mislead), median of "
             f"{args.repeats} calls after a warm-up. 'time / K, relative' is the time per "
             "candidate relative to the smallest pool: about 1 means linear in K.", "",
             "| policy | candidates K | CPU ms per call | µs per user | time / K, relative | "
             "slates C(K, k) |", "|---|---|---|---|---|---|", *rows, ""]
    with atomic_write(Path(args.out)) as temporary:
        temporary.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
