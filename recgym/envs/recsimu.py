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

from recgym.core.env import RecEnv, RecVectorEnv
from recgym.simulators.recsimu.users import RecSimuUsers

_KEYS = ("recent_items", "feedback")


class RecSimuEnv(RecEnv):
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

    ``info["feedback"]`` holds the sampled feedback classes.

    ## Version History

    * v0: initial version.
    """

    def __init__(self, checkpoint: str | Path | None = None, *, slate_size: int = 1,
                 single_item: bool = True, rewards: Sequence[float] | None = None,
                 purchase_reward: float = 1.0, device: torch.device | str = "cpu",
                 render_mode: str | None = None) -> None:
        users = RecSimuUsers.from_checkpoint(checkpoint, slate_size=slate_size, rewards=rewards,
                                             purchase_reward=purchase_reward, device=device)
        super().__init__(users, observation_keys=_KEYS, single_item=single_item and
                         slate_size == 1, device=device, render_mode=render_mode)


class RecSimuVectorEnv(RecVectorEnv):
    """``num_envs`` RecSimu users stepped together (arguments as :class:`RecSimuEnv`)."""

    def __init__(self, num_envs: int = 1, checkpoint: str | Path | None = None, *,
                 slate_size: int = 1, single_item: bool = True,
                 rewards: Sequence[float] | None = None, purchase_reward: float = 1.0,
                 max_episode_steps: int | None = 20, device: torch.device | str = "cpu",
                 compile: bool = False, render_mode: str | None = None) -> None:
        users = RecSimuUsers.from_checkpoint(checkpoint, slate_size=slate_size, rewards=rewards,
                                             purchase_reward=purchase_reward, device=device)
        super().__init__(users, num_envs, observation_keys=_KEYS,
                         single_item=single_item and slate_size == 1,
                         max_episode_steps=max_episode_steps, device=device, compile=compile,
                         render_mode=render_mode)
