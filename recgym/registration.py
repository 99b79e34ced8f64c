"""Every recgym env id, registered with Gymnasium in one place (entry points as strings)."""

from __future__ import annotations

import gymnasium as gym

ENV_DESCRIPTIONS: dict[str, str] = {
    "SyntheticMDP-v0": "m-state MDP of IRecGAN sec. 7.1: click prop. to reward, Bernoulli continue",
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
