"""The policies a simulator must rank: reference, logged, fixed, greedy and learned ones.

Every policy acts on what an agent sees, the ``clicks`` history, so it runs unchanged in
the world and in any simulator. Four read the hidden state where the observation has it
(``true_state``): the oracle, the mix logging policy and the two epsilon-mixes built on
the oracle. They are ground-truth policies (a deployable recommender could not read the
state), kept because the paper uses them and they span the range of values. In a
simulator without ``true_state`` (every non-privileged kind) they act as if the user were
in the start state s0, the only state known without privilege: the oracle then shows the
start state's top-k at every step. So their simulated value is the value of that
reading, a policy the world never plays: the tables flag them (``reads_true_state``) and
the headline metrics leave them out (subset ``deployable``).

The deployable policies span the same range without the state: ``belief`` tracks which
hidden state the clicks so far point to, with the world's tables (an informed
recommender, not an agent that learned), and its epsilon-mixes sit between it and
random.

Each entry is a :class:`PolicySpec` whose ``make`` returns a fresh policy, so the world
and the simulator see the same random draws of a policy that samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core import Policy, RandomPolicy, RecVectorEnv, SB3Policy, UserSimulator
from recgym.evaluation import collect_logs
from recgym.simulators.synthetic_mdp import MaxRewardPolicy, MixRewardPolicy, SyntheticMDP


@dataclass(frozen=True)
class PolicySpec:
    """One policy of the set.

    Attributes:
        name: row name in the tables.
        make: returns a fresh policy (restarts its random generator).
        reads_true_state: acts on the hidden state where the observation has it.
        description: what it does, for reports.
    """

    name: str
    make: Callable[[], Policy]
    reads_true_state: bool = False
    description: str = ""


class StartStateFallback:
    """Runs a policy that reads ``true_state`` where there is none: as if in state s0.

    Args:
        policy: a policy that reads ``observation["true_state"]``.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.slate_size = policy.slate_size

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """The wrapped policy's slates, with state 0 filled in when the state is hidden."""
        if "true_state" not in observation:
            clicks = observation["clicks"]
            observation = {**observation, "true_state": torch.zeros(
                clicks.shape[0], dtype=torch.int64, device=clicks.device)}
        return self.policy.act(observation)


class FixedSlate:
    """The same slate for every user at every step.

    Args:
        slate: int ``(k,)`` item ids.
    """

    def __init__(self, slate: Tensor | np.ndarray) -> None:
        self.slate = torch.as_tensor(np.asarray(slate), dtype=torch.int64)
        self.slate_size = int(self.slate.shape[0])

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """``slate`` repeated over the batch."""
        clicks = observation["clicks"]
        return self.slate.to(clicks.device).expand(clicks.shape[0], -1).clone()


class EpsilonMix:
    """Each user, each step: a random slate with probability ``epsilon``, else ``base``'s.

    Args:
        base: the greedy policy.
        num_items: catalogue size (for the random slates).
        epsilon: share of random slates.
        seed: seed of the coin and of the random slates.
    """

    def __init__(self, base: Policy, num_items: int, epsilon: float, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.base = base
        self.slate_size = base.slate_size
        self.epsilon = epsilon
        self.random = RandomPolicy(num_items, base.slate_size, seed=seed + 1)
        self.generator = torch.Generator().manual_seed(seed)

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Per-user coin between the random and the base slate."""
        greedy = self.base.act(observation)
        explore = self.random.act(observation).to(greedy.device)
        coin = torch.rand(greedy.shape[0], generator=self.generator) < self.epsilon
        return torch.where(coin.to(greedy.device)[:, None], explore, greedy)


class BeliefGreedy:
    """Top-k by expected reward under a belief over the hidden state, updated by the clicks.

    The belief starts on s0 and follows each observed click ``a``:
    ``b'(s') ~ sum_s b(s) r(a|s)^2 c(a|s) P(s'|a, s)``, where ``r(a|s)^2`` is the click
    weight of ``a`` (its slate normaliser, unknown from clicks alone, is left out) and
    ``c(a|s)`` the world's continuation (1 in the paper's world). Only the last
    ``history_length`` clicks are observed, so long sessions are filtered from s0 over
    that window: an approximate filter, which is enough to rank near the oracle.

    Args:
        world: the reference world (its tables, not its state).
    """

    def __init__(self, world: SyntheticMDP) -> None:
        tables = world.world
        self.rewards = tables.rewards.double()
        likelihood = self.rewards.pow(2)
        if tables.continuation is not None:
            likelihood = likelihood * tables.continuation.double()
        self.likelihood = likelihood.T.contiguous()  # (n, m)
        self.transition = tables.transition.double()  # (n, m, m)
        self.num_items = world.num_items
        self.slate_size = world.slate_size

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Filter each user's clicks, then the top-k of the expected rewards."""
        clicks = observation["clicks"].cpu()
        belief = torch.zeros(clicks.shape[0], self.rewards.shape[0], dtype=torch.float64)
        belief[:, 0] = 1.0
        for column in clicks.T:
            seen = column < self.num_items
            item = column.clamp(max=self.num_items - 1)
            weighted = belief * self.likelihood[item]
            moved = torch.bmm(weighted[:, None, :], self.transition[item])[:, 0]
            moved = moved / moved.sum(1, keepdim=True).clamp(min=1e-300)
            belief = torch.where(seen[:, None], moved, belief)
        slate = (belief @ self.rewards).topk(self.slate_size, dim=1).indices
        return slate.to(observation["clicks"].device)


def start_click_rates(simulator: UserSimulator, *, n_sessions: int = 20_000,
                      seed: int = 0) -> np.ndarray:
    """Each item's click rate per show on a session's first page, estimated by roll-out.

    Random slates are shown to ``n_sessions`` fresh users of ``simulator`` (one page
    each), through the ``UserSimulator`` protocol only, so it works for any simulator.

    Returns:
        float64 ``(num_items,)``; items never shown get 0.
    """
    policy = RandomPolicy(simulator.num_items, simulator.slate_size, seed=seed)
    logs = collect_logs(simulator, policy, n_sessions, seed=seed, max_steps=1)
    slates = np.stack(logs["slate"].to_numpy()).astype(np.int64)
    shows = np.bincount(slates.ravel(), minlength=simulator.num_items)
    clicks = logs["click"].to_numpy()
    clicked = np.bincount(clicks[clicks >= 0], minlength=simulator.num_items)
    return np.divide(clicked, shows, out=np.zeros(simulator.num_items), where=shows > 0)


def popular_items(logs: pd.DataFrame, num_items: int, slate_size: int) -> np.ndarray:
    """The ``slate_size`` most clicked items of a log (ties: lower id first)."""
    clicks = logs["click"].to_numpy()
    counts = np.bincount(clicks[clicks >= 0], minlength=num_items)
    return np.argsort(-counts, kind="stable")[:slate_size]


def train_ppo(simulator: UserSimulator, timesteps: int, *, num_envs: int = 64,
              seed: int = 0, max_episode_steps: int = 200) -> SB3Policy:
    """stable-baselines3 PPO trained on ``simulator``'s batched users, seeing ``clicks`` only.

    Args:
        simulator: where to train (the world, or a fitted simulator).
        timesteps: PPO's total environment steps (over all ``num_envs`` users).
        num_envs: users stepped together.
        seed: seed of PPO and of the users.
        max_episode_steps: sessions are cut after this many pages.
    """
    from stable_baselines3 import PPO

    from recgym.core.sb3 import SB3VecEnv

    vec_env = RecVectorEnv(simulator, num_envs, observation_keys=("clicks",),
                           max_episode_steps=max_episode_steps)
    venv = SB3VecEnv(vec_env)
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=4, learning_rate=1e-3,
                ent_coef=0.0, seed=seed, device="cpu")
    model.learn(total_timesteps=timesteps)
    return SB3Policy(model, ("clicks",), simulator.slate_size)


def policy_set(world: SyntheticMDP, logs: pd.DataFrame, *, greedy_rates: np.ndarray | None = None,
               ppo: Policy | None = None, seed: int = 0) -> list[PolicySpec]:
    """The scored policies of a reference world (see the module docstring).

    Args:
        world: the reference world (its tables define the oracle, mix and fixed slates).
        logs: the log the simulator is fitted on (popularity).
        greedy_rates: a simulator's predicted click rates (:func:`start_click_rates`); adds
            ``greedy-sim``, the top-k of those rates.
        ppo: a policy trained in the world (:func:`train_ppo`); adds ``ppo-world``.
        seed: seed of the sampling policies.
    """
    n, k = world.num_items, world.slate_size
    start = world.world.rewards[0]
    best, worst = start.topk(k).indices, (-start).topk(k).indices
    middle = start.argsort(descending=True)[(n - k) // 2:(n - k) // 2 + k]

    def oracle() -> Policy:
        return StartStateFallback(MaxRewardPolicy(world.world, k))

    specs = [
        PolicySpec("random", lambda: RandomPolicy(n, k, seed=seed), False,
                   "uniformly random slates"),
        PolicySpec("oracle", oracle, True, "top-k by true reward in the true state (pi_max)"),
        PolicySpec("mix", lambda: StartStateFallback(MixRewardPolicy(world.world, k, seed=seed)),
                   True, "the mix logging policy of sec. 7.1"),
        PolicySpec("popular", lambda: FixedSlate(popular_items(logs, n, k)), False,
                   "the k most clicked items of the log"),
        PolicySpec("oracle-eps0.3", lambda: EpsilonMix(oracle(), n, 0.3, seed=seed), True,
                   "oracle, random slate with probability 0.3"),
        PolicySpec("oracle-eps0.7", lambda: EpsilonMix(oracle(), n, 0.7, seed=seed), True,
                   "oracle, random slate with probability 0.7"),
        PolicySpec("best-k-s0", lambda: FixedSlate(best), False,
                   "fixed top-k of the start state"),
        PolicySpec("worst-k-s0", lambda: FixedSlate(worst), False,
                   "fixed bottom-k of the start state"),
        PolicySpec("middle-k-s0", lambda: FixedSlate(middle), False,
                   "fixed k items from the middle of the start state's ranking"),
        PolicySpec("belief", lambda: BeliefGreedy(world), False,
                   "top-k under the belief over states the clicks point to"),
        PolicySpec("belief-eps0.3", lambda: EpsilonMix(BeliefGreedy(world), n, 0.3, seed=seed),
                   False, "belief, random slate with probability 0.3"),
        PolicySpec("belief-eps0.7", lambda: EpsilonMix(BeliefGreedy(world), n, 0.7, seed=seed),
                   False, "belief, random slate with probability 0.7"),
    ]
    if greedy_rates is not None:
        greedy = np.argsort(-np.asarray(greedy_rates), kind="stable")[:k]
        specs.append(PolicySpec("greedy-sim", lambda: FixedSlate(greedy), False,
                                "fixed top-k of the simulator's first-page click rates"))
    if ppo is not None:
        specs.append(PolicySpec("ppo-world", lambda: ppo, False,
                                "PPO trained in the true world on clicks"))
    return specs
