"""User-steps per second of a recgym env: batched vector path vs Gymnasium's SyncVectorEnv.

All paths run in this process, interleaved, several times; the table reports medians and
the median of the per-repeat ratios, since shared machines are noisy. Actions are drawn
before timing. A long run at the largest N records resident memory to show it stays flat.

    python benchmarks/env_throughput.py --env SyntheticMDP-v0 [--quick]
    python benchmarks/env_throughput.py --env RecSimu-v0 --sizes 1 64 1024
    python benchmarks/env_throughput.py --env IRecGAN-v0 --sizes 1 64 1024 \
        --env-kwarg checkpoint=runs/irecgan-512.pt \
        --out benchmarks/results/env_throughput_irecgan_v0_hidden512.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import gymnasium as gym
from reporting import machine_description

import recgym  # noqa: F401  (registers the envs)
from recgym.data import atomic_write


def resident_mib() -> float:
    """Resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def steps_per_second(envs: gym.vector.VectorEnv, actions: list, seconds: float,
                     min_steps: int) -> float:
    """User-steps per second of ``envs.step`` over at least ``seconds`` and ``min_steps``."""
    envs.reset(seed=0)
    for i in range(3):
        envs.step(actions[i % len(actions)])
    steps, started = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        envs.step(actions[steps % len(actions)])
        steps += 1
    return steps * envs.num_envs / (time.perf_counter() - started)


def measure(env_id: str, num_envs: int, repeats: int, seconds: float,
            kwargs: dict[str, str]) -> dict[str, float]:
    """Median throughput of the three paths at one batch size, and the median ratios."""
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                          **kwargs)
    fused = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                         compile=True, **kwargs)
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kwargs)] * num_envs)
    vector.action_space.seed(0)
    actions = [vector.action_space.sample() for _ in range(16)]
    fast, fastest, slow = [], [], []
    for _ in range(repeats):
        fast.append(steps_per_second(vector, actions, seconds, min_steps=20))
        fastest.append(steps_per_second(fused, actions, seconds, min_steps=20))
        slow.append(steps_per_second(sync, actions, seconds / 2, min_steps=2))
    return {"vector": statistics.median(fast), "compiled": statistics.median(fastest),
            "sync": statistics.median(slow),
            "ratio": statistics.median([f / s for f, s in zip(fast, slow, strict=True)]),
            "ratio_compiled": statistics.median([f / s for f, s in
                                                 zip(fastest, slow, strict=True)]),
            "spread": (max(fast) - min(fast)) / 2 / statistics.median(fast)}


def memory_trace(env_id: str, num_envs: int, steps: int,
                 kwargs: dict[str, str]) -> list[tuple[int, float]]:
    """Resident memory every ``steps // 5`` steps of a long vector-env run."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)
    envs.reset(seed=0)
    envs.action_space.seed(1)
    action = envs.action_space.sample()
    trace = []
    for step in range(steps + 1):
        if step % (steps // 5) == 0:
            trace.append((step, resident_mib()))
        envs.step(action)
    return trace


def main() -> None:
    """Run the benchmark and write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="SyntheticMDP-v0", help="registered env id")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 4096, 16384])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="constructor argument of the env (a string), repeatable")
    parser.add_argument("--out", help="results file (default benchmarks/results/"
                                      "env_throughput_<env>.md)")
    args = parser.parse_args()
    kwargs = dict(pair.split("=", 1) for pair in args.env_kwarg)
    out = Path(args.out or "benchmarks/results/env_throughput_"
                           f"{args.env.lower().replace('-', '_')}.md")
    repeats, seconds = (2, 0.5) if args.quick else (3, 2.0)
    rows = []
    for num_envs in args.sizes:
        result = measure(args.env, num_envs, repeats, seconds, kwargs)
        rows.append((num_envs, result))
        print(f"N={num_envs:>6}: vector {result['vector']:>12,.0f}/s  compiled "
              f"{result['compiled']:>12,.0f}/s  sync {result['sync']:>9,.0f}/s  ratio "
              f"{result['ratio']:>7.1f}x / {result['ratio_compiled']:>7.1f}x", flush=True)
    largest = max(args.sizes)
    trace = memory_trace(args.env, largest, 2_000 if args.quick else 20_000, kwargs)
    print("RSS MiB over the long run:", [f"{mib:.0f}" for _, mib in trace])

    command = (f"python benchmarks/env_throughput.py --env {args.env} --sizes "
               + " ".join(map(str, args.sizes)) + (" --quick" if args.quick else "")
               + "".join(f" --env-kwarg {pair}" for pair in args.env_kwarg))
    lines = [
        f"# {args.env} throughput",
        "",
        f"Command: `{command}` ({machine_description('gymnasium')}).",
        "",
        f"User-steps per second, median of {repeats} interleaved repeats; the ratio is the",
        "median of per-repeat ratios. Vector: `gym.make_vec(..., vectorization_mode="
        "\"vector_entry_point\")` (numpy actions in, numpy observations out, next-step "
        "autoreset), eager by default; compiled: the same with `compile=True` (each step "
        "fused by `torch.compile`, compilation excluded). Sync: Gymnasium's `SyncVectorEnv` "
        "over `gym.make` single envs. Spread: half the range of the eager repeats over their "
        "median.",
        "",
        "| N | vector, eager | vector, compiled | SyncVectorEnv | eager / sync | "
        "compiled / sync | spread |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for num_envs, result in rows:
        lines.append(f"| {num_envs:,} | {result['vector']:,.0f} | {result['compiled']:,.0f} | "
                     f"{result['sync']:,.0f} | {result['ratio']:,.1f}x | "
                     f"{result['ratio_compiled']:,.1f}x | ±{100 * result['spread']:.0f}% |")
    lines += ["", f"Resident memory (MiB) over {trace[-1][0]:,} steps at N = {largest:,}: " +
              ", ".join(f"step {step:,}: {mib:.0f}" for step, mib in trace) + "."]
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
