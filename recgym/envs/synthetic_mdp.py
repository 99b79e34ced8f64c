"""The synthetic m-state recommendation MDP of IRecGAN (Bai et al., NeurIPS 2019), sec. 7.1.

A ground-truth world in which every quantity a learned simulator or an agent tries to
recover is known: the transition tensor ``P(s' | item, s)`` and the rewards
``r(item | s)``. It is the world of IRecGAN's simulated online test, and recgym uses it to
check simulators, agents and off-policy estimators against the truth.

Readings of the paper chosen here (the text leaves them open):

* ``s0`` is state 0 of the ``m`` states; every session starts there, and transitions may
  return to it.
* "randomly initialised transition probability matrix": each row ``P(. | a, s)`` is drawn
  uniformly from the probability simplex (Dirichlet(1)).
* The click candidate is drawn among the *distinct* items of the slate (a repeated item
  is shown once), with probability ``r(a | s) / sum_{b in slate} r(b | s)``. The Bernoulli
  success is the click: reward 1, the item is recorded as clicked and the user moves to
  ``s' ~ P(. | a, s)``. A failure is no click, reward 0, and the end of the session.
* One uniform decides candidate and success together: ``P(click a) = r(a)^2 / sum r``,
  and ``P(leave) = 1 - sum r(a)^2 / sum r``; a second uniform drives the transition.
"""

from __future__ import annotations

import torch

from recgym.core import validation
from recgym.core.env import EnvSetup, FamilyEnv, FamilyVectorEnv
from recgym.simulators.synthetic_mdp import (  # re-exported: the README's import path
    LOGGING_POLICIES,
    MaxRewardPolicy,
    MixRewardPolicy,
    SyntheticMDP,
    SyntheticWorld,
    logging_policy,
    observation_spaces,
)

__all__ = ["LOGGING_POLICIES", "MaxRewardPolicy", "MixRewardPolicy", "SyntheticMDP",
           "SyntheticMDPEnv", "SyntheticMDPVectorEnv", "SyntheticWorld", "logging_policy",
           "observation_spaces"]


def build_simulator(num_states: int = 10, num_items: int = 50, slate_size: int = 10, *,
                    history_length: int = 10, observe_state: bool = False, world_seed: int = 0,
                    device: torch.device | str = "cpu") -> EnvSetup:
    """The world of ``SyntheticMDP-v0`` and what the agent sees (arguments as in its manual)."""
    simulator = SyntheticMDP(num_states, num_items, slate_size, history_length=history_length,
                             world_seed=world_seed, device=device)
    observe_state = validation.flag("observe_state", observe_state)
    return EnvSetup(simulator, ("clicks", "true_state") if observe_state else ("clicks",))


class SyntheticMDPEnv(FamilyEnv):
    """One user of the synthetic recommendation MDP (IRecGAN sec. 7.1).

    ## Description

    The synthetic recommendation MDP of IRecGAN (Bai et al., NeurIPS 2019), section 7.1.
    The world has ``m`` hidden user states and ``n`` items, with random transitions
    ``P(s' | item, s)`` and rewards ``r(item | s) ~ U(0, 1)`` drawn from ``world_seed``.
    Each step the agent shows ``k`` items; the user picks one as the click candidate with
    probability proportional to its reward, then clicks it with probability equal to its
    reward. A click continues the session and moves the user to a new state; no click ends
    it.

    ## Action Space

    ``MultiDiscrete([n] * k)``: the slate, ``k`` item ids, best position first. A slate
    with repeated items shows each item once: the repeats are dropped (they can neither
    be clicked nor change the click probabilities).

    ## Observation Space

    | key | shape | dtype | range | meaning |
    |---|---|---|---|---|
    | clicks | (history_length,) | int64 | 0 .. n | last clicks, oldest first; n: none yet |
    | true_state | () | int64 | 0 .. m-1 | hidden state (with ``observe_state=True``) |

    With ``observe_state=False`` (default) the observation is the ``clicks`` array itself;
    otherwise a ``Dict`` of both.

    ## Rewards

    1 for a click (the Bernoulli success), 0 otherwise. The return of a session is its
    number of clicks.

    ## Starting State

    Every session starts in the special state s0 (state 0) with an empty click history.

    ## Episode End

    Terminated when the user does not click. Truncated after ``max_episode_steps`` (200 as
    registered).

    ## Arguments

    ```python
    import gymnasium as gym, recgym
    env = gym.make("SyntheticMDP-v0", num_states=10, num_items=50, slate_size=10,
                   history_length=10, observe_state=False, world_seed=0, device="cpu")
    ```

    Every env also takes ``num_threads`` (default 1, or ``RECGYM_NUM_THREADS``): the torch
    threads of each step, after which the caller's count is restored (docs/scaling.md,
    "Thread policy").

    The ground truth is ``env.unwrapped.simulator.world`` (``rewards``, ``transition``).

    ## Vectorized environment

    ``gym.make_vec("SyntheticMDP-v0", num_envs=4096, vectorization_mode="vector_entry_point")``
    steps all users in one torch call (:class:`SyntheticMDPVectorEnv`); add ``compile=True``
    to fuse each step with ``torch.compile`` (same trajectories, about twice as fast at
    thousands of users, after ~10-20 s of compilation).

    ## Version History

    * v0: initial version.
    """

    build_simulator = staticmethod(build_simulator)


class SyntheticMDPVectorEnv(FamilyVectorEnv):
    """``num_envs`` users of :class:`SyntheticMDPEnv` stepped together (same arguments)."""

    build_simulator = staticmethod(build_simulator)
