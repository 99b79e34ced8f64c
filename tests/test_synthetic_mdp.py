"""SyntheticMDP-v0 against its specification (IRecGAN sec. 7.1) and exact probabilities."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from recgym.core import RandomPolicy, UserRandom
from recgym.evaluation import collect_logs, evaluate_policy
from recgym.simulators.synthetic_mdp import (
    MaxRewardPolicy,
    MixRewardPolicy,
    SyntheticMDP,
    SyntheticWorld,
    logging_policy,
)
from recgym.simulators.synthetic_mdp.users import _draw

USERS = 200_000


def _z_scores(counts: np.ndarray, probabilities: np.ndarray, n: int) -> np.ndarray:
    expected = probabilities * n
    return (counts - expected) / np.sqrt(np.maximum(expected * (1 - probabilities), 1e-9))


def test_world_is_drawn_from_its_seed():
    a, b, c = (SyntheticWorld.random(10, 50, seed) for seed in (0, 0, 1))
    assert torch.equal(a.rewards, b.rewards) and not torch.equal(a.rewards, c.rewards)
    assert a.rewards.min() >= 0 and a.rewards.max() <= 1
    assert torch.allclose(a.transition.sum(-1), torch.ones(50, 10))
    assert a.transition.shape == (50, 10, 10) and a.rewards.shape == (10, 50)


@pytest.mark.parametrize("slate", [[3, 7, 1, 0], [3, 3, 7, 3]])
def test_click_frequencies_match_exact_probabilities(slate):
    sim = SyntheticMDP(num_states=3, num_items=8, slate_size=4, world_seed=5)
    rng = UserRandom.from_seeds(range(USERS))
    state = sim.reset(USERS, rng)
    state["state"] = torch.full((USERS,), 2)
    slates = torch.tensor(slate).repeat(USERS, 1)
    out = sim.step(state, slates, rng)
    exact = sim.click_probabilities(state, slates[:1])[0].double()
    # the click distribution over distinct items; a repeated item counts once
    items = sorted(set(slate))
    p_item = np.array([float(exact[[j for j, a in enumerate(slate) if a == i]].sum())
                       for i in items])
    counts = np.array([int((out.clicked == i).sum()) for i in items])
    assert np.all(np.abs(_z_scores(counts, p_item, USERS)) < 4.5)
    p_leave = 1 - p_item.sum()
    leave = int(out.terminated.sum())
    assert abs(_z_scores(np.array([leave]), np.array([p_leave]), USERS)[0]) < 4.5
    # the paper's two-stage reading: candidate prop. to reward, then Bernoulli(reward)
    r = sim.world.rewards[2, items].double().numpy()
    assert np.allclose(p_item, r * r / r.sum(), atol=1e-6)
    assert torch.equal(out.reward, (out.clicked >= 0).float())


def test_transitions_follow_p_of_clicked_item():
    sim = SyntheticMDP(num_states=4, num_items=6, slate_size=1, world_seed=2)
    rng = UserRandom.from_seeds(range(USERS))
    state = sim.reset(USERS, rng)
    state["state"] = torch.full((USERS,), 1)
    out = sim.step(state, torch.full((USERS, 1), 4), rng)
    moved = out.state["state"][out.clicked == 4]
    counts = np.bincount(moved.numpy(), minlength=4)
    assert np.all(np.abs(_z_scores(counts, sim.world.transition[4, 1].double().numpy(),
                                   len(moved))) < 4.5)
    stayed = out.state["state"][out.terminated]
    assert torch.all(stayed == 1)  # no click, no transition


def test_sessions_start_in_s0_with_empty_history():
    sim = SyntheticMDP()
    obs = sim.observe(sim.reset(3, UserRandom.from_seeds(range(3))))
    assert obs["true_state"].tolist() == [0, 0, 0]
    assert torch.all(obs["clicks"] == sim.num_items)


def _slate_frequencies(policy, observation, draws: int) -> tuple[Counter, int]:
    counts: Counter = Counter()
    for _ in range(draws // 20_000):
        counts.update(map(tuple, policy.act(observation).tolist()))
    return counts, (draws // 20_000) * 20_000


@pytest.mark.parametrize("name", ["random", "mix", "max"])
def test_logging_policy_frequencies_match_propensities(name):
    sim = SyntheticMDP(num_states=2, num_items=6, slate_size=2, world_seed=3)
    policy = logging_policy(name, sim, seed=0)
    observation = {"true_state": torch.ones(20_000, dtype=torch.int64),
                   "clicks": torch.zeros(20_000, 10, dtype=torch.int64)}
    counts, total = _slate_frequencies(policy, observation, 200_000)
    slates = torch.tensor(list(counts))
    probability = policy.slate_probability(observation | {
        "true_state": torch.ones(len(slates), dtype=torch.int64)}, slates).numpy()
    frequency = np.array([counts[tuple(s)] for s in slates.tolist()])
    assert np.all(np.abs(_z_scores(frequency, probability, total)) < 4.5)
    # the slates never drawn carry (almost) no probability: the stated ones sum to one
    assert math.isclose(probability.sum(), 1.0, rel_tol=1e-9)


def test_mix_policy_draws_top_k_or_the_20_to_50_percent_band():
    world = SyntheticWorld.random(3, 50, seed=0)
    policy = MixRewardPolicy(world, 10, seed=1)
    observation = {"true_state": torch.full((4000,), 2)}
    slates = policy.act(observation)
    ranking = world.rewards[2].argsort(descending=True)
    top = ranking[:10]
    band = set(ranking[10:25].tolist())
    is_top = (slates == top).all(1)
    assert 0.45 < float(is_top.float().mean()) < 0.55
    for row in slates[~is_top].tolist():
        assert set(row) <= band and len(set(row)) == 10
    with pytest.raises(ValueError, match="band"):
        MixRewardPolicy(SyntheticWorld.random(2, 20, seed=0), 10)


def test_evaluation_orders_policies_and_measures_coverage():
    sim = SyntheticMDP()
    random_eval = evaluate_policy(sim, RandomPolicy(50, 10, seed=0), 2000, seed=0)
    max_eval = evaluate_policy(sim, MaxRewardPolicy(sim.world, 10), 2000, seed=0)
    # random slates: P(click) = E[sum r^2 / sum r] ~ 2/3, so the return is ~ p / (1 - p) = 2
    assert 1.7 < random_eval.mean_return < 2.3
    assert max_eval.mean_return > 3 * random_eval.mean_return
    assert max_eval.coverage == {1: 1.0, 5: 1.0, 10: 1.0}
    assert abs(random_eval.coverage[1] - 10 / 50) < 0.03
    assert math.isclose(random_eval.ctr * random_eval.mean_length, random_eval.mean_return)


def test_logs_follow_the_schema_and_replay_the_sessions():
    sim = SyntheticMDP()
    logs = collect_logs(sim, logging_policy("mix", sim, seed=0), 300, seed=0,
                        extra_observation_keys=("true_state",))
    assert list(logs.columns) == ["session_id", "step", "slate", "click", "reward",
                                  "propensity", "true_state"]
    assert logs.groupby("session_id").size().sum() == len(logs)
    assert set(logs.session_id) == set(range(300))
    # each session: clicks until the last step, which has no click; steps 0, 1, 2, ...
    for _, session in logs.groupby("session_id"):
        assert session.step.tolist() == list(range(len(session)))
        assert (session.click.iloc[:-1] >= 0).all() and session.click.iloc[-1] == -1
    assert ((logs.propensity > 0) & (logs.propensity <= 1)).all()
    assert (logs.true_state[logs.step == 0] == 0).all()
    clicked = logs[logs.click >= 0]
    assert all(c in s for c, s in zip(clicked.click, clicked.slate, strict=True))


def test_clickbait_world_tables():
    world = SyntheticWorld.clickbait(10, 50, 0)
    ordinary, churn = slice(0, 8), slice(8, 10)
    bait = world.transition[:, 0, churn].sum(-1) > 0.5  # items that lead to churn
    assert int(bait.sum()) == 10
    rewards = world.rewards[ordinary][:, bait]
    assert float(rewards.min()) >= 0.8 and float(world.rewards[churn].max()) <= 0.2
    assert torch.allclose(world.transition.sum(-1), torch.ones(50, 10))
    assert torch.allclose(world.transition[bait][:, :, churn].sum(-1), torch.full((10, 10), 0.9))
    assert float(world.transition[~bait][:, :, churn].max()) == 0.0
    same = SyntheticWorld.clickbait(10, 50, 0)
    assert torch.equal(same.rewards, world.rewards) and torch.equal(same.transition,
                                                                    world.transition)
    with pytest.raises(ValueError, match="churn_states"):
        SyntheticWorld.clickbait(10, 50, 0, churn_states=10)
    with pytest.raises(ValueError, match="bait_rewards"):
        SyntheticWorld.clickbait(10, 50, 0, bait_rewards=(0.9, 0.5))


def test_clickbait_world_punishes_the_greedy_slate():
    """Leaving bait out of the slate earns more clicks over 10 steps than the greedy top-k."""
    world = SyntheticWorld.clickbait(10, 50, 0)
    bait = world.transition[:, 0, 8:].sum(-1) > 0.5
    greedy = world.rewards.topk(5, dim=1).indices
    patient = world.rewards.masked_fill(bait, -1.0).topk(5, dim=1).indices
    clicks = {}
    for name, table in (("greedy", greedy), ("patient", patient)):
        users = SyntheticMDP(slate_size=5, world=world)
        rng = UserRandom.from_seeds(range(4000))
        state, total = users.reset(4000, rng), torch.zeros(4000)
        alive = torch.ones(4000, dtype=torch.bool)
        for _ in range(10):
            out = users.step(state, table[state["state"]], rng)
            total += out.reward * alive
            alive &= ~out.terminated
            state = out.state
        clicks[name] = float(total.mean())
    assert clicks["patient"] > 2 * clicks["greedy"]


@pytest.mark.parametrize("rows", [1, 4096])
def test_inverse_cdf_draw_is_searchsorted_on_the_sorted_rows(rows):
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(rows, 10, generator=generator)
    weights[:, 3] = 0.0  # a flat step: ties where the uniform lands on it
    cumulative = weights.cumsum(1)
    uniforms = torch.rand(rows, 1, generator=generator) * cumulative[:, -1:] * 1.1
    uniforms[0, 0] = cumulative[0, 3]  # exactly on an entry (and its tie)
    expected = torch.searchsorted(cumulative, uniforms, right=True)
    drawn = _draw(cumulative, uniforms)
    assert drawn.shape == (rows, 1) and torch.equal(drawn, expected)
    assert int(drawn.max()) == 10 or rows == 1  # past the last entry: no click
