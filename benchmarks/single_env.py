"""Steps per second of the single env every third-party agent gets: ``gym.make(id)``.

Each recgym id runs through Gymnasium's full wrapper stack (``TimeLimit``,
``OrderEnforcing``, ``PassiveEnvChecker``) with random valid actions drawn before timing,
resetting when an episode ends. The references run the same way in the same process:
SyntheticMDP-v0's world written for one user in plain numpy (:class:`NumpySyntheticMDP`,
registered and made like any env) and Gymnasium's CartPole-v1. The floor,
``RecgymDrawOnly-v0``, is recgym's single env over a simulator that only draws its two
uniforms and ends about half of the sessions (``step_profile.DrawOnlyUsers``): no recgym
env can step faster. All envs are timed in turn, several times; the table reports medians
and medians of per-repeat ratios.

``--baseline-tree DIR`` also times the ``recgym`` package under ``DIR`` (another commit's),
loaded beside this one, for a before/after comparison in the same process. ``--profile``
appends each id's top functions under ``cProfile``. ``--other-suites FILE`` adds RecSim's
and RecoGym's figures, measured by :mod:`other_suites` in their own environment, next to
recgym's: both processes time the same pure-Python yardstick beside their envs.

    mkdir -p /tmp/recgym_head && git archive HEAD recgym | tar -x -C /tmp/recgym_head
    ln -s "$PWD/envs_data" /tmp/recgym_head/envs_data  # the shipped checkpoints
    OMP_NUM_THREADS=1 python benchmarks/single_env.py --baseline-tree /tmp/recgym_head \
        --baseline-label "commit 45cd5e7" --profile --load-note "what else ran"
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import other_suites
import reporting
from step_profile import DrawOnlyUsers

import recgym  # noqa: F401  (registers the envs)
from recgym.core.env import RecEnv
from recgym.simulators.synthetic_mdp import SyntheticWorld

RECGYM_IDS = ("SyntheticMDP-v0", "IRecGAN-v0", "RecSimu-v0", "GANUserModel-v0")
NUMPY_ID = "NumpySyntheticMDP-v0"
NUMPY_BATCHED_ID = "NumpyBatchedSyntheticMDP-v0"
CARTPOLE_ID = "CartPole-v1"
FLOOR_ID = "RecgymDrawOnly-v0"
SYNTHETIC_TARGET = 0.5  # of the numpy implementation's steps/s
LEARNED_TARGET = 10_000  # steps/s
CLOCK_EVERY = 128  # steps between clock reads (divides the 1,024 pre-drawn actions)


class NumpySyntheticMDP(gym.Env):
    """One user of SyntheticMDP-v0's world in plain numpy: what a single env is held to.

    The dynamics of the env's manual: one uniform picks the click candidate among the
    slate's distinct items with probability proportional to ``r(a | s)`` and decides the
    click with probability ``r(a | s)`` (``P(click a) = r(a)^2 / sum r``); a click moves
    the user to ``s' ~ P(. | a, s)`` with a second uniform, no click ends the session.
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, num_states: int = 10, num_items: int = 50, slate_size: int = 10,
                 history_length: int = 10, world_seed: int = 0) -> None:
        world = SyntheticWorld.random(num_states, num_items, world_seed)
        self.rewards = world.rewards.numpy()
        self.cumulative_transition = world.transition.numpy().cumsum(-1)
        self.num_states, self.num_items = num_states, num_items
        self.history_length = history_length
        self.observation_space = gym.spaces.MultiDiscrete(
            np.full(history_length, num_items + 1, dtype=np.int64))
        self.action_space = gym.spaces.MultiDiscrete(np.full(slate_size, num_items,
                                                             dtype=np.int64))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start in s0 with no click yet."""
        super().reset(seed=seed)
        self.state = 0
        self.history = np.full(self.history_length, self.num_items, dtype=np.int64)
        return self.history.copy(), {}

    def step(self, action):
        """Show a slate; the user clicks one item and moves on, or leaves."""
        slate = np.asarray(action, dtype=np.int64)
        reward = self.rewards[self.state, slate]
        weight = reward / np.bincount(slate, minlength=self.num_items)[slate]
        click, move = self.np_random.random(2)
        position = np.searchsorted(np.cumsum(weight * reward), click * weight.sum(),
                                   side="right")
        if position == len(slate):
            return self.history.copy(), 0.0, True, False, {"clicked": -1}
        item = int(slate[position])
        next_state = np.searchsorted(self.cumulative_transition[item, self.state], move,
                                     side="right")
        self.state = min(int(next_state), self.num_states - 1)
        self.history[:-1] = self.history[1:]
        self.history[-1] = item
        return self.history.copy(), 1.0, False, False, {"clicked": item}


class NumpyBatchedSyntheticMDP(NumpySyntheticMDP):
    """The same world stepped in numpy the way recgym's simulator steps a batch, at B = 1.

    Shows what a one-implementation-for-every-batch-size formulation costs even without
    torch: array operations where the scalar env branches and indexes.
    """

    def step(self, action):
        """:meth:`NumpySyntheticMDP.step` written for a batch of users ``(B, k)``."""
        slate = np.asarray(action, dtype=np.int64)[None]
        state, history = np.array([self.state]), self.history[None]
        reward = np.take_along_axis(self.rewards[state], slate, 1)
        counts = np.zeros((len(slate), self.num_items))
        np.add.at(counts, (np.arange(len(slate))[:, None], slate), 1.0)
        weight = reward / np.take_along_axis(counts, slate, 1)
        uniforms = self.np_random.random((len(slate), 2))
        threshold = uniforms[:, :1] * weight.sum(1, keepdims=True)
        position = (np.cumsum(weight * reward, 1) <= threshold).sum(1, keepdims=True)
        clicks = position < slate.shape[1]
        item = np.take_along_axis(slate, np.minimum(position, slate.shape[1] - 1), 1)
        rows = self.cumulative_transition[item[:, 0], state]
        next_state = np.minimum((rows <= uniforms[:, 1:]).sum(1), self.num_states - 1)
        success = clicks[:, 0]
        self.state = int(np.where(success, next_state, state)[0])
        self.history = np.where(clicks, np.concatenate([history[:, 1:], item], 1), history)[0]
        clicked = np.where(success, item[:, 0], -1)
        return (self.history.copy(), float(success[0]), bool(~success[0]), False,
                {"clicked": int(clicked[0])})


def make_draw_only_env() -> RecEnv:
    """The single env over :class:`DrawOnlyUsers`: the core's own cost per step."""
    return RecEnv(DrawOnlyUsers(), observation_keys=("clicks",))


def make_baselines(tree: Path, env_ids: list[str]) -> dict[str, gym.Env]:
    """``before/<id>``: ``gym.make`` of each id as the ``recgym`` under ``tree`` builds it."""
    ids = [reporting.register_baseline(tree, env_id) for env_id in env_ids]
    return {baseline_id: gym.make(baseline_id) for baseline_id in ids}


def random_actions(env: gym.Env, count: int = 1024) -> list:
    """Valid actions drawn from the env's action space before timing."""
    env.action_space.seed(0)
    return [env.action_space.sample() for _ in range(count)]


def run(env: gym.Env, actions: list, seconds: float) -> tuple[int, float, int, float]:
    """Step for about ``seconds``: (steps, seconds taken, episodes ended, their reward)."""
    steps = episodes = 0
    total_reward = 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        start = steps % len(actions)
        for action in actions[start:start + CLOCK_EVERY]:
            _, reward, terminated, truncated, _ = env.step(action)
            total_reward += reward
            if terminated or truncated:
                episodes += 1
                env.reset()
        steps += CLOCK_EVERY
    return steps, time.perf_counter() - started, episodes, total_reward


def profile_top(env: gym.Env, actions: list, steps: int, top: int) -> str:
    """The ``top`` functions by own time over ``steps`` steps, as pstats prints them."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        if terminated or truncated:
            env.reset()
    profiler.disable()
    return reporting.profile_table(profiler, top)


def other_suites_section(others: dict, path: Path, speeds: dict[str, list[float]],
                         names: list[str]) -> list[str]:
    """Markdown rows for RecSim and RecoGym (from :mod:`other_suites`) beside recgym's envs.

    Their process cannot be this one, so the figures to compare are the ratios to the
    pure-Python yardstick each process timed beside its envs; the steps/s are given as
    measured in each process, and ``at this run's speed`` scales the other process's
    ratio by this run's yardstick.
    """
    versions = ", ".join(f"{name} {version}" for name, version in others["versions"].items())
    yardstick = statistics.median(speeds[other_suites.YARDSTICK])
    suites = others["suites"]
    lines = [
        "## Next to the suites a user would otherwise pick", "",
        f"RecSim and RecoGym measured by `benchmarks/other_suites.py` in their own Python "
        f"environment ({versions}; {others['date']}, 1-min load average "
        f"{others['load_average_1min']:.1f}, `OMP_NUM_THREADS={others['omp_num_threads']}`, "
        f"also running: {others['load_note']}; medians of {others['repeats']} interleaved "
        f"repeats of {others['seconds']:g} s; file `{path.name}`). They need the retired "
        "`gym`, TensorFlow 2.15 and numpy 1.x, so they cannot run in this process. Both "
        "processes time the same pure-Python yardstick (`other_suites.python_yardstick`, "
        "same interpreter) beside their envs: compare the ratios to it. CartPole-v1 is no "
        f"common yardstick: `gym` 0.26's ran {suites[other_suites.CARTPOLE]['per_yardstick']:.3f}"
        f"x the yardstick there, Gymnasium's "
        f"{median_ratio(speeds, CARTPOLE_ID, other_suites.YARDSTICK):.3f}x here.", "",
        "| env | steps/s (own process) | / Python yardstick | at this run's speed, steps/s |",
        "|---|---:|---:|---:|",
    ]
    for name, figures in suites.items():
        if name not in (other_suites.YARDSTICK, other_suites.CARTPOLE):
            lines.append(f"| {name} | {figures['steps_per_second']:,.0f} | "
                         f"{figures['per_yardstick']:.4f}x | "
                         f"{figures['per_yardstick'] * yardstick:,.0f} |")
    for name in names:
        lines.append(f"| recgym {name} | {statistics.median(speeds[name]):,.0f} | "
                     f"{median_ratio(speeds, name, other_suites.YARDSTICK):.4f}x | "
                     f"{statistics.median(speeds[name]):,.0f} |")
    return lines


def median_ratio(speeds: dict[str, list[float]], name: str, reference: str) -> float:
    """Median of the per-repeat ratios of ``name``'s steps/s to ``reference``'s."""
    return statistics.median(a / b for a, b in zip(speeds[name], speeds[reference],
                                                   strict=True))


def main() -> None:
    """Time every env, write the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", default=list(RECGYM_IDS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per env and repeat")
    parser.add_argument("--baseline-tree", type=Path,
                        help="folder holding another version's recgym package (before)")
    parser.add_argument("--baseline-label", default="the package under --baseline-tree",
                        help="what the baseline is, for the results file (e.g. its commit)")
    parser.add_argument("--profile", action="store_true",
                        help="append each id's top functions under cProfile")
    parser.add_argument("--load-note", default="nothing else known",
                        help="what else ran on the machine, for the results file")
    parser.add_argument("--other-suites", type=Path, metavar="JSON",
                        help="results of benchmarks/other_suites.py to show beside these")
    parser.add_argument("--out", default=str(reporting.RESULTS / "single_env.md"))
    args = parser.parse_args()
    others = json.loads(args.other_suites.read_text()) if args.other_suites else None

    gym.register(NUMPY_ID, entry_point=NumpySyntheticMDP, max_episode_steps=200)
    gym.register(NUMPY_BATCHED_ID, entry_point=NumpyBatchedSyntheticMDP, max_episode_steps=200)
    gym.register(FLOOR_ID, entry_point=make_draw_only_env, max_episode_steps=200)
    envs = {name: gym.make(name) for name in (NUMPY_ID, NUMPY_BATCHED_ID, CARTPOLE_ID,
                                              FLOOR_ID)}
    envs.update({env_id: gym.make(env_id) for env_id in args.ids})
    baselines = make_baselines(args.baseline_tree, args.ids) if args.baseline_tree else {}
    envs.update(baselines)
    actions = {name: random_actions(env) for name, env in envs.items()}
    speeds: dict[str, list[float]] = {name: [] for name in envs}
    yardstick = other_suites.python_yardstick() if others is not None else None
    if yardstick is not None:
        speeds[other_suites.YARDSTICK] = []
    returns = {name: [0, 0.0] for name in envs}
    for name, env in envs.items():
        env.reset(seed=0)
        run(env, actions[name], 0.2)
    for repeat in range(args.repeats):
        for name, env in envs.items():
            steps, taken, episodes, reward = run(env, actions[name], args.seconds)
            speeds[name].append(steps / taken)
            returns[name][0] += episodes
            returns[name][1] += reward
        if yardstick is not None:
            speeds[other_suites.YARDSTICK].append(
                other_suites.steps_per_second(yardstick, args.seconds))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {speeds[name][-1]:,.0f}"
                                                  for name in envs), flush=True)
    profiles = {env_id: profile_top(envs[env_id], actions[env_id], 3000, 8)
                for env_id in args.ids} if args.profile else {}
    machine = reporting.machine_description("gymnasium", "numpy")

    def ratio(name: str, reference: str) -> float:
        return median_ratio(speeds, name, reference)

    def mean_return(name: str) -> str:
        episodes, reward = returns[name]
        return f"{reward / episodes:.2f}" if episodes and name not in (CARTPOLE_ID,
                                                                         FLOOR_ID) else ""

    lines = [
        "# Single env speed: `gym.make(id)`", "",
        f"Command: `{reporting.command_line()}` ({machine}).", "",
        f"Also running on the machine: {args.load_note}.", "",
        f"Steps per second of `gym.make(id)` (full wrapper stack), medians of {args.repeats} "
        f"interleaved repeats of {args.seconds:g} s in one process; ratios are medians of "
        "per-repeat ratios. Random valid actions drawn before timing; resets on episode end "
        f"are timed. `{NUMPY_ID}` is SyntheticMDP-v0's world for one user in plain numpy "
        "(`NumpySyntheticMDP` in the script), made by `gym.make` like the others; "
        f"`{NUMPY_BATCHED_ID}` steps the same world in numpy the way recgym's simulator "
        "steps a batch (array operations for B users, here B = 1). "
        f"`{FLOOR_ID}` is recgym's single env over a simulator that only draws two "
        "uniforms and ends about half of the sessions: the core's own cost, the ceiling "
        "of every recgym env. Mean "
        "return: reward per ended episode over the timed runs (random slates; the numpy "
        "worlds and SyntheticMDP-v0 should agree)."
        + (f" Before: the same ids from {args.baseline_label}, loaded beside this version "
           "(`--baseline-tree`)." if baselines else ""), "",
        "| env | steps/s | / numpy | / CartPole-v1 | before, steps/s | after / before | "
        "mean return |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in [NUMPY_ID, NUMPY_BATCHED_ID, CARTPOLE_ID, FLOOR_ID, *args.ids]:
        before = f"{reporting.BASELINE_NAMESPACE}/{name}"
        has_before = before in speeds
        lines.append(
            f"| {name} | {statistics.median(speeds[name]):,.0f} | {ratio(name, NUMPY_ID):.2f}x | "
            f"{ratio(name, CARTPOLE_ID):.3f}x | "
            + (f"{statistics.median(speeds[before]):,.0f} | {ratio(name, before):.1f}x | "
               if has_before else " | | ")
            + f"{mean_return(name)} |")
    lines += ["", "Targets (why they are missed: docs/architecture.md, \"Single env\"):", ""]
    floor = statistics.median(speeds[FLOOR_ID])
    lines.append(f"* The floor ({FLOOR_ID}): {floor:,.0f} steps/s, "
                 f"{ratio(FLOOR_ID, NUMPY_ID):.2f}x the numpy world; no recgym env steps "
                 "faster.")
    if "SyntheticMDP-v0" in speeds:
        achieved = ratio("SyntheticMDP-v0", NUMPY_ID)
        lines.append(f"* SyntheticMDP-v0 at least {SYNTHETIC_TARGET}x the numpy world: "
                     f"{achieved:.2f}x, {'met' if achieved >= SYNTHETIC_TARGET else 'not met'}.")
    for env_id in args.ids:
        if env_id != "SyntheticMDP-v0":
            speed = statistics.median(speeds[env_id])
            lines.append(f"* {env_id} toward {LEARNED_TARGET:,} steps/s: {speed:,.0f} "
                         f"({'met' if speed >= LEARNED_TARGET else 'not met'}).")
    if others is not None:
        lines += ["", *other_suites_section(others, args.other_suites, speeds, args.ids)]
    for env_id, text in profiles.items():
        lines += ["", f"Where {env_id}'s time goes (`cProfile`, 3,000 steps, top own time; "
                      "the profiler inflates Python-call-heavy code):", "", "```", text, "```"]
    print(f"wrote {reporting.write_results(args.out, chr(10).join(lines))}")


if __name__ == "__main__":
    main()
