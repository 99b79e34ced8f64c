"""stable-baselines3 PPO trains on SyntheticMDP-v0 through the batched adapter."""

from __future__ import annotations

import torch
from stable_baselines3 import PPO

from recgym.core import RandomPolicy, SB3Policy
from recgym.core.sb3 import make_sb3_vec_env
from recgym.evaluation import evaluate_policy
from recgym.simulators.synthetic_mdp import SyntheticMDP


def test_ppo_beats_random_policy():
    torch.manual_seed(0)
    venv = make_sb3_vec_env("SyntheticMDP-v0", num_envs=64, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=4, learning_rate=1e-3,
                ent_coef=0.0, seed=0, device="cpu")
    model.learn(total_timesteps=64 * 32 * 40)
    sim = SyntheticMDP()
    trained = evaluate_policy(sim, SB3Policy(model, ("clicks",), 10), 2000, seed=1)
    random = evaluate_policy(sim, RandomPolicy(50, 10, seed=1), 2000, seed=1)
    margin = 4 * (trained.return_std_err + random.return_std_err)
    assert trained.mean_return > random.mean_return + margin
    assert trained.mean_return > 1.3 * random.mean_return
