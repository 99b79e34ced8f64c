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
    GreedyPolicy,
    logged_transitions,
)
from recgym.core.batch import SimulationBatch
from recgym.core.policy import RandomPolicy, distinct
from recgym.core.simulator import Step
from recgym.evaluation import evaluate_policy
from recgym.simulators.gan_user import GANUsers
from recgym.simulators.gan_user.baselines import LogisticClickModel
from recgym.simulators.gan_user.fit import PageViews
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
    with pytest.raises(ValueError, match="checkpoint of .gan-user., expected .cascading-dqn."):
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
    slate = GreedyPolicy(model, 2).act({"history": history, "candidates": candidates})
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


def _id_observation(clicks: list[list[int]], pool: list[list[int]], d: int = 3) -> dict:
    """Random features with the ids of ``observe_ids=True``."""
    generator = torch.Generator().manual_seed(0)
    clicks, pool = torch.tensor(clicks), torch.tensor(pool)
    return {"history": torch.randn(len(pool), clicks.shape[1] * d, generator=generator),
            "candidates": torch.randn(len(pool), pool.shape[1] * d, generator=generator),
            "clicks": clicks, "candidate_ids": pool}


@pytest.mark.parametrize("variant", ["cascading", "additive"])
def test_algorithm_1_skips_clicked_items_unless_too_few_remain(variant):
    torch.manual_seed(0)
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=3, history=2, slate_size=2,
                                            variant=variant, hidden=8))
    # user 0 clicked items 7 and 9, both in the pool; user 1 clicked 7 and 9 of a pool where
    # only one other item is left, fewer than k = 2: nothing is removed for that user
    observation = _id_observation([[7, 9], [7, 9]], [[9, 4, 7, 5], [9, 7, 7, 5]])
    without_ids = {key: observation[key] for key in ("history", "candidates")}
    for _ in range(20):  # fresh weights until the unrestricted choice hits a clicked item
        agent.network = CascadingQNetworks(agent.config)
        free = agent.act(without_ids)
        if {0, 2} & set(free[0].tolist()):
            break
    assert {0, 2} & set(free[0].tolist()), "no draw picked a clicked item; test is vacuous"
    slate = agent.act(observation)
    assert set(slate[0].tolist()) == {1, 3}
    assert torch.equal(slate[1], free[1])
    network = agent.network
    state = network.state(observation["history"].view(2, 2, 3))
    explored, _ = network.select(state, observation["candidates"].view(2, 4, 3), epsilon=1.0,
                                 generator=torch.Generator().manual_seed(1),
                                 excluded=torch.tensor([[True, False, True, False]] * 2))
    assert set(explored[0].tolist()) == {1, 3}


def test_greedy_policy_skips_clicked_items():
    torch.manual_seed(0)
    model = GANUserModel(GANUserConfig(feature_dim=3, history=2, hidden=8))
    observation = _id_observation([[-1, 3], [-1, 3]], [[10, 11, 12], [10, 11, 12]])
    free = GreedyPolicy(model, 1).act(observation)  # no pool item was clicked
    rewards = model.reward(model.state(observation["history"].view(2, 2, 3)),
                           observation["candidates"].view(2, 3, 3))
    assert torch.equal(free, rewards.argmax(1, keepdim=True))
    observation["candidate_ids"] = observation["candidate_ids"].scatter(1, free, 3)
    slate = GreedyPolicy(model, 1).act(observation)  # the best item is now the clicked 3
    assert (slate != free).all()
    assert torch.equal(rewards.gather(1, slate)[:, 0], rewards.topk(2, dim=1).values[:, 1])


def test_cdqn_training_on_the_gan_env_never_recommends_a_clicked_item():
    torch.manual_seed(0)
    model = GANUserModel(GANUserConfig(feature_dim=3, history=2, hidden=8))
    features = torch.rand(6, 3)  # 6 items, pools of 5 drawn with replacement, k = 2
    users = GANUsers(model, features, slate_size=2, pool_size=5)
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=3, history=2, slate_size=2, hidden=8))
    agent.fit(users, CDQNTraining(iterations=8, num_users=32, batch_size=32, warmup=64))
    batch = SimulationBatch(users, 256)
    batch.seed(torch.arange(256))
    batch.reset()
    checked = 0
    for _ in range(5):
        observation = batch.observe()
        slate = agent.act(observation)
        shown = observation["candidate_ids"].gather(1, slate)
        clicked = (shown[:, :, None] == observation["clicks"][:, None, :]).any(-1)
        unclicked = (~(observation["candidate_ids"][:, :, None]
                       == observation["clicks"][:, None, :]).any(-1)).sum(1)
        enough = unclicked >= 2
        assert not clicked[enough].any()
        checked += int((enough & (observation["clicks"] >= 0).any(1)).sum())
        batch.step(slate)
    assert checked > 100  # users with a click history and a choice to make


def _logged_views() -> PageViews:
    """Two sessions (users 0 and 1) over 6 one-hot items; the user always clicks 1 or 3."""
    history = torch.tensor([[-1, -1], [-1, 1], [1, 3], [-1, -1], [-1, 3]])
    display = torch.tensor([[0, 1, 2, 4], [3, 0, 2, 5], [5, 4, 3, 0], [3, 2, 4, 0],
                            [4, 0, 1, 5]])
    choice = torch.tensor([1, 0, 4, 0, 2])  # the third page view has no click
    return PageViews(history, display, choice, np.array([0, 0, 0, 1, 1]))


def test_logged_transitions_follow_the_log():
    views = _logged_views()
    data = logged_transitions(views, torch.eye(6), 2, seed=0)
    features = torch.eye(6)
    assert torch.equal(data["done"], torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0]))
    for row in range(5):
        shown = views.display[row, data["slate"][row]].tolist()
        clicked = int(views.display[row, views.choice[row]]) if views.choice[row] < 4 else None
        positive = bool(data["reward"][row] > 0)
        assert len(set(shown)) == 2 and positive == (clicked in shown)
        expected = views.history[row].tolist()
        if positive:
            expected = expected[1:] + [clicked]
        assert data["next_clicks"][row].tolist() == expected
        history = features[torch.tensor(expected).clamp_min(0)] * \
            (torch.tensor(expected) >= 0)[:, None]
        assert torch.equal(data["next_history"][row], history.flatten())
    assert torch.equal(data["next_candidate_ids"][:2], views.display[1:3])
    assert torch.equal(data["next_candidate_ids"][3], views.display[4])
    assert data["reward"][2] == -1.0  # no click logged: every slate misses
    rewards = torch.stack([logged_transitions(views, features, 2, seed=s)["reward"]
                           for s in range(40)])
    assert 0.3 < float((rewards[:, [0, 1, 3, 4]] > 0).float().mean()) < 0.7
    with pytest.raises(ValueError, match="slate_size 4"):
        logged_transitions(views, features, 4)


def test_dqn_off_learns_from_logs_alone():
    views = _logged_views()
    many = PageViews(views.history.repeat(40, 1), views.display.repeat(40, 1),
                     views.choice.repeat(40), np.concatenate([views.user + 2 * copy
                                                              for copy in range(40)]))
    data = logged_transitions(many, torch.eye(6), 2, seed=0)
    agent = CascadingDQN(CascadingDQNConfig(feature_dim=6, history=2, slate_size=2,
                                            reward="click", hidden=32), seed=0)
    log = agent.fit_offline(data, CDQNTraining(iterations=150, batch_size=64, gamma=0.0,
                                               learning_rate=3e-3, seed=0))
    assert len(log) == 150 and log[-1]["loss"] < log[0]["loss"]
    pool = torch.tensor([[0, 2, 1, 4, 5], [5, 4, 0, 2, 3]])
    observation = {"history": torch.zeros(2, 12), "candidates": torch.eye(6)[pool].flatten(1)}
    shown = pool.gather(1, agent.act(observation))
    assert ((shown == 1) | (shown == 3)).any(1).all()  # the logged favourites are shown
    with pytest.raises(ValueError, match="reward='click'"):
        CascadingDQN(CascadingDQNConfig(feature_dim=6, history=2)).fit_offline(data)


def test_lr_click_model_as_a_greedy_policy():
    views = _logged_views()
    many = PageViews(views.history.repeat(50, 1), views.display.repeat(50, 1),
                     views.choice.repeat(50), np.zeros(250, dtype=np.int64))
    model = LogisticClickModel(6).fit(many, torch.eye(6), epochs=150)  # 1 step each
    pool = torch.tensor([[0, 2, 1, 4, 5]])
    observation = {"history": torch.zeros(1, 12), "candidates": torch.eye(6)[pool].flatten(1)}
    policy = GreedyPolicy(model, 1, name="W&D-LR")
    assert pool[0, policy.act(observation)[0, 0]] == 1


def test_lr_click_model_fit_depends_only_on_data_and_seed():
    """It started from torch's global generator, so two runs of one benchmark differed."""
    views = _logged_views()
    fits = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fits.append(LogisticClickModel(6).fit(views, torch.eye(6), epochs=3, seed=0))
    for a, b in zip(fits[0].parameters(), fits[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert fits[0].linear.weight.abs().sum() > 0  # it did learn
