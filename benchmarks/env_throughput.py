"""User-steps per second of a recgym env: batched vector path vs Gymnasium's SyncVectorEnv.

All paths run in this process, interleaved, several times; the table reports medians and
the median of the per-repeat ratios, since shared machines are noisy. Actions are drawn
before timing. A long run at the largest N records resident memory to show it stays flat.

``--contention`` adds a table measured with and without a CPU-bound neighbour: a second
process, started by this script, that runs a PPO-style update loop (an MLP's forward,
backward and Adam step) on ``--neighbour-threads`` torch threads. It is paused
(``SIGSTOP``) while the quiet columns run and resumed for the contended ones, so quiet and
contended runs interleave in one process like the other paths; the ratio is contended
(recgym's default threads) over quiet (one thread), issue 19's target being at least 0.5.

    python benchmarks/env_throughput.py --env SyntheticMDP-v0 [--quick]
    python benchmarks/env_throughput.py --env RecSimu-v0 --sizes 1 64 1024
    python benchmarks/env_throughput.py --env GANUserModel-v0 --sizes 1024 --quick --contention
    python benchmarks/env_throughput.py --env IRecGAN-v0 --sizes 1 1024 --quick \
        --baseline-tree /tmp/recgym_before --baseline-label "commit abc1234"
    python benchmarks/env_throughput.py --env IRecGAN-v0 --sizes 1 64 1024 \
        --env-kwarg checkpoint=runs/irecgan-512.pt \
        --out benchmarks/results/env_throughput_irecgan_v0_hidden512.md
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch
from reporting import machine_description, register_baseline

import recgym  # noqa: F401  (registers the envs)
from recgym.core.threads import NUM_THREADS_VARIABLE, resolve_num_threads
from recgym.data import atomic_write

CONTENTION_TARGET = 0.5  # issue 19: contended (default threads) / quiet (one thread)
_PR_SET_PDEATHSIG = 1  # prctl option: a signal for this process when its parent dies


def resident_mib() -> float:
    """Resident set size of this process, MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def steps_per_second(envs: gym.vector.VectorEnv, actions: list, seconds: float,
                     min_steps: int, warm_up: int = 3) -> float:
    """User-steps per second of ``envs.step`` over at least ``seconds`` and ``min_steps``.

    ``warm_up`` untimed steps come first: for a compiled env, enough to pass the episode
    limit, so that the graph of a step with autoresets is compiled before timing starts.
    """
    envs.reset(seed=0)
    for i in range(warm_up):
        envs.step(actions[i % len(actions)])
    steps, started = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        envs.step(actions[steps % len(actions)])
        steps += 1
    return steps * envs.num_envs / (time.perf_counter() - started)


def measure(env_id: str, num_envs: int, repeats: int, seconds: float,
            kwargs: dict[str, str], baseline_id: str | None = None,
            sync: bool = True) -> dict[str, float]:
    """Median throughput of the three paths at one batch size, and the median ratios.

    With ``baseline_id`` (see :func:`reporting.register_baseline`) its eager vector env
    runs too: ``before`` and the median per-repeat ``speedup`` of eager after / before.
    Without ``sync`` the ``SyncVectorEnv`` is not built (``num_envs`` single envs, each
    with its own copy of a learned model, outgrow memory at large ``N``).
    """
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                          **kwargs)
    fused = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                         compile=True, **kwargs)
    sync_env = (gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **kwargs)] * num_envs)
                if sync else None)
    vector.action_space.seed(0)
    actions = [vector.action_space.sample() for _ in range(16)]
    before = None if baseline_id is None else gym.make_vec(
        baseline_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    fast, fastest, slow, old = [], [], [], []
    for _ in range(repeats):
        fast.append(steps_per_second(vector, actions, seconds, min_steps=20))
        if before is not None:
            old.append(steps_per_second(before, actions, seconds, min_steps=20))
        fastest.append(steps_per_second(fused, actions, seconds, min_steps=20,
                                        warm_up=(gym.spec(env_id).max_episode_steps or 0) + 3))
        if sync_env is not None:
            slow.append(steps_per_second(sync_env, actions, seconds / 2, min_steps=2))
    compared = {} if before is None else {
        "before": statistics.median(old),
        "speedup": statistics.median([f / o for f, o in zip(fast, old, strict=True)])}
    synced = {} if sync_env is None else {
        "sync": statistics.median(slow),
        "ratio": statistics.median([f / s for f, s in zip(fast, slow, strict=True)]),
        "ratio_compiled": statistics.median([f / s for f, s in zip(fastest, slow, strict=True)])}
    return {**compared, **synced, "vector": statistics.median(fast),
            "compiled": statistics.median(fastest),
            "spread": (max(fast) - min(fast)) / 2 / statistics.median(fast)}


def target_lines(env_id: str, results: dict[int, dict[str, float]]) -> list[str]:
    """Issue 19's vector-path targets, met or not, for the sizes it names that were run.

    SyntheticMDP-v0 has one target per path; a learned env's target is on the default
    (eager) path, and the compiled figure is given beside it.
    """
    if env_id == "SyntheticMDP-v0":
        size, wanted = 4096, (("eager", "vector", 10e6), ("compiled", "compiled", 20e6))
    else:
        size, wanted = 1024, (("eager (the default)", "vector", 300e3),
                              ("compiled (`compile=True`, not the default)", "compiled", 300e3))
    if size not in results:
        return []
    lines = ["", f"Targets (issue 19) at N = {size:,}:", ""]
    for label, key, target in wanted:
        value = results[size][key]
        lines.append(f"* {label} at least {target:,.0f} user-steps/s: {value:,.0f} "
                     f"({value / target:.2f} of it, {'met' if value >= target else 'not met'}).")
    return lines


def run_neighbour(threads: int) -> None:
    """The CPU-bound neighbour of ``--contention``: PPO-style updates until it is killed.

    A 512-256-256-64 tanh MLP, a fixed batch of 512 observations, forward, backward and an
    Adam step, on ``threads`` torch threads: the work an agent's update puts on the cores.
    It never outlives the benchmark that started it, even one killed while the neighbour
    was paused: on Linux the kernel kills it with its parent (``PR_SET_PDEATHSIG``), and
    elsewhere the loop ends when its parent changes.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.Tanh(),
                                  torch.nn.Linear(256, 256), torch.nn.Tanh(),
                                  torch.nn.Linear(256, 64))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    batch = torch.randn(512, 512, generator=generator)
    print("ready", flush=True)
    while os.getppid() == parent:
        loss = network(batch).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


class Neighbour:
    """A second process running :func:`run_neighbour`, paused except inside :meth:`running`."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--run-neighbour", str(threads)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the neighbour process did not start (see its stderr above)")
        os.kill(self.process.pid, signal.SIGSTOP)

    @contextlib.contextmanager
    def running(self, warm_up: float = 0.2):
        """Resume the neighbour for the body (after ``warm_up`` seconds), then pause it again."""
        os.kill(self.process.pid, signal.SIGCONT)
        try:
            time.sleep(warm_up)
            yield
        finally:
            os.kill(self.process.pid, signal.SIGSTOP)

    def close(self) -> None:
        """Stop the neighbour for good."""
        self.process.kill()
        self.process.wait()


def python_loop_rate(seconds: float) -> float:
    """Iterations per second of a plain Python loop: the share of a core this process gets."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10_000):
            count += 1
    return count / (time.perf_counter() - started)


def measure_contention(env_id: str, num_envs: int, repeats: int, seconds: float,
                       kwargs: dict[str, str], neighbour: Neighbour,
                       crowded_threads: int) -> dict[str, float]:
    """Eager vector env alone and next to ``neighbour``: medians and the contention ratio.

    Three envs: recgym's default threads, one thread, and ``crowded_threads`` (torch's own
    default, one per core: what the env used before recgym set its threads). A plain
    Python loop runs in both conditions as a control: its ratio is the share of the CPU
    the neighbour leaves any code here (about 1 on a machine with a free core).
    """
    def make(**extra):
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                            **extra, **kwargs)

    default, single, crowded = make(), make(num_threads=1), make(num_threads=crowded_threads)
    default.action_space.seed(0)
    actions = [default.action_space.sample() for _ in range(16)]
    rates: dict[str, list[float]] = {key: [] for key in
                                     ("quiet_one", "quiet_default", "contended_default",
                                      "contended_crowded", "quiet_loop", "contended_loop")}
    for _ in range(repeats):
        rates["quiet_one"].append(steps_per_second(single, actions, seconds, min_steps=5))
        rates["quiet_default"].append(steps_per_second(default, actions, seconds, min_steps=5))
        rates["quiet_loop"].append(python_loop_rate(seconds / 2))
        with neighbour.running():
            rates["contended_default"].append(steps_per_second(default, actions, seconds,
                                                               min_steps=5))
            rates["contended_crowded"].append(steps_per_second(crowded, actions, seconds,
                                                               min_steps=5))
            rates["contended_loop"].append(python_loop_rate(seconds / 2))

    def ratio(contended: str, quiet: str) -> float:
        return statistics.median([c / q for c, q in zip(rates[contended], rates[quiet],
                                                        strict=True)])

    result = {key: statistics.median(values) for key, values in rates.items()}
    result["ratio"] = ratio("contended_default", "quiet_one")
    result["loop_ratio"] = ratio("contended_loop", "quiet_loop")
    return result


def contention_lines(rows: list[tuple[int, dict[str, float]]], default_threads: int,
                     crowded_threads: int, neighbour_threads: int, repeats: int) -> list[str]:
    """The Markdown section of the ``--contention`` table."""
    variable = os.environ.get(NUM_THREADS_VARIABLE, "").strip()
    source = (f"`{NUM_THREADS_VARIABLE}={variable}`" if variable
              else f"no `num_threads` argument, no `{NUM_THREADS_VARIABLE}`")
    lines = [
        "", "## Under contention", "",
        f"Eager vector env, user-steps per second, median of {repeats} interleaved repeats. "
        f"Contended: while a second process started by the benchmark runs a PPO-style "
        f"update loop (a 512-256-256-64 tanh MLP on a batch of 512, forward, backward and "
        f"Adam, {neighbour_threads} torch thread(s)); quiet: the same process paused. "
        f"Default: recgym's thread policy as a user gets it ({source}: {default_threads} "
        f"thread(s) per step); {crowded_threads} threads: torch's own default here, what "
        f"the env used before the policy. Ratio: median of per-repeat contended default / "
        f"quiet 1 thread; issue 19's target is at least {CONTENTION_TARGET}. Control: the "
        f"same ratio for a plain Python loop, the share of a core the neighbour leaves any "
        f"code in this process (about 1 when the machine has a free core for it; lower "
        f"means other jobs were running too).",
        "",
        f"| N | quiet, 1 thread | quiet, default ({default_threads}) | contended, default | "
        f"contended, {crowded_threads} threads | contended default / quiet 1 thread | "
        f"target >= {CONTENTION_TARGET} | control: Python loop |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for num_envs, result in rows:
        met = "met" if result["ratio"] >= CONTENTION_TARGET else "not met"
        lines.append(f"| {num_envs:,} | {result['quiet_one']:,.0f} | "
                     f"{result['quiet_default']:,.0f} | {result['contended_default']:,.0f} | "
                     f"{result['contended_crowded']:,.0f} | {result['ratio']:.3f} | {met} | "
                     f"{result['loop_ratio']:.2f} |")
    return lines


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
    parser.add_argument("--sync-max", type=int, default=1024, metavar="N",
                        help="time SyncVectorEnv only up to this N (memory: one model per env)")
    parser.add_argument("--contention-sizes", type=int, nargs="+",
                        help="sizes of the --contention columns (default: --sizes)")
    parser.add_argument("--trace-steps", type=int,
                        help="steps of the memory trace at the largest N (default 20,000; "
                             "--quick 2,000)")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="constructor argument of the env (a string), repeatable")
    parser.add_argument("--out", help="results file (default benchmarks/results/"
                                      "env_throughput_<env>.md)")
    parser.add_argument("--contention", action="store_true",
                        help="add a table measured with and without a CPU-bound neighbour")
    parser.add_argument("--neighbour-threads", type=int, default=1,
                        help="torch threads of the neighbour process (default 1)")
    parser.add_argument("--baseline-tree", type=Path,
                        help="also time the eager vector env of the recgym under this folder "
                             "(another commit's), interleaved: after / before per repeat")
    parser.add_argument("--baseline-label", default="the package under --baseline-tree",
                        help="what the baseline is, for the results file (e.g. its commit)")
    parser.add_argument("--run-neighbour", type=int, metavar="THREADS",
                        help="be the neighbour process that --contention starts (internal)")
    args = parser.parse_args()
    if args.run_neighbour is not None:
        run_neighbour(args.run_neighbour)
        return
    if args.neighbour_threads < 1:
        parser.error(f"--neighbour-threads must be >= 1, got {args.neighbour_threads}")
    trace_steps = args.trace_steps or (2_000 if args.quick else 20_000)
    if trace_steps < 5:
        parser.error(f"--trace-steps must be >= 5, got {trace_steps}")
    kwargs = dict(pair.split("=", 1) for pair in args.env_kwarg)
    out = Path(args.out or "benchmarks/results/env_throughput_"
                           f"{args.env.lower().replace('-', '_')}.md")
    repeats, seconds = (2, 0.5) if args.quick else (3, 2.0)
    baseline_id = register_baseline(args.baseline_tree, args.env) if args.baseline_tree else None
    rows = []
    for num_envs in args.sizes:
        result = measure(args.env, num_envs, repeats, seconds, kwargs, baseline_id,
                         sync=num_envs <= args.sync_max)
        rows.append((num_envs, result))
        print(f"N={num_envs:>6}: vector {result['vector']:>12,.0f}/s  compiled "
              f"{result['compiled']:>12,.0f}/s"
              + (f"  sync {result['sync']:>9,.0f}/s  ratio {result['ratio']:>7.1f}x / "
                 f"{result['ratio_compiled']:>7.1f}x" if "sync" in result else "")
              + (f"  before {result['before']:>12,.0f}/s  after / before "
                 f"{result['speedup']:.2f}x" if baseline_id else ""), flush=True)
    contended = []
    default_threads, crowded_threads = resolve_num_threads(), os.cpu_count() or 1
    if args.contention:
        neighbour = Neighbour(args.neighbour_threads)
        try:
            for num_envs in args.contention_sizes or args.sizes:
                result = measure_contention(args.env, num_envs, repeats, seconds, kwargs,
                                            neighbour, crowded_threads)
                contended.append((num_envs, result))
                print(f"N={num_envs:>6}: quiet 1 thread {result['quiet_one']:>12,.0f}/s  "
                      f"contended default {result['contended_default']:>12,.0f}/s  "
                      f"{crowded_threads} threads {result['contended_crowded']:>12,.0f}/s  "
                      f"ratio {result['ratio']:.2f} (Python loop {result['loop_ratio']:.2f})",
                      flush=True)
        finally:
            neighbour.close()
    largest = max(args.sizes)
    trace = memory_trace(args.env, largest, trace_steps, kwargs)
    print("RSS MiB over the long run:", [f"{mib:.0f}" for _, mib in trace])

    command = (f"python benchmarks/env_throughput.py --env {args.env} --sizes "
               + " ".join(map(str, args.sizes)) + (" --quick" if args.quick else "")
               + "".join(f" --env-kwarg {pair}" for pair in args.env_kwarg)
               + (" --contention" if args.contention else "")
               + (" --contention-sizes " + " ".join(map(str, args.contention_sizes))
                  if args.contention and args.contention_sizes else "")
               + (f" --sync-max {args.sync_max}" if args.sync_max != 1024 else "")
               + (f" --trace-steps {args.trace_steps}" if args.trace_steps else "")
               + (f" --neighbour-threads {args.neighbour_threads}"
                  if args.contention and args.neighbour_threads != 1 else "")
               + (f" --baseline-tree {args.baseline_tree} --baseline-label "
                  f"'{args.baseline_label}'" if args.baseline_tree else ""))
    compared = baseline_id is not None
    lines = [
        f"# {args.env} throughput",
        "",
        f"Command: `{command}` ({machine_description('gymnasium')}).",
        "",
        f"Also running on the machine: {args.load_note}.",
        "",
        f"User-steps per second, median of {repeats} interleaved repeats; the ratio is the",
        "median of per-repeat ratios. Vector: `gym.make_vec(..., vectorization_mode="
        "\"vector_entry_point\")` (numpy actions in, numpy observations out, next-step "
        "autoreset), eager by default; compiled: the same with `compile=True` (each step "
        "fused by `torch.compile`, compilation excluded). Sync: Gymnasium's `SyncVectorEnv` "
        f"over `gym.make` single envs, up to N = {args.sync_max:,} (above it, one model "
        "copy per env outgrows memory: blank). Spread: half the range of the eager repeats "
        f"over their median. Every path steps with recgym's default of {default_threads} torch "
        "thread(s) (see docs/scaling.md, Thread policy)."
        + (f" Before: the eager vector env of {args.baseline_label}, loaded beside this "
           "version (`--baseline-tree`) and interleaved with it; after / before is the "
           "median of per-repeat ratios." if compared else ""),
        "",
        "| N | vector, eager | vector, compiled | SyncVectorEnv | eager / sync | "
        "compiled / sync | spread |" + (" eager, before | after / before |" if compared else ""),
        "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if compared else ""),
    ]
    for num_envs, result in rows:
        synced = (f"{result['sync']:,.0f} | {result['ratio']:,.1f}x | "
                  f"{result['ratio_compiled']:,.1f}x" if "sync" in result else " | | ")
        lines.append(f"| {num_envs:,} | {result['vector']:,.0f} | {result['compiled']:,.0f} | "
                     f"{synced} | ±{100 * result['spread']:.0f}% |"
                     + (f" {result['before']:,.0f} | {result['speedup']:.2f}x |"
                        if compared else ""))
    lines += target_lines(args.env, dict(rows))
    lines += ["", f"Resident memory (MiB) over {trace[-1][0]:,} steps at N = {largest:,}: " +
              ", ".join(f"step {step:,}: {mib:.0f}" for step, mib in trace) + "."]
    if contended:
        lines += contention_lines(contended, default_threads, crowded_threads,
                                  args.neighbour_threads, repeats)
    with atomic_write(out) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
