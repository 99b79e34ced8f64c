"""IRecGAN-v0: users simulated by IRecGAN's fitted user behaviour model U (Bai et al. 2019).

Each step the user sees a slate of ``k`` items and either clicks one of them or ends the
session (the ``c_end`` symbol), with the probabilities of eq. 1; a click earns a reward
with the probability of eq. 2 (in the synthetic MDP every click continues the session
and earns 1; on e-commerce data the reward is a purchase). The user's RNN state then
advances with the clicked item.

A repeated item in a slate is shown once: only its first position can be clicked.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recgym.core.env import EnvSetup, FamilyEnv, FamilyVectorEnv
from recgym.simulators.irecgan.users import IRecGANUsers


def build_simulator(checkpoint: str | Path | None = None, *, slate_size: int = 10,
                    history_length: int = 10, discriminator: str | Path | None = None,
                    device: torch.device | str = "cpu") -> EnvSetup:
    """The users of ``IRecGAN-v0`` (arguments as in its manual)."""
    users = IRecGANUsers.from_checkpoint(checkpoint, discriminator=discriminator,
                                         slate_size=slate_size, history_length=history_length,
                                         device=device)
    return EnvSetup(users, ("clicks",))


class IRecGANEnv(FamilyEnv):
    """One user simulated by IRecGAN's user behaviour model U (Bai et al., NeurIPS 2019).

    ## Description

    A user whose clicks on a k-item slate follow eq. 1 of the paper (a softmax over the
    shown items and a session-end symbol) and whose clicks earn rewards by eq. 2. The
    shipped default U is fitted on SyntheticMDP-v0 logs of the random logging policy
    (10,000 sessions), so it imitates the synthetic world (its card in ``envs_data/``
    gives its fidelity against that world); fit your own with ``recgym fit irecgan-user``.

    ## Action Space

    ``MultiDiscrete([n_items] * k)``; a repeated item is shown once.

    ## Observation Space

    | key | shape | dtype | range | meaning |
    |---|---|---|---|---|
    | clicks | (history_length,) | int64 | 0 .. n | last clicks, oldest first; n: none yet |

    ## Rewards

    1 when the clicked item earns a reward (eq. 2), else 0; ``info["reward_probability"]``
    holds the model's probability. With ``discriminator=`` (a ``discriminator.pt`` from
    ``recgym fit irecgan``), ``info["discriminator_score"]`` is D's probability that the
    trajectory so far is real.

    ## Starting State

    U's start state (no click yet).

    ## Episode End

    Terminated when the user chooses the end symbol; truncated after
    ``max_episode_steps`` (200 as registered).

    ## Arguments

    ```python
    gym.make("IRecGAN-v0", checkpoint=None, slate_size=10, history_length=10, device="cpu")
    ```

    Every env also takes ``num_threads`` (default 1, or ``RECGYM_NUM_THREADS``): the torch
    threads of each step, after which the caller's count is restored (docs/scaling.md,
    "Thread policy").

    ## Vectorized environment

    ``gym.make_vec("IRecGAN-v0", num_envs=1024, vectorization_mode="vector_entry_point")``
    steps all users in one torch call (:class:`IRecGANVectorEnv`, same arguments, plus
    ``compile=True``). User ``i`` of a vector env reset with ``seed=s`` follows the
    trajectory of a single env reset with ``seed=s + i``.

    ## Version History

    * v0: initial version.
    """

    build_simulator = staticmethod(build_simulator)


class IRecGANVectorEnv(FamilyVectorEnv):
    """``num_envs`` users of :class:`IRecGANEnv` stepped together (same arguments)."""

    build_simulator = staticmethod(build_simulator)
