"""Reference worlds with a known truth, and their offline logs.

Synthetic MDPs (IRecGAN sec. 7.1) on which every simulator kind is scored:

* ``default``: the paper's world (m = 10 states, n = 50 items, k = 10), world seed 0.
* ``large``: m = 20, n = 200, k = 10: more items than 10,000 logged sessions show often.
* ``decoupled``: the default sizes, but a click on ``a`` in ``s`` continues the session
  with its own probability ``P(continue | a, s) ~ U(0.5, 1)``, drawn independently of the
  click table. A simulator that gets which items are clicked right does not get the
  value of a policy right by luck: it must also learn what keeps a user.
* ``clickbait``: the default sizes, but a fifth of the items are clicked eagerly in every
  ordinary state and lead to two churn states where nothing appeals
  (:meth:`SyntheticWorld.clickbait`): the greedy slate loses users, and planning pays
  (the best slates over 10 steps earn about three times the greedy ones' clicks).

Logs come from the logging policies of sec. 7.1 (random, max, mix) through
:func:`recgym.evaluation.collect_logs`, with the hidden state as a ``true_state`` column:
it lets the privileged references (the true model, ``count-privileged``) be scored, and
no other simulator kind reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from recgym.evaluation import collect_logs
from recgym.simulators.synthetic_mdp import LOGGING_POLICIES, SyntheticMDP, SyntheticWorld
from recgym.simulators.synthetic_mdp import logging_policy as _logging_policy

WORLDS = ("default", "large", "decoupled", "clickbait")
LOG_SIZES = (1_000, 10_000)
DECOUPLED_CONTINUATION = (0.5, 1.0)
# held-out logs use user streams far from those of any training log (seeds 0 .. 10^5)
HELD_OUT_SEED = 1_000_000


@dataclass(frozen=True)
class WorldInfo:
    """What a simulator kind may know about the world it is fitted for (no ground truth).

    Attributes:
        num_items: catalogue size ``n``.
        slate_size: items per slate ``k``.
        history_length: recent clicks an agent observes.
        seed: seed of the fit (weights, batches).
    """

    num_items: int
    slate_size: int
    history_length: int
    seed: int = 0


def make_world(name: str, *, seed: int = 0, device: torch.device | str = "cpu") -> SyntheticMDP:
    """A reference world by name (see the module docstring); ``seed`` draws its tables."""
    if name == "default":
        return SyntheticMDP(world_seed=seed, device=device)
    if name == "large":
        return SyntheticMDP(20, 200, 10, world_seed=seed, device=device)
    if name == "decoupled":
        world = SyntheticWorld.random(10, 50, seed, continuation=DECOUPLED_CONTINUATION)
        return SyntheticMDP(slate_size=10, world=world, device=device)
    if name == "clickbait":
        return SyntheticMDP(slate_size=10, world=SyntheticWorld.clickbait(10, 50, seed),
                            device=device)
    raise ValueError(f"unknown world {name!r}; choose one of {WORLDS}")


def world_info(world: SyntheticMDP, seed: int = 0) -> WorldInfo:
    """The non-privileged facts of a world a simulator kind is fitted with."""
    return WorldInfo(world.num_items, world.slate_size, world.history_length, seed)


def logging_policy(name: str, world: SyntheticMDP, *, seed: int = 0):
    """A logging policy of sec. 7.1 (``random``, ``max``, ``mix``) in a reference world."""
    if name not in LOGGING_POLICIES:
        raise ValueError(f"unknown logging policy {name!r}; choose one of {LOGGING_POLICIES}")
    return _logging_policy(name, world, seed=seed)


def make_logs(world: SyntheticMDP, logging: str, n_sessions: int, *, seed: int = 0,
              max_steps: int = 200) -> pd.DataFrame:
    """``n_sessions`` logged sessions of ``world`` under a logging policy of sec. 7.1.

    Session ``i`` uses user stream ``seed + i`` and the policy is seeded with ``seed``, so
    two calls with the same arguments give the same log. The log carries ``true_state``
    (privileged: only kinds documented as such may read it).
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    policy = logging_policy(logging, world, seed=seed)
    return collect_logs(world, policy, n_sessions, seed=seed, max_steps=max_steps,
                        extra_observation_keys=("true_state",))


def held_out_logs(world: SyntheticMDP, logging: str, n_sessions: int = 2000, *,
                  max_steps: int = 200) -> pd.DataFrame:
    """Fresh sessions of the same logging policy, on user streams no training log uses."""
    return make_logs(world, logging, n_sessions, seed=HELD_OUT_SEED, max_steps=max_steps)
