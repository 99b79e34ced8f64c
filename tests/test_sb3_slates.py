"""Slate policies for SB3: the Plackett-Luce distribution and the candidate scorer."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import recgym
from recgym.integrations.sb3 import (
    CandidateScorer,
    ItemActorCriticPolicy,
    SlateDistribution,
    policy_class,
    policy_kwargs,
)

SLATE_IDS = [env_id for env_id in sorted(recgym.ENV_DESCRIPTIONS)
             if isinstance(gym.make(env_id).action_space, gym.spaces.MultiDiscrete)]


def _distribution(scores: list[list[float]], slate_size: int) -> SlateDistribution:
    n = len(scores[0])
    return SlateDistribution(slate_size, n).proba_distribution(torch.tensor(scores))


def test_log_prob_is_plackett_luce_by_hand():
    scores = [[0.5, -1.0, 2.0, 0.0]]
    weights = np.exp(scores[0])
    # slate (2, 0, 3): draw 2 from all, 0 from {0, 1, 3}, 3 from {1, 3}
    expected = (weights[2] / weights.sum() * weights[0] / (weights.sum() - weights[2])
                * weights[3] / (weights[1] + weights[3]))
    log_prob = _distribution(scores, 3).log_prob(torch.tensor([[2, 0, 3]]))
    assert float(log_prob.exp()) == pytest.approx(expected, rel=1e-5)


def test_probabilities_of_all_ordered_slates_sum_to_one():
    distribution = _distribution([[0.3, -0.7, 1.1, 0.0, 2.0]], 3)
    slates = torch.tensor(list(itertools.permutations(range(5), 3)))
    scores = distribution.scores.expand(len(slates), -1)
    total = distribution.proba_distribution(scores).log_prob(slates).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_samples_are_distinct_and_follow_the_scores():
    torch.manual_seed(0)
    scores = torch.tensor([[1.0, 0.0, -1.0, 0.5, 2.0, -2.0]]).expand(20_000, -1)
    slates = SlateDistribution(3, 6).proba_distribution(scores).sample()
    assert slates.shape == (20_000, 3)
    assert all(len(set(row)) == 3 for row in slates[:500].tolist())
    first = torch.bincount(slates[:, 0], minlength=6).double() / 20_000
    torch.testing.assert_close(first, scores[0].double().softmax(0), atol=0.015, rtol=0)


def test_mode_is_the_top_k_and_entropy_scales_with_k():
    distribution = _distribution([[0.1, 3.0, -1.0, 2.0]], 2)
    assert distribution.mode().tolist() == [[1, 3]]
    uniform = _distribution([[0.0] * 4], 2)
    assert float(uniform.entropy()[0]) == pytest.approx(2 * np.log(4))


def test_candidate_scorer_scores_each_candidate_by_its_own_features():
    torch.manual_seed(0)
    layout = {"candidates": (0, 6 * 3), "history": (18, 4)}
    scorer = CandidateScorer(layout, "candidates", num_candidates=6, width=8)
    features = torch.randn(5, 22)
    permutation = torch.randperm(6)
    permuted = features.clone()
    permuted[:, :18] = features[:, :18].reshape(5, 6, 3)[:, permutation].reshape(5, 18)
    torch.testing.assert_close(scorer(permuted), scorer(features)[:, permutation])
    other_history = features.clone()
    other_history[:, 18:] += 1.0
    assert not torch.allclose(scorer(other_history), scorer(features))
    with pytest.raises(ValueError, match="not a multiple of the 4 candidates"):
        CandidateScorer({"candidates": (0, 18)}, "candidates", num_candidates=4)
    with pytest.raises(ValueError, match="'pool' is not an observation key"):
        CandidateScorer(layout, "pool", num_candidates=6)


@pytest.mark.parametrize("env_id", SLATE_IDS)
def test_slate_policies_train_and_act_with_distinct_items(env_id):
    env = gym.make(env_id)
    model = PPO(policy_class(PPO), env, policy_kwargs=policy_kwargs(env_id, env=env),
                n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(32)
    assert isinstance(model.policy.action_dist, SlateDistribution)
    assert any((a != b).any() for a, b in zip(before, model.policy.action_net.parameters(),
                                               strict=True))
    observation, _ = env.reset(seed=1)
    for deterministic in (True, False):
        action, _ = model.predict(observation, deterministic=deterministic)
        assert env.action_space.contains(action) and len(set(action.tolist())) == len(action)


def test_slate_options_are_refused_where_they_cannot_act():
    env = gym.make("RecSimu-v0")  # Discrete: one item, no slate
    with pytest.raises(ValueError, match="slate=True needs a MultiDiscrete action"):
        PPO(ItemActorCriticPolicy, env, policy_kwargs={"slate": True}, device="cpu")
    gan = gym.make("GANUserModel-v0")
    with pytest.raises(ValueError, match="pass slate=True"):
        PPO(ItemActorCriticPolicy, gan, policy_kwargs={"candidate_key": "candidates"},
            device="cpu")
    kwargs = policy_kwargs("GANUserModel-v0", env=gan, net_arch=[16])
    with pytest.raises(ValueError, match=r"net_arch=dict\(pi=\[\]"):
        PPO(ItemActorCriticPolicy, gan, policy_kwargs=kwargs, device="cpu")


@pytest.mark.parametrize("env_id", sorted(recgym.ENV_DESCRIPTIONS))
def test_without_slate_options_sb3s_own_policies_take_the_kwargs(env_id):
    env = gym.make(env_id)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) \
        else "MlpPolicy"
    kwargs = policy_kwargs(env_id, env=env, slate=False)
    assert "slate" not in kwargs and "candidate_key" not in kwargs
    model = PPO(policy, env, policy_kwargs=kwargs, n_steps=8, batch_size=8, n_epochs=1,
                device="cpu", seed=0)
    assert env.action_space.contains(model.learn(8).predict(env.observation_space.sample())[0])
    assert policy_kwargs(env_id, env=env).get("slate", False) == (env_id in SLATE_IDS)


def test_a_sampling_ranking_model_gives_plackett_luce_probabilities_offline():
    """Off-policy estimators get the slate and prefix probabilities of the ranking."""
    from recgym.core import SB3Policy

    env = gym.make("SyntheticMDP-v0")
    model = PPO(policy_class(PPO), env, policy_kwargs=policy_kwargs("SyntheticMDP-v0", env=env),
                n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu").learn(16)
    policy = SB3Policy.from_model(model, deterministic=False)
    env.observation_space.seed(0)
    clicks = np.stack([env.observation_space.sample() for _ in range(6)])
    torch.manual_seed(0)
    slates = torch.stack([torch.randperm(50)[:10] for _ in range(6)])
    slates[5, 3] = slates[5, 1]  # a repeat: a ranking never shows it
    observation = {"clicks": torch.as_tensor(clicks)}
    with torch.no_grad():
        scores = model.policy.get_distribution(model.policy.obs_to_tensor(clicks)[0]).scores
    expected = []
    for row, slate in zip(scores.double(), slates, strict=True):
        weights, left, probability = row.exp(), torch.ones(50, dtype=torch.bool), 1.0
        for item in slate.tolist():
            probability *= float(weights[item] * left[item] / weights[left].sum())
            left[item] = False
        expected.append(probability)
    got = policy.slate_probability(observation, slates)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
    assert float(got[5]) == 0.0 < float(got[:5].min())
    table = policy.slate_probabilities({"clicks": clicks}, slates.numpy())
    np.testing.assert_allclose(table.slate, expected, rtol=1e-4)
    np.testing.assert_allclose(table.prefix[:, -1], table.slate)
    assert table.position is None and "no closed form" in table.why_not
