"""IRecGAN's real-data baselines (PGIS, AC, PGU, ACU), session conversion and rerank P@k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from agents.irecgan import IRecGANAgent
from agents.irecgan_baselines import (
    AC,
    ACU,
    PGIS,
    PGU,
    BaselineTraining,
    agent_list_scores,
    display_propensities,
    step_rewards,
    user_model_list_scores,
    with_click_rewards,
)
from recgym.data import SessionData
from recgym.simulators.irecgan.fit import SessionTensors
from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig
from recgym.simulators.irecgan.sessions_data import (
    diginetica_logs,
    rerank_precision,
    rerank_split,
)

N_ITEMS, K = 12, 4


def tiny_sessions(n_sessions: int = 16, seed: int = 0) -> SessionTensors:
    """Random sessions: distinct slates, clicks on them, an end step, some purchases."""
    rng = np.random.default_rng(seed)
    frames = []
    for session in range(n_sessions):
        length = int(rng.integers(2, 6))
        for step in range(length):
            slate = rng.choice(N_ITEMS, K, replace=False)
            click = int(rng.choice(slate)) if step < length - 1 else -1
            frames.append({"session_id": session, "step": step, "slate": slate, "click": click,
                           "reward": float(click >= 0 and rng.random() < 0.3)})
    return SessionTensors.from_logs(pd.DataFrame(frames))


def small_agent(seed: int = 0) -> IRecGANAgent:
    return IRecGANAgent(N_ITEMS, K, embedding_dim=8, hidden_size=16, num_layers=1, seed=seed)


def small_user_model() -> UserBehaviorModel:
    torch.manual_seed(0)
    return UserBehaviorModel(UserModelConfig(N_ITEMS, embedding_dim=8, hidden_size=16,
                                             num_layers=1))


def assert_valid_slates(policy) -> None:
    clicks = torch.tensor([[N_ITEMS] * 5, [N_ITEMS, N_ITEMS, 3, 1, 7], [2, 2, 5, 0, 11]])
    slates = policy.act({"clicks": clicks})
    assert slates.shape == (3, K)
    assert bool(((slates >= 0) & (slates < N_ITEMS)).all())
    assert all(len(set(row.tolist())) == K for row in slates)


@pytest.mark.parametrize("name", ["PGIS", "AC", "PGU", "ACU"])
def test_each_baseline_trains_and_recommends_distinct_slates(name):
    sessions = tiny_sessions()
    training = BaselineTraining(epochs=2, batch_size=8, max_steps=6)
    before = [p.detach().clone() for p in small_agent().network.parameters()]
    makers = {
        "PGIS": lambda: PGIS(small_agent(), display_propensities(sessions, N_ITEMS), training),
        "AC": lambda: AC(small_agent(), training),
        "PGU": lambda: PGU(small_agent(), small_user_model(), training),
        "ACU": lambda: ACU(small_agent(), small_user_model(), training),
    }
    baseline = makers[name]().fit(sessions, progress=False)
    assert len(baseline.history) == 2
    assert all(np.isfinite(record["loss"]) for record in baseline.history)
    after = list(baseline.agent.network.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert_valid_slates(baseline)
    baseline.agent.greedy = True
    assert_valid_slates(baseline)


def test_baseline_refuses_sessions_of_another_list_size():
    sessions = tiny_sessions()
    agent = IRecGANAgent(N_ITEMS, K + 1, embedding_dim=8, hidden_size=16, num_layers=1)
    with pytest.raises(ValueError, match="slate_size=4"):
        AC(agent).fit(sessions, progress=False)


def test_pgis_weights_are_clipped_and_finite():
    sessions = tiny_sessions()
    propensities = display_propensities(sessions, N_ITEMS)
    assert torch.isclose(propensities.sum(), torch.tensor(1.0))
    assert bool((propensities > 0).all())
    propensities[3] = 1e-30  # an item the logging policy (almost) never showed
    pgis = PGIS(small_agent(), propensities, BaselineTraining(max_weight=5.0))
    log_pi = torch.log(torch.tensor([[0.5, 1e-6, 0.2]]))
    weights = pgis.importance_weights(log_pi, torch.tensor([[3, 3, 0]]))
    assert bool(torch.isfinite(weights).all())
    assert weights[0, 0].item() == 5.0
    assert weights[0, 1].item() == 5.0
    assert weights[0, 2].item() == pytest.approx(0.2 / propensities[0].item(), rel=1e-5)
    pgis.fit(sessions, progress=False)
    assert all(0 <= record["weight"] <= 5.0 for record in pgis.history)


def test_pgis_rejects_zero_propensities():
    with pytest.raises(ValueError, match="positive"):
        PGIS(small_agent(), torch.zeros(N_ITEMS))


def test_actor_critic_critic_loss_decreases_on_a_deterministic_problem():
    frames = [{"session_id": s, "step": t, "slate": [0, 1, 2, 3], "click": click,
               "reward": float(t == 1)}
              for s in range(8) for t, click in enumerate([0, 1, 2, -1])]
    sessions = SessionTensors.from_logs(pd.DataFrame(frames))
    ac = AC(small_agent(), BaselineTraining(epochs=40, batch_size=2, learning_rate=5e-3))
    ac.fit(sessions, progress=False)
    losses = [record["critic_loss"] for record in ac.history]
    # the TD targets move with the shared RNN, so the loss wobbles: compare averages
    assert np.mean(losses[-5:]) < 0.25 * losses[0]


def test_acu_continues_from_the_trained_actor_and_critic():
    sessions = tiny_sessions()
    ac = AC(small_agent(), BaselineTraining(epochs=1, batch_size=8)).fit(sessions,
                                                                         progress=False)
    acu = ac.with_user_model(small_user_model())
    assert isinstance(acu, ACU)
    assert torch.equal(acu.critic.weight, ac.critic.weight)
    acu.fit(sessions, progress=False)
    assert not torch.equal(acu.critic.weight, ac.critic.weight)


def test_click_rewards_pay_one_plus_lambda_purchase_on_clicks_only():
    sessions = tiny_sessions()
    rewards = with_click_rewards(sessions, 3.0).rewards
    clicked = sessions.mask & (sessions.positions < K)
    assert torch.equal(rewards[clicked], 1.0 + 3.0 * sessions.rewards[clicked])
    assert bool((rewards[~clicked] == 0).all())
    assert torch.equal(step_rewards(sessions, 3.0), rewards)


def test_list_scores_are_the_models_scores_of_the_listed_items():
    sessions = tiny_sessions()
    agent = small_agent()
    scores = agent_list_scores(agent.network, sessions)
    assert scores.shape == sessions.slates.shape
    first = agent.network(torch.tensor([[N_ITEMS]]))[0, 0]
    assert torch.allclose(scores[:, 0], first[sessions.slates[:, 0]])
    user = small_user_model()
    assert user_model_list_scores(user, sessions).shape == sessions.slates.shape


def test_rerank_precision_against_a_hand_computed_case():
    scores = torch.tensor([[[0.1, 0.9, 0.5, 0.3], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 9.0]],
                           [[0.4, 0.3, 0.2, 0.1], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    positions = torch.tensor([[2, 0, 4], [0, 1, 1]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # steps: click beaten once (top-2), 4-way tie (1/4, 2/4), no click, click on top
    precision = rerank_precision(scores, positions, mask, ks=(1, 2))
    assert precision[1] == pytest.approx((0 + 0.25 + 1) / 3)
    assert precision[2] == pytest.approx((1 + 0.5 + 1) / 3)


def test_rerank_precision_checks_shapes():
    with pytest.raises(ValueError, match="scores"):
        rerank_precision(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long),
                         torch.ones(2, 3, dtype=torch.bool))


def fake_diginetica(n_sessions: int = 40, seed: int = 0) -> SessionData:
    rng = np.random.default_rng(seed)
    rows = []
    for session in range(n_sessions):
        length = int(rng.integers(1, 7))
        items = rng.zipf(1.5, length) % 30
        for step, item in enumerate(items):
            rows.append({"session_id": session, "step": step, "item_id": int(item),
                         "time": 1000.0 * session + 10 * step, "feedback": 1,
                         "reward": float(rng.random() < 0.1)})
    events = pd.DataFrame(rows)
    items = pd.DataFrame({"raw_item_id": np.arange(30) + 500}, index=pd.RangeIndex(
        30, name="item_id"))
    return SessionData("fake", events, items)


@pytest.mark.parametrize("lists", ["activity", "uniform"])
def test_diginetica_logs_keep_popular_items_and_end_every_session(lists):
    data = fake_diginetica()
    logs = diginetica_logs(data, num_items=15, list_size=5, min_length=2, max_length=5,
                           lists=lists)
    frame = logs.logs
    counts = data.events["item_id"].value_counts()
    ranked = sorted(counts.index, key=lambda item: (-counts[item], item))[:15]
    assert logs.items["raw_item_id"].tolist() == [item + 500 for item in ranked]
    slates = np.stack(frame["slate"].to_numpy())
    assert slates.shape[1] == 5 and slates.max() < 15
    assert all(len(set(row)) == 5 for row in slates)
    clicked = frame["click"].to_numpy()
    assert all((clicked[i] == -1) or (clicked[i] in slates[i]) for i in range(len(frame)))
    for _, session in frame.groupby("session_id"):
        assert session["click"].iloc[-1] == -1 and (session["click"].iloc[:-1] >= 0).all()
        assert 3 <= len(session) <= 6  # 2..5 views plus the end view
    split = rerank_split(logs, test_fraction=0.25, seed=1)
    total = frame["session_id"].nunique()
    assert split.stats["train_sessions"] + split.stats["test_sessions"] == total
    assert split.stats["train_clicks"] + split.stats["test_clicks"] == int((clicked >= 0).sum())


def test_diginetica_logs_explain_bad_sizes():
    with pytest.raises(ValueError, match="fewer than num_items"):
        diginetica_logs(fake_diginetica(), num_items=500, list_size=5)
    with pytest.raises(ValueError, match="list_size"):
        diginetica_logs(fake_diginetica(), num_items=10, list_size=11)
    with pytest.raises(ValueError, match="lists must be"):
        diginetica_logs(fake_diginetica(), num_items=10, list_size=5, lists="random")
