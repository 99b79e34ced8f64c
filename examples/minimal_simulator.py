"""A minimal recgym simulator, end to end: the worked example of docs/adding_a_simulator.md.

Run it as a newcomer would: ``python examples/minimal_simulator.py`` registers
``recgym-examples/Taste-v0``, steps 1,024 users in one torch call, and prints the return
of random slates and of the slate of the items liked most on average.
``tests/test_registry.py`` runs every registry check on this env too.
"""

from __future__ import annotations

import gymnasium as gym
import torch

from recgym.core import EnvSetup, FamilyEnv, FamilyVectorEnv, Step
from recgym.core.policy import repeated_positions

ENV_ID = "recgym-examples/Taste-v0"


class TasteUsers:
    """Users with a hidden taste (implements ``recgym.core.UserSimulator``).

    A shown item is clicked with probability ``affinity[taste, item]``, each position
    independently (a repeated item is shown once); the reward is the number of clicks;
    a slate without a click ends the session.
    """

    def __init__(self, num_items: int = 20, num_tastes: int = 3, slate_size: int = 3, *,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        if not 1 <= slate_size <= num_items:
            raise ValueError(f"slate_size must be in [1, num_items={num_items}], "
                             f"got {slate_size}")
        generator = torch.Generator().manual_seed(seed)
        self.device = torch.device(device)
        self.affinity = 0.5 * torch.rand(num_tastes, num_items, generator=generator)
        self.affinity = self.affinity.to(self.device)
        self.num_items, self.num_tastes, self.slate_size = num_items, num_tastes, slate_size

    def reset(self, batch_size: int, rng) -> dict[str, torch.Tensor]:
        """Each user draws a taste from its own random stream; no click yet."""
        taste = (rng.uniform(1)[:, 0] * self.num_tastes).long().clamp(max=self.num_tastes - 1)
        none = torch.full((batch_size,), self.num_items, device=self.device)
        return {"taste": taste.to(self.device), "last_click": none}

    def step(self, state: dict[str, torch.Tensor], slate: torch.Tensor, rng) -> Step:
        """Independent clicks on the distinct shown items; no click ends the session."""
        chance = self.affinity[state["taste"][:, None], slate]
        clicks = (rng.uniform(self.slate_size) < chance) & ~repeated_positions(slate)
        clicked_any = clicks.any(1)
        first = slate.gather(1, clicks.to(torch.int8).argmax(1, keepdim=True))[:, 0]
        return Step(state={"taste": state["taste"],
                           "last_click": torch.where(clicked_any, first, state["last_click"])},
                    reward=clicks.sum(1).float(), clicked=torch.where(clicked_any, first, -1),
                    terminated=~clicked_any)

    def observe(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The agent sees the last clicked item only (``num_items``: none yet)."""
        return {"last_click": state["last_click"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user space of each observation key."""
        return {"last_click": gym.spaces.Discrete(self.num_items + 1)}


def build_simulator(num_items: int = 20, num_tastes: int = 3, slate_size: int = 3, *,
                    seed: int = 0, device: torch.device | str = "cpu") -> EnvSetup:
    """The users of ``Taste-v0`` and the observation keys the agent sees."""
    return EnvSetup(TasteUsers(num_items, num_tastes, slate_size, seed=seed, device=device),
                    ("last_click",))


class TasteEnv(FamilyEnv):
    """One user with a hidden taste.

    ## Description

    Each user has one of ``num_tastes`` hidden tastes; each shown item is clicked with
    probability ``affinity[taste, item] ~ U(0, 0.5)`` (drawn once from ``seed``).

    ## Action Space

    ``MultiDiscrete([num_items] * slate_size)``; a repeated item is shown once.

    ## Observation Space

    ``Discrete(num_items + 1)``: the last clicked item (``num_items``: none yet).

    ## Rewards

    The number of clicked items of the slate.

    ## Starting State

    A taste drawn uniformly; no click yet.

    ## Episode End

    Terminated by a slate without a click; truncated after 50 steps as registered.

    ## Arguments

    ``gym.make("recgym-examples/Taste-v0", num_items=20, num_tastes=3, slate_size=3, seed=0)``

    ## Vectorized environment

    ``gym.make_vec(ENV_ID, num_envs=N, vectorization_mode="vector_entry_point")`` steps all
    users in one torch call (:class:`TasteVectorEnv`).

    ## Version History

    * v0: initial version.
    """

    build_simulator = staticmethod(build_simulator)


class TasteVectorEnv(FamilyVectorEnv):
    """``num_envs`` users of :class:`TasteEnv` stepped together (same arguments)."""

    build_simulator = staticmethod(build_simulator)


def register() -> None:
    """Register ``recgym-examples/Taste-v0`` with Gymnasium.

    A simulator that ships with recgym adds one line to ``recgym/registration.py`` instead.
    """
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=f"{__name__}:TasteEnv",
                     vector_entry_point=f"{__name__}:TasteVectorEnv", max_episode_steps=50)


class PopularSlate:
    """A policy that always shows the items liked most on average over the tastes."""

    def __init__(self, users: TasteUsers) -> None:
        self.slate_size = users.slate_size
        self.slate = users.affinity.mean(0).topk(users.slate_size).indices

    def act(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """The same slate for every user of the batch."""
        return self.slate.expand(len(observation["last_click"]), -1)


def main() -> None:
    """Make the vector env and compare two policies on 1,024 users."""
    from recgym.core import RandomPolicy
    from recgym.evaluation import evaluate_policy

    register()
    envs = gym.make_vec(ENV_ID, num_envs=1024, vectorization_mode="vector_entry_point")
    users = envs.unwrapped.simulator
    policies = {"random slates": RandomPolicy(users.num_items, users.slate_size, seed=0),
                "popular slate": PopularSlate(users)}
    for name, policy in policies.items():
        result = evaluate_policy(users, policy, n_sessions=1024, max_steps=50)
        print(f"{name}: {result.mean_return:.2f} +- {result.return_std_err:.2f} clicks per "
              "session")


if __name__ == "__main__":
    main()
