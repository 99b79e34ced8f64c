"""Every recgym env id, registered with Gymnasium in one place (entry points as strings)."""

from __future__ import annotations

import gymnasium as gym

ENV_DESCRIPTIONS: dict[str, str] = {
    "SyntheticMDP-v0": "m-state MDP of IRecGAN sec. 7.1: click prop. to reward, Bernoulli continue",
    "RecSimu-v0": "RecSimu (Zhao et al. 2020) user fitted on ml-latest-small: feedback on one item",
    "RecSimuSlate-v0": "RecSimu-v0 with k-item slates: feedback on every shown item",
    "IRecGAN-v0": "IRecGAN user model U (Bai et al. 2019) fitted on SyntheticMDP-v0 logs",
    "GANUserModel-v0": "GAN user model (Chen et al. 2019) fitted on ml-latest-small page views",
}

# env id: (module, single-env class, vector-env class, max_episode_steps, kwargs)
_ENTRY_POINTS: dict[str, tuple[str, str, str, int, dict]] = {
    "SyntheticMDP-v0": ("synthetic_mdp", "SyntheticMDPEnv", "SyntheticMDPVectorEnv", 200, {}),
    "RecSimu-v0": ("recsimu", "RecSimuEnv", "RecSimuVectorEnv", 20, {}),
    "RecSimuSlate-v0": ("recsimu", "RecSimuEnv", "RecSimuVectorEnv", 20, {"slate_size": 5}),
    "IRecGAN-v0": ("irecgan", "IRecGANEnv", "IRecGANVectorEnv", 200, {}),
    "GANUserModel-v0": ("gan_user", "GANUserEnv", "GANUserVectorEnv", 10, {}),
}


def register_envs() -> None:
    """Register every recgym env with Gymnasium (idempotent)."""
    for env_id, (module, single, vector, max_steps, kwargs) in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"recgym.envs.{module}:{single}",
                         vector_entry_point=f"recgym.envs.{module}:{vector}",
                         max_episode_steps=max_steps, kwargs=kwargs)
