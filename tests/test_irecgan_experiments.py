"""IRecGAN's sec. 7.1 experiments: LSTMD, the offline-test core and online REINFORCE."""

from __future__ import annotations

import pytest
import torch

from agents.irecgan import (
    AgentTraining,
    IRecGANAgent,
    IRecGANTraining,
    UserModelPolicy,
    train_irecgan,
)
from recgym.core import RandomPolicy
from recgym.data import LogDataset
from recgym.evaluation import collect_logs, evaluate_policy
from recgym.simulators.irecgan.fit import SessionTensors
from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy


def test_lstmd_is_the_adversarially_updated_user_model_and_leaves_inputs_intact():
    world = SyntheticMDP(num_items=20, slate_size=4)
    sessions = SessionTensors.from_logs(LogDataset(
        collect_logs(world, logging_policy("mix", world), 64), num_items=20))
    torch.manual_seed(0)
    user = UserBehaviorModel(UserModelConfig(20, embedding_dim=8, hidden_size=8, num_layers=1))
    agent = IRecGANAgent(20, 4, embedding_dim=8, hidden_size=8, num_layers=1, greedy=True)
    user_before = {name: value.clone() for name, value in user.state_dict().items()}
    agent_before = {name: value.clone() for name, value in agent.network.state_dict().items()}
    fit = train_irecgan(sessions, user, agent, IRecGANTraining(
        epochs=1, n_rollouts=2, batch_size=32, max_steps=10))
    for name, value in user.state_dict().items():
        assert torch.equal(value, user_before[name]), name
    for name, value in agent.network.state_dict().items():
        assert torch.equal(value, agent_before[name]), name
    assert any(not torch.equal(user_before[name], value)
               for name, value in fit.user_model.state_dict().items())
    lstmd = fit.lstmd()
    assert isinstance(lstmd, UserModelPolicy) and lstmd.model is fit.user_model
    slates = lstmd.act({"clicks": torch.tensor([[20, 20, 3], [1, 2, 3]])})
    assert slates.shape == (2, 4)
    assert ((slates >= 0) & (slates < 20)).all()
    assert all(len(set(row)) == 4 for row in slates.tolist())
    assert fit.agent.greedy and len(fit.agent.history) == 1


def test_offline_experiment_core_returns_valid_coverage_curves(benchmark_module):
    offline = benchmark_module("irecgan_offline")
    preset = offline.Preset(embedding_dim=8, hidden_size=8, updates=4, min_epochs=1,
                            max_epochs=2, adversarial_updates=2, n_rollouts=2, batch_size=16,
                            eval_sessions=64)
    results = offline.run_setting("mix", 40, 0, preset)
    assert set(results) == set(offline.METHODS)
    for method, row in results.items():
        coverage = torch.tensor([row[f"coverage@{r}"] for r in offline.COVERAGE_AT],
                                dtype=torch.float64)
        assert ((coverage >= 0) & (coverage <= 1)).all(), method
        # r * coverage@r counts shown items among the true top r: it grows by at most 1
        shown = coverage * torch.arange(1, 11)
        steps = shown.diff()
        assert ((steps >= -1e-9) & (steps <= 1 + 1e-9)).all(), method
        assert row["return"] >= 0 and 0 <= row["ctr"] <= 1


def test_log_coverage_is_one_for_the_max_policy_and_about_k_over_n_for_random(benchmark_module):
    online = benchmark_module("irecgan_online")
    world = SyntheticMDP()
    top = collect_logs(world, logging_policy("max", world), 100,
                       extra_observation_keys=("true_state",))
    uniform = collect_logs(world, RandomPolicy(50, 10, seed=0), 400,
                           extra_observation_keys=("true_state",))
    for r in (1, 5, 10):
        assert online.log_coverage(world, top, r) == 1.0
        assert online.log_coverage(world, uniform, r) == pytest.approx(0.2, abs=0.05)
    with pytest.raises(ValueError, match="true_state"):
        online.log_coverage(world, top.drop(columns="true_state"), 1)


def test_online_reinforce_in_the_true_environment_beats_random():
    world = SyntheticMDP()
    agent = IRecGANAgent(50, 10, embedding_dim=16, hidden_size=32, num_layers=1, seed=0)
    for iteration in range(8):
        frame = collect_logs(world, agent, 200, seed=10_000 * (iteration + 1))
        fresh = SessionTensors.from_logs(LogDataset(frame, num_items=50))
        agent.fit_offline(fresh, AgentTraining(epochs=3, learning_rate=1e-2, seed=iteration),
                          progress=False)
    agent.greedy = True
    random = evaluate_policy(world, RandomPolicy(50, 10, seed=0), 1000, seed=3)
    trained = evaluate_policy(world, agent, 1000, seed=3)
    assert trained.mean_return > random.mean_return + 4 * (trained.return_std_err
                                                           + random.return_std_err)
    assert trained.coverage[1] > 2 * random.coverage[1]
