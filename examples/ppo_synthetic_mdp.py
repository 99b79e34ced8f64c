"""Train stable-baselines3 PPO on SyntheticMDP-v0 through the batched path, then evaluate it.

    python examples/ppo_synthetic_mdp.py --total-steps 200000 --num-users 256

PPO steps all ``num_users`` simulated users in one torch call per step (recgym's SB3
adapter), then the trained model is evaluated by roll-outs next to the random policy and
the oracle (the true top-k items), on the same seeds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from stable_baselines3 import PPO

from recgym.core import RandomPolicy, SB3Policy
from recgym.core.sb3 import make_sb3_vec_env
from recgym.envs.synthetic_mdp import MaxRewardPolicy, SyntheticMDP
from recgym.evaluation import evaluate_policy


@dataclass
class Args:
    """Command-line arguments."""

    total_steps: int = 100_000
    """user-steps of PPO training"""
    num_users: int = 64
    """users simulated in parallel (SB3's n_envs)"""
    sessions: int = 2000
    """sessions per policy in the final evaluation"""
    seed: int = 0
    """seed of the users, PPO and the evaluation"""


def parse_args() -> Args:
    """Fill :class:`Args` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    """Train, evaluate, print a table."""
    args = parse_args()
    venv = make_sb3_vec_env("SyntheticMDP-v0", num_envs=args.num_users, seed=args.seed)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=4, learning_rate=1e-3,
                seed=args.seed, device="cpu")
    model.learn(total_timesteps=args.total_steps)

    world = SyntheticMDP()  # the same world: world_seed=0 is the env's default
    policies = {
        "random": RandomPolicy(world.num_items, world.slate_size, seed=args.seed),
        "ppo": SB3Policy(model, ("clicks",), world.slate_size),
        "oracle": MaxRewardPolicy(world.world, world.slate_size),
    }
    for name, policy in policies.items():
        result = evaluate_policy(world, policy, args.sessions, seed=args.seed + 1)
        print(f"{name:>7}: return {result.mean_return:.2f} ± {result.return_std_err:.2f}, "
              f"CTR {result.ctr:.3f}, coverage@1 {result.coverage[1]:.2f}")


if __name__ == "__main__":
    main()
