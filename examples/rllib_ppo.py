"""Train RLlib PPO on recgym envs with several env runners, each stepping many users at once.

    python examples/rllib_ppo.py                                  # local Ray, 2 runners
    python examples/rllib_ppo.py --env-ids RecSimu-v0 --num-env-runners 4 --iterations 20
    python examples/rllib_ppo.py --address auto                   # join a running cluster

Every recgym id is registered with Ray Tune's registry, so the config names the env the
way Gymnasium does. Each env runner holds one recgym vector env of
``num_envs_per_env_runner`` users (``gym_env_vectorize_mode="vector_entry_point"``), so one
runner steps all its users in one batched torch call. On a cluster (see docs/scaling.md)
the same script runs unchanged with ``--address auto``.

RecSimu-v0 acts with one of 9,742 items: sampling from that categorical inside RLlib's
module, not the simulator, bounds its user-steps per second on a CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields

import ray
from ray.rllib.algorithms.ppo import PPOConfig

from recgym.integrations.rllib import env_runner_options, register_rllib_envs


@dataclass
class Args:
    """Command-line arguments."""

    env_ids: tuple[str, ...] = ("SyntheticMDP-v0", "RecSimu-v0")
    """recgym ids to train on, one after the other"""
    num_env_runners: int = 2
    """env runner actors (processes; spread over the nodes of a cluster)"""
    num_envs_per_env_runner: int = 256
    """simulated users per runner, stepped in one batched call"""
    iterations: int = 5
    """PPO training iterations per env"""
    train_batch_size: int = 4096
    """user-steps sampled per iteration"""
    seed: int = 0
    """seed of RLlib (runner w's users get seeds (seed + w) * users + i)"""
    address: str = ""
    """Ray cluster to join ("auto": the one started by `ray start` on this node); empty:
    start a local Ray instance"""


def parse_args() -> Args:
    """Fill :class:`Args` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in fields(Args):
        default = getattr(Args, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", default=list(default))
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return Args(**{**vars(parser.parse_args()), "env_ids": tuple(parser.parse_args().env_ids)})


def train(env_id: str, args: Args) -> list[dict[str, float]]:
    """PPO on one env: returns per-iteration mean episode return and sampled steps/s."""
    config = (
        PPOConfig()
        .environment(env_id)
        .env_runners(**env_runner_options(args.num_envs_per_env_runner,
                                          num_env_runners=args.num_env_runners))
        .training(train_batch_size_per_learner=args.train_batch_size, minibatch_size=1024,
                  num_epochs=4, lr=1e-3)
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    curve = []
    try:
        for iteration in range(1, args.iterations + 1):
            started = time.perf_counter()
            result = algo.train()
            seconds = time.perf_counter() - started
            runners = result["env_runners"]
            steps = runners["num_env_steps_sampled"]
            # no session may have ended yet in the first iterations of long horizons
            mean_return = runners.get("episode_return_mean", float("nan"))
            curve.append({"iteration": iteration, "return": mean_return, "steps": steps,
                          "steps_per_second": steps / seconds})
            print(f"{env_id} iteration {iteration}: mean episode return {mean_return:.3f}, "
                  f"{steps:,} user-steps ({steps / seconds:,.0f}/s incl. learning)")
    finally:
        algo.stop()
    return curve


def main() -> None:
    """Start (or join) Ray, register the recgym ids and train PPO on each env."""
    args = parse_args()
    if args.address:
        ray.init(address=args.address)
    else:
        # One logical CPU per runner plus the driver's learner, even on a 2-core laptop.
        ray.init(num_cpus=args.num_env_runners + 1, include_dashboard=False)
    register_rllib_envs()
    try:
        for env_id in args.env_ids:
            train(env_id, args)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
