"""Where one eager vector step of each env spends its time: torch operators by own time.

For each env: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``
stepped with pre-drawn random slates, first timed without a profiler (microseconds per
step, the figure to compare with the throughput tables), then under ``torch.profiler`` for
the operator table: the top operators by own CPU time, grouped by input shapes (the shapes
tell which tensor an operator works on), as microseconds per step and as a share of all
operator time. The profiler's figures point where to look; they are not what a cut
saves: it charged the zero fill of SyntheticMDP-v0's repeat-count table with a quarter of
the step, and leaving the whole count out of the step saved 7% (both versions timed in one
process). Check a cut with ``env_throughput.py --baseline-tree``.

``--floor`` adds the vector env's own cost at each size: the same env class over a
simulator that only draws two uniforms per user and ends about half of the sessions, so
what remains is the slate check, the per-user random streams, the autoreset merge, the
time limit and the numpy output. No env steps faster than that at its size.

    OMP_NUM_THREADS=1 python benchmarks/step_profile.py --floor \
        --env SyntheticMDP-v0:4096 IRecGAN-v0:1024 RecSimu-v0:1024 GANUserModel-v0:1024
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import reporting
import torch
from env_throughput import steps_per_second
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

import recgym  # noqa: F401  (registers the envs)
from recgym.core.env import RecVectorEnv
from recgym.core.simulator import Randomness, State, Step


def env_and_size(text: str) -> tuple[str, int]:
    """``ID:N`` as ``(id, N)``."""
    env_id, _, size = text.rpartition(":")
    if not env_id or not size.isdecimal() or int(size) < 1:
        raise argparse.ArgumentTypeError(f"expected ID:N with N >= 1, got {text!r}")
    return env_id, int(size)


class DrawOnlyUsers:
    """A simulator that does nearly nothing: two uniforms per user, half the sessions end.

    Shaped as SyntheticMDP-v0 (50 items, slates of 10, a history of 10 ids observed).
    """

    num_items, slate_size, history_length = 50, 10, 10

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """An empty click history."""
        return {"history": torch.full((batch_size, self.history_length), self.num_items)}

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Draw, end about half of the sessions, keep the state."""
        ends = rng.uniform(2)[:, 0] < 0.5
        return Step(state=state, reward=torch.zeros(len(slate)),
                    clicked=torch.full((len(slate),), -1), terminated=ends)

    def observe(self, state: State) -> dict[str, Tensor]:
        """The click history."""
        return {"clicks": state["history"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """The history's space."""
        return {"clicks": gym.spaces.MultiDiscrete(
            np.full(self.history_length, self.num_items + 1, dtype=np.int64))}


def microseconds_per_step(envs: RecVectorEnv, actions: list, steps: int) -> float:
    """Wall time of one ``envs.step`` over ``steps`` steps, after two passes over ``actions``."""
    rate = steps_per_second(envs, actions, seconds=0.0, min_steps=steps,
                            warm_up=2 * len(actions))
    return envs.num_envs / rate * 1e6


def profile_env(envs: RecVectorEnv, title: str, steps: int, top: int,
                compiled: RecVectorEnv | None = None) -> list[str]:
    """The Markdown section of one vector env: time per step and the top operators.

    ``compiled``: the same env built with ``compile=True``, timed too (not profiled).
    """
    num_envs = envs.num_envs
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(16)]
    wall = microseconds_per_step(envs, actions, steps)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        for i in range(steps):
            envs.step(actions[i % len(actions)])
    events = sorted(profiler.key_averages(group_by_input_shape=True),
                    key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events)
    lines = [f"## {title}, N = {num_envs:,}", "",
             f"{wall:,.0f} µs per step without the profiler ({num_envs / wall * 1e6:,.0f} "
             f"user-steps/s); operators under the profiler: {total / steps:,.0f} µs per step, "
             f"{sum(event.count for event in events) / steps:.0f} calls.", "",
             "| operator | input shapes | calls / step | µs / step | share |",
             "|---|---|---:|---:|---:|"]
    if compiled is not None:
        fused = microseconds_per_step(compiled, actions, steps)
        lines[4:4] = [f"With `compile=True`: {fused:,.0f} µs per step "
                      f"({num_envs / fused * 1e6:,.0f} user-steps/s).", ""]
    for event in events[:top]:
        shapes = ", ".join(str(shape) for shape in event.input_shapes if shape) or "-"
        lines.append(f"| `{event.key}` | {shapes} | {event.count / steps:g} | "
                     f"{event.self_cpu_time_total / steps:,.1f} | "
                     f"{100 * event.self_cpu_time_total / total:.1f}% |")
    return lines


def main() -> None:
    """Profile each env, write the Markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", type=env_and_size, required=True,
                        metavar="ID:N", help="env id and number of users")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--top", type=int, default=15, help="operators listed per env")
    parser.add_argument("--floor", action="store_true",
                        help="also profile the vector env over a draw-only simulator at each N")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--out", default=str(reporting.RESULTS / "step_profile.md"))
    args = parser.parse_args()
    sections = []
    for env_id, num_envs in args.env:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
        sections += ["", *profile_env(envs, env_id, args.steps, args.top)]
        print(f"profiled {env_id} at N = {num_envs:,}", flush=True)
    for num_envs in sorted({num_envs for _, num_envs in args.env}) if args.floor else ():
        envs, compiled = (RecVectorEnv(DrawOnlyUsers(), num_envs, observation_keys=("clicks",),
                                       max_episode_steps=200, compile=fused)
                          for fused in (False, True))
        sections += ["", *profile_env(envs, "The vector env's own cost (draw-only users)",
                                      args.steps, args.top, compiled)]
        print(f"profiled the draw-only floor at N = {num_envs:,}", flush=True)
    lines = ["# Where an eager vector step spends its time", "",
             f"Command: `{reporting.command_line()}` "
             f"({reporting.machine_description('gymnasium')}).", "",
             f"Also running on the machine: {args.load_note}.", "",
             f"Each env's eager vector step (`gym.make_vec`, next-step autoreset, numpy in and "
             f"out), {args.steps} steps of pre-drawn random slates after a warm-up: first "
             "timed, then under `torch.profiler` with input shapes recorded. Operators are "
             "the env's whole step: the simulator, the core's autoreset merge and time limit, "
             "the slate check and the numpy copies. The profiler's shares point where to "
             "look, not what a cut saves (see the script's docstring).", *sections]
    print(f"wrote {reporting.write_results(args.out, chr(10).join(lines))}")


if __name__ == "__main__":
    main()
