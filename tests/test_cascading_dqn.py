"""Cascading DQN (Chen et al. 2019, sec. 5), its variants and hybrid LinUCB on tiny worlds."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.bandits import HybridLinUCB
from agents.cascading_dqn import (
    CascadingDQN,
    CascadingDQNConfig,
    CascadingQNetworks,
    CDQNTraining,
    GreedyUserModelPolicy,
)
from recgym.core.policy import RandomPolicy, distinct
from recgym.core.simulator import Step
from recgym.evaluation import evaluate_policy
from recgym.simulators.gan_user.model import GANUserConfig, GANUserModel

VALUES = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.3, 0.5])
BEST = {1, 3}  # the two items of highest value


class TinyUsers:
    """Six one-hot items in a freshly shuffled pool each step; the best slate is known.

    Reward: the summed value of the two shown items. The user clicks shown item ``i``
    with probability ``value_i / 2`` (at most one click).
    """

    num_items = 6
    num_candidates = 6
    slate_size = 2

    def __init__(self) -> None:
        self.features = torch.eye(6)

    def _pool(self, batch: int, rng) -> torch.Tensor:
        return rng.uniform(6).argsort(1)

    def reset(self, batch_size: int, rng) -> dict:
        """A first shuffled pool."""
        return {"pool": self._pool(batch_size, rng)}

    def step(self, state: dict, slate: torch.Tensor, rng) -> Step:
        """Reward, click and the next pool."""
        shown = state["pool"].gather(1, slate)
        cumulative = (VALUES[shown] / 2).cumsum(1)
        pick = (cumulative <= rng.uniform(1)).sum(1)
        clicked = torch.where(pick < 2, shown.gather(1, pick.clamp(max=1)[:, None])[:, 0], -1)
        return Step(state={"pool": self._pool(len(slate), rng)}, reward=VALUES[shown].sum(1),
                    clicked=clicked, terminated=torch.zeros(len(slate), dtype=torch.bool))

    def observe(self, state: dict) -> dict:
        """No history (zeros); the pool's one-hot features."""
        pool = state["pool"]
        return {"history": torch.zeros(len(pool), 6),
                "candidates": self.features[pool].flatten(1)}

    def observation_spaces(self) -> dict:
        """Single-user spaces."""
        return {"history": gym.spaces.Box(0, 1, (6,), np.float32),
                "candidates": gym.spaces.Box(0, 1, (36,), np.float32)}


def _shown_items(users: TinyUsers, n: int = 200) -> tuple[dict, torch.Tensor]:
    from recgym.core.batch import SimulationBatch

    batch = SimulationBatch(users, n)
    observation = batch.observe()
    return observation, batch.state["pool"]


@pytest.mark.parametrize("variant", ["cascading", "additive"])
def test_q_learning_finds_the_best_slate(variant):
    users = TinyUsers()
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=1, slate_size=2,
                                            variant=variant, hidden=32), seed=0)
    log = agent.fit(users, CDQNTraining(iterations=60, num_users=64, batch_size=64, warmup=128,
                                        gamma=0.5, learning_rate=3e-3, target_update=20,
                                        seed=0))
    assert len(log) == 60 and len(agent.history) == 60
    observation, pool = _shown_items(users)
    slate = agent.act(observation)
    shown = pool.gather(1, slate)
    optimal = np.mean([set(row) == BEST for row in shown.tolist()])
    assert optimal > 0.95
    trained = evaluate_policy(users, agent, 200, max_steps=5).mean_return
    random = evaluate_policy(users, RandomPolicy(6, 2), 200, max_steps=5).mean_return
    assert trained > random + 2.0  # optimum 8.5 vs 4.7 for random over 5 steps


def test_click_reward_variant_maximises_clicks():
    users = TinyUsers()
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=1, slate_size=2,
                                            reward="click", hidden=32), seed=1)
    agent.fit(users, CDQNTraining(iterations=60, num_users=64, batch_size=64, warmup=128,
                                  gamma=0.0, learning_rate=3e-3, seed=1))
    assert agent.name == "GAN-RWD1"
    trained = evaluate_policy(users, agent, 400, max_steps=5).ctr
    random = evaluate_policy(users, RandomPolicy(6, 2), 400, max_steps=5).ctr
    assert trained > random + 0.2  # 0.85 at best vs 0.47


def _explicit_q(network: CascadingQNetworks, j: int, state, features) -> torch.Tensor:
    """``q_j^T relu(L_j [s; f_1..f_j] + c_j)`` with ``L_j`` rebuilt as one matrix (eq. 9)."""
    hidden = network.config.hidden
    item_weight = network.item.weight[j * hidden:(j + 1) * hidden]
    full = torch.cat([network.prefix[j].weight, item_weight], dim=1)
    inputs = torch.cat([state, features.flatten(1)], dim=1)
    return torch.relu(inputs @ full.T + network.prefix[j].bias) @ network.out[j]


@torch.no_grad()
def test_cascade_selection_matches_brute_force_algorithm_1():
    torch.manual_seed(0)
    config = CascadingDQNConfig(feature_dim=4, history=2, slate_size=3, hidden=16)
    network = CascadingQNetworks(config)
    history, candidates = torch.randn(8, 2, 4), torch.randn(8, 5, 4)
    state = network.state(history)
    slate, values = network.select(state, candidates)
    for b in range(8):
        chosen: list[int] = []
        for j in range(3):
            best, best_value = None, -float("inf")
            for a in range(5):
                if a in chosen:
                    continue
                features = candidates[b, chosen + [a]][None]
                value = float(_explicit_q(network, j, state[b:b + 1], features))
                if value > best_value:
                    best, best_value = a, value
            chosen.append(best)
            assert values[b, j].item() == pytest.approx(best_value, rel=1e-4, abs=1e-5)
        assert slate[b].tolist() == chosen
    along = network.slate_values(state, candidates, slate)
    assert torch.allclose(along, values, atol=1e-5)


@torch.no_grad()
def test_additive_selection_is_the_best_subset():
    torch.manual_seed(1)
    config = CascadingDQNConfig(feature_dim=4, history=2, slate_size=2, variant="additive",
                                hidden=16)
    network = CascadingQNetworks(config)
    state, candidates = network.state(torch.randn(6, 2, 4)), torch.randn(6, 5, 4)
    slate, values = network.select(state, candidates)
    for b in range(6):
        totals = {pair: float(network.slate_values(state[b:b + 1], candidates[b:b + 1],
                                                   torch.tensor([pair])).sum())
                  for pair in itertools.combinations(range(5), 2)}
        assert set(slate[b].tolist()) == set(max(totals, key=totals.get))
        assert float(values[b].sum()) == pytest.approx(max(totals.values()), rel=1e-4)


@pytest.mark.parametrize("variant", ["cascading", "additive"])
def test_selection_never_repeats_an_item(variant):
    config = CascadingDQNConfig(feature_dim=3, history=2, slate_size=4, variant=variant)
    network = CascadingQNetworks(config)
    same = torch.ones(16, 5, 3)  # identical candidates: ties everywhere
    generator = torch.Generator().manual_seed(0)
    for epsilon in (0.0, 0.5, 1.0):
        slate, _ = network.select(network.state(torch.zeros(16, 2, 3)), same, epsilon,
                                  generator)
        assert distinct(slate).all() and slate.max() < 5


def test_checkpoint_round_trip(tmp_path):
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=1, slate_size=2), seed=3)
    agent.history.append({"iteration": 0.0, "reward": 1.5})
    agent.save(tmp_path / "cdqn.pt")
    loaded = CascadingDQN.load(tmp_path / "cdqn.pt")
    observation, _ = _shown_items(TinyUsers())
    assert loaded.config == agent.config and loaded.history == agent.history
    assert torch.equal(loaded.q_values(observation)[1], agent.q_values(observation)[1])
    with pytest.raises(ValueError, match="not a cascading DQN checkpoint"):
        CascadingDQN.from_checkpoint({"kind": "gan-user"})


def test_mismatched_observation_sizes_are_named():
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=2, slate_size=2))
    observation, _ = _shown_items(TinyUsers())  # history of one click, not two
    with pytest.raises(ValueError, match="'history' must have shape"):
        agent.act(observation)
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=5, history=1, slate_size=2))
    with pytest.raises(ValueError, match="'candidates' must have shape"):
        agent.act({"history": torch.zeros(3, 5), "candidates": torch.zeros(3, 36)})
    with pytest.raises(KeyError, match="candidates"):
        agent.act({"history": torch.zeros(3, 5)})
    wrong_k = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=1, slate_size=3))
    with pytest.raises(ValueError, match="slate_size=3"):
        wrong_k.fit(TinyUsers(), CDQNTraining(iterations=1))


def test_greedy_policy_shows_the_highest_reward_items():
    torch.manual_seed(0)
    model = GANUserModel(GANUserConfig(feature_dim=3, history=2, hidden=8))
    history, candidates = torch.randn(4, 6), torch.randn(4, 15)
    slate = GreedyUserModelPolicy(model, 2).act({"history": history, "candidates": candidates})
    rewards = model.reward(model.state(history.view(4, 2, 3)), candidates.view(4, 5, 3))
    assert torch.equal(rewards.gather(1, slate), rewards.topk(2, dim=1).values)


def test_linucb_learns_the_high_click_items():
    users = TinyUsers()
    bandit = HybridLinUCB(6, 1, 2, alpha=0.5)
    log = bandit.fit(users, iterations=30, num_users=64, seed=0)
    assert bandit.num_arms == 6 and len(log) == 30
    trained = evaluate_policy(users, bandit, 400, max_steps=5).ctr
    random = evaluate_policy(users, RandomPolicy(6, 2), 400, max_steps=5).ctr
    assert trained > random + 0.2
    with pytest.raises(ValueError, match="'candidates'"):
        bandit.act({"history": torch.zeros(2, 6), "candidates": torch.zeros(2, 7)})
