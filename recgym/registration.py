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


def register_envs() -> None:
    """Register every recgym env with Gymnasium (idempotent)."""
    if "SyntheticMDP-v0" not in gym.registry:
        gym.register(
            id="SyntheticMDP-v0",
            entry_point="recgym.envs.synthetic_mdp:SyntheticMDPEnv",
            vector_entry_point="recgym.envs.synthetic_mdp:SyntheticMDPVectorEnv",
            max_episode_steps=200,
        )
    if "GANUserModel-v0" not in gym.registry:
        gym.register(
            id="GANUserModel-v0",
            entry_point="recgym.envs.gan_user:GANUserEnv",
            vector_entry_point="recgym.envs.gan_user:GANUserVectorEnv",
            max_episode_steps=10,
        )
    if "IRecGAN-v0" not in gym.registry:
        gym.register(
            id="IRecGAN-v0",
            entry_point="recgym.envs.irecgan:IRecGANEnv",
            vector_entry_point="recgym.envs.irecgan:IRecGANVectorEnv",
            max_episode_steps=200,
        )
    for env_id, kwargs in (("RecSimu-v0", {}), ("RecSimuSlate-v0", {"slate_size": 5})):
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="recgym.envs.recsimu:RecSimuEnv",
                vector_entry_point="recgym.envs.recsimu:RecSimuVectorEnv",
                max_episode_steps=20,
                kwargs=kwargs,
            )
