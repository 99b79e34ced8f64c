"""Vector-env throughput in a fresh process, with glibc's default malloc and a tuned one.

A vector step allocates its outputs afresh: GANUserModel-v0's observation alone is 7.6 MB
at N = 1,024. glibc serves blocks this large with ``mmap`` and returns them on ``free``,
or trims the heap, so every step can pay page faults on new memory; how much depends on
what the process allocated before (glibc raises its thresholds as it goes). This script
measures each env in fresh processes, alternating glibc's defaults with fixed thresholds
(``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, 1 GiB: freed memory stays in
the heap for the next step), and reports medians and per-pair ratios.

    OMP_NUM_THREADS=1 python benchmarks/allocator.py \
        --env SyntheticMDP-v0:4096 IRecGAN-v0:1024 RecSimu-v0:1024 GANUserModel-v0:1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

import reporting
from step_profile import env_and_size

TUNED = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def child(env_id: str, num_envs: int, seconds: float) -> None:
    """Print the user-steps per second of one fresh vector env (the measured process)."""
    import gymnasium as gym
    from env_throughput import steps_per_second  # imports recgym, which registers the envs

    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(16)]
    rate = steps_per_second(envs, actions, seconds, min_steps=1, warm_up=30)
    print(rate, os.environ.get("MALLOC_MMAP_THRESHOLD_", "default"))


def measure(env_id: str, num_envs: int, seconds: float, tuned: bool) -> float:
    """User-steps per second of a fresh process, with or without the tuned thresholds."""
    environment = {**os.environ, **(TUNED if tuned else {})}
    if not tuned:
        for name in TUNED:
            environment.pop(name, None)
    done = subprocess.run([sys.executable, __file__, "--child", env_id, str(num_envs),
                           str(seconds)], env=environment, check=True, capture_output=True,
                          text=True)
    rate, threshold = done.stdout.split()[-2:]
    if threshold != (TUNED["MALLOC_MMAP_THRESHOLD_"] if tuned else "default"):
        raise RuntimeError(f"the measured process saw MALLOC_MMAP_THRESHOLD_={threshold}")
    return float(rate)


def main() -> None:
    """Alternate default and tuned processes per env, write the Markdown table."""
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", type=env_and_size, required=True, metavar="ID:N")
    parser.add_argument("--pairs", type=int, default=3, help="default / tuned process pairs")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed per process")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--out", default=str(reporting.RESULTS / "allocator.md"))
    args = parser.parse_args()
    rows = []
    for env_id, num_envs in args.env:
        default, tuned = [], []
        for _ in range(args.pairs):
            default.append(measure(env_id, num_envs, args.seconds, tuned=False))
            tuned.append(measure(env_id, num_envs, args.seconds, tuned=True))
        ratios = [t / d for t, d in zip(tuned, default, strict=True)]
        rows.append(f"| {env_id} | {num_envs:,} | {statistics.median(default):,.0f} "
                    f"({min(default):,.0f}-{max(default):,.0f}) | "
                    f"{statistics.median(tuned):,.0f} ({min(tuned):,.0f}-{max(tuned):,.0f}) | "
                    f"{statistics.median(ratios):.2f}x |")
        print(rows[-1], flush=True)
    settings = " ".join(f"{name}={value}" for name, value in TUNED.items())
    lines = ["# Vector-env throughput and glibc's allocator", "",
             f"Command: `{reporting.command_line()}` "
             f"({reporting.machine_description()}).", "",
             f"Also running on the machine: {args.load_note}.", "",
             f"User-steps per second of an eager vector env (`gym.make_vec`, random slates) "
             f"in a fresh process, {args.seconds:g} s after 30 warm-up steps; {args.pairs} "
             f"pairs of processes, default then tuned (`{settings}`), medians with the range "
             "and the median of per-pair ratios.", "",
             "| env | N | glibc defaults | tuned thresholds | tuned / default |",
             "|---|---:|---:|---:|---:|", *rows]
    print(f"wrote {reporting.write_results(args.out, chr(10).join(lines))}")


if __name__ == "__main__":
    main()
