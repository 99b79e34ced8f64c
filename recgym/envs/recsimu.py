"""RecSimu-v0: users simulated by a fitted RecSimu discriminator (Zhao et al., AAAI 2020).

The state is the last ``N`` items a user browsed with the feedback on each (paper,
"Problem Statement"); a recommended item gets feedback drawn from the discriminator's
real-class probabilities ``p(r = l_k | s, a), k <= K``, renormalised; the reward depends
on the feedback class only; the state shifts deterministically: drop the oldest item,
append the recommended one with its feedback.

Readings chosen here:

* The discriminator's GRU state is carried incrementally: it is computed over the ``N``
  logged items at reset, then advanced one GRU step per shown item. After reset it
  therefore summarises the whole simulated history, not only the last ``N`` items that
  the agent observes; stepping the GRU over the window every step would cost ``N`` times
  more for a model trained on windows of ``N``.
* Slates (``RecSimuSlate-v0``): every shown item is judged against the same state, the
  reward is the sum over the slate, and the items then enter the state in slate order.
* Sessions never end by themselves: the horizon is ``max_episode_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from recgym.core import validation
from recgym.core.env import EnvSetup, FamilyEnv, FamilyVectorEnv
from recgym.simulators.recsimu.users import RecSimuUsers


def build_simulator(checkpoint: str | Path | None = None, *, slate_size: int = 1,
                    single_item: bool = True, rewards: Sequence[float] | None = None,
                    purchase_reward: float = 1.0, device: torch.device | str = "cpu"
                    ) -> EnvSetup:
    """The users of ``RecSimu-v0`` / ``RecSimuSlate-v0`` (arguments as in the manual)."""
    users = RecSimuUsers.from_checkpoint(checkpoint, slate_size=slate_size, rewards=rewards,
                                         purchase_reward=purchase_reward, device=device)
    single_item = validation.flag("single_item", single_item)
    return EnvSetup(users, ("recent_items", "feedback"), single_item and slate_size == 1)


class RecSimuEnv(FamilyEnv):
    """One user simulated by a fitted RecSimu model (Zhao et al., AAAI 2020).

    ## Description

    A user whose feedback on a recommended item (skip / click / purchase, or negative /
    positive) is drawn from the real-class probabilities of a RecSimu discriminator
    fitted on logs. The shipped default is fitted on MovieLens ml-latest-small (positive:
    rating >= 4) and rebuilt by the command in ``envs_data/recsimu-ml-latest-small.md``.

    ## Action Space

    ``RecSimu-v0``: ``Discrete(n_items)``, the recommended item. ``RecSimuSlate-v0``:
    ``MultiDiscrete([n_items] * k)``, every item gets feedback; a repeated item is judged
    twice.

    ## Observation Space

    | key | shape | dtype | range | meaning |
    |---|---|---|---|---|
    | recent_items | (N,) | int64 | 0 .. n_items-1 | last N browsed items, oldest first |
    | feedback | (N,) | int64 | 0 .. K-1 | feedback class on each |

    ## Rewards

    Per shown item, by feedback class: ``rewards`` (default 0 for class 0, 1 for class 1,
    ``purchase_reward`` for class 2), summed over the slate.

    ## Starting State

    A logged state (N consecutive items with feedback) from the held-out tuples of the
    fitted model, drawn uniformly.

    ## Episode End

    Never terminates; truncated after ``max_episode_steps`` (the horizon; 20 as
    registered).

    ## Arguments

    ```python
    gym.make("RecSimu-v0", checkpoint=None, rewards=None, purchase_reward=1.0, device="cpu")
    gym.make("RecSimuSlate-v0", slate_size=5)
    ```

    Every env also takes ``num_threads`` (default 1, or ``RECGYM_NUM_THREADS``): the torch
    threads of each step, after which the caller's count is restored (docs/scaling.md,
    "Thread policy").

    ``info["feedback"]`` holds the sampled feedback classes.

    ## Vectorized environment

    ``gym.make_vec("RecSimu-v0", num_envs=1024, vectorization_mode="vector_entry_point")``
    steps all users in one torch call (:class:`RecSimuVectorEnv`, same arguments, plus
    ``compile=True``). User ``i`` of a vector env reset with ``seed=s`` follows the
    trajectory of a single env reset with ``seed=s + i``.

    ## Version History

    * v0: initial version.
    """

    build_simulator = staticmethod(build_simulator)


class RecSimuVectorEnv(FamilyVectorEnv):
    """``num_envs`` RecSimu users stepped together (arguments as :class:`RecSimuEnv`)."""

    build_simulator = staticmethod(build_simulator)
