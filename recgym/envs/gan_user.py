"""GANUserModel-v0: users simulated by the generative adversarial user model of Chen et al.

Each step the user is offered a candidate pool (a logged display set, or items drawn from
the catalogue); the agent shows ``k`` of them; the user clicks one or none with the
learned choice distribution over the shown items and the no-click option (the user's
best response of eq. 2: ``softmax(eta r(s, a))`` for a model fitted with the Shannon
entropy, as eq. 3's Gumbel-max choice; the projection of ``eta r / 2`` onto the simplex
for the L2 regulariser), sampled by inverse CDF; the reward
is the learned reward of the choice; the state advances with the clicked item.

A position repeated in a slate is shown once. Sessions never end by themselves; the
horizon is ``max_episode_steps``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recgym.core import validation
from recgym.core.env import EnvSetup, FamilyEnv, FamilyVectorEnv
from recgym.simulators.gan_user.users import GANUsers


def build_simulator(checkpoint: str | Path | None = None, *, slate_size: int = 5,
                    observe_ids: bool = False, device: torch.device | str = "cpu") -> EnvSetup:
    """The users of ``GANUserModel-v0`` (arguments as in its manual)."""
    users = GANUsers.from_checkpoint(checkpoint, slate_size=slate_size, device=device)
    features = ("history", "candidates")
    ids = ("clicks", "candidate_ids") if validation.flag("observe_ids", observe_ids) else ()
    return EnvSetup(users, features + ids)


class GANUserEnv(FamilyEnv):
    """One user simulated by a fitted GAN user model (Chen et al., ICML 2019).

    ## Description

    The user of sec. 4 of the paper: a reward ``r(s, a)`` learned from logs, a choice
    among the displayed items or none by ``softmax(eta r)``, a state that embeds the last
    ``m`` clicked items' features. The shipped default (GAN-PW, Shannon entropy) is fitted
    on ml-latest-small page views with 40-item display sets; its pools are logged
    display sets and its sessions start from held-out users' histories.

    ## Action Space

    ``MultiDiscrete([K] * k)``: positions in the candidate pool; a repeated position is
    shown once.

    ## Observation Space

    | key | shape | dtype | meaning |
    |---|---|---|---|
    | history | (m * d,) | float32 | features of the last m clicks, row-major (zeros: none) |
    | candidates | (K * d,) | float32 | features of this step's candidate pool, row-major |

    Both are flattened so SB3's ``MultiInputPolicy`` takes them as they are; reshape to
    ``(m, d)`` / ``(K, d)`` for per-item models. With ``observe_ids=True`` two more keys
    serve id-based policies (e.g. a CF model through `agents.cf.CFPolicy`):

    | key | shape | dtype | meaning |
    |---|---|---|---|
    | clicks | (m,) | int64 | item ids of the last m clicks, oldest first (-1: none) |
    | candidate_ids | (K,) | int64 | item ids of this step's candidate pool |

    ## Rewards

    The learned reward of the user's choice (that of no click when there is none).

    ## Starting State

    A click history of a held-out user drawn uniformly from the checkpoint's start
    histories (none for a checkpoint without them), and a first candidate pool: a logged
    display set drawn uniformly (or ``K`` catalogue items drawn uniformly when the
    checkpoint holds no display sets).

    ## Episode End

    Truncated after ``max_episode_steps`` (the horizon; 10 as registered).

    ## Arguments

    ```python
    gym.make("GANUserModel-v0", checkpoint=None, slate_size=5, observe_ids=False,
             device="cpu")
    ```

    Every env also takes ``num_threads`` (default 1, or ``RECGYM_NUM_THREADS``): the torch
    threads of each step, after which the caller's count is restored (docs/scaling.md,
    "Thread policy").

    ## Vectorized environment

    ``gym.make_vec("GANUserModel-v0", num_envs=1024, vectorization_mode="vector_entry_point")``
    steps all users in one torch call (:class:`GANUserVectorEnv`, same arguments, plus
    ``compile=True``). User ``i`` of a vector env reset with ``seed=s`` follows the
    trajectory of a single env reset with ``seed=s + i``.

    ## Version History

    * v0: initial version.
    """

    build_simulator = staticmethod(build_simulator)


class GANUserVectorEnv(FamilyVectorEnv):
    """``num_envs`` users of :class:`GANUserEnv` stepped together (same arguments)."""

    build_simulator = staticmethod(build_simulator)
