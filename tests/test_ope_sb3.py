"""Off-policy estimates of stable-baselines3 models as trained: ``ope.evaluate(model, logs)``.

A model trained on plain ``gym.make(id)`` is passed as it is (no wrapper); its observations
are rebuilt from the log as that env showed them: the bare ``clicks`` of SyntheticMDP-v0,
RecSimu-v0's ``recent_items`` / ``feedback`` Dict. Estimates outside the possible range of
the reward are flagged.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import recgym  # noqa: F401  (registers the ids)
from recgym.core import RandomPolicy, SB3Policy
from recgym.evaluation import collect_logs, ope
from recgym.evaluation.ope_policies import observations_from_logs, shown_windows_from_logs
from recgym.simulators.synthetic_mdp import logging_policy

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402

from recgym.integrations.sb3 import policy_class, policy_kwargs  # noqa: E402


def _tiny_ppo(env_id: str, steps: int = 128) -> tuple[PPO, gym.Env]:
    env = gym.make(env_id)
    model = PPO(policy_class(PPO), env, policy_kwargs=policy_kwargs(env_id, env=env),
                n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    return model.learn(steps), env


class _Recorder:
    """Wraps a policy and records every observation it is shown."""

    def __init__(self, inner) -> None:
        self.inner, self.slate_size = inner, inner.slate_size
        self.seen: list[dict[str, np.ndarray]] = []

    def act(self, observation):
        self.seen.append({k: v.clone().numpy() for k, v in observation.items()})
        return self.inner.act(observation)


@pytest.fixture(scope="module")
def synthetic():
    model, env = _tiny_ppo("SyntheticMDP-v0")
    sim = env.unwrapped.simulator
    logs = collect_logs(sim, logging_policy("mix", sim, seed=1), 60, seed=0,
                        extra_observation_keys=("true_state",))
    return model, sim, logs


@pytest.fixture(scope="module")
def recsimu():
    model, env = _tiny_ppo("RecSimu-v0")
    sim = env.unwrapped.simulator
    logs = collect_logs(sim, RandomPolicy(sim.num_items, 1, seed=2), 6, seed=0, max_steps=30)
    return model, sim, logs


def test_a_trained_synthetic_mdp_model_is_evaluated_as_it_is(synthetic, tmp_path):
    model, sim, logs = synthetic
    table = ope.evaluate(model, logs, ["dm", "ips", "dr", "iips"],
                         logging_policy=logging_policy("mix", sim), n_bootstrap=20)
    assert table["estimate"].notna().all() and table["in_range"].all()
    # the same numbers as the explicit adapter, greedy, reading the bare clicks array
    wrapped = SB3Policy(model, ("clicks",), sim.slate_size, deterministic=True)
    explicit = ope.evaluate(wrapped, logs, ["dm", "ips", "dr", "iips"],
                            logging_policy=logging_policy("mix", sim), n_bootstrap=20)
    np.testing.assert_allclose(table.estimate, explicit.estimate)
    # a saved and reloaded model too
    model.save(tmp_path / "ppo.zip")
    loaded = ope.evaluate(PPO.load(tmp_path / "ppo.zip", device="cpu"), logs,
                          ["dm", "ips", "dr", "iips"],
                          logging_policy=logging_policy("mix", sim), n_bootstrap=20)
    np.testing.assert_allclose(loaded.estimate, table.estimate)


def test_a_sampling_model_gives_probabilities(synthetic):
    model, sim, logs = synthetic
    table = ope.evaluate(
        model, logs, ["ips", "snips", ope.SimulatorRollout(n_sessions=50, n_refits=0)],
        deterministic=False, n_bootstrap=20).set_index("estimator")
    assert np.isfinite(table.loc["snips", "estimate"])
    assert "effective sample size" in table.loc["ips", "note"]
    assert 0 <= table.loc["sim", "estimate"] <= 1


def test_recsimu_windows_replay_what_the_env_showed(recsimu):
    _, sim, _ = recsimu
    recorder = _Recorder(RandomPolicy(sim.num_items, 1, seed=5))
    logs = collect_logs(sim, recorder, 3, seed=7, max_steps=sim.state_length + 6)
    windows, padded = shown_windows_from_logs(logs, sim.state_length, sim.num_feedback)
    # collect_logs sorts by (session, step); every session lives the whole max_steps
    for step, seen in enumerate(recorder.seen):
        rows = (logs["step"] == step).to_numpy()
        if step >= sim.state_length:
            assert not padded[rows].any()
            for key in ("recent_items", "feedback"):
                np.testing.assert_array_equal(windows[key][rows], seen[key])
        else:
            assert padded[rows].all()
    assert padded.sum() == 3 * sim.state_length


def test_a_trained_recsimu_model_is_evaluated_on_its_dict_observation(recsimu):
    model, sim, logs = recsimu
    recsimu_sim = ope.SimulatorRollout(name="sim-recsimu", simulator=sim, n_sessions=8,
                                       max_steps=5)
    table = ope.evaluate(model, logs, None, n_bootstrap=20)
    rows = table.set_index("estimator")
    assert np.isfinite(rows.loc[["dm", "ips", "dr"], "estimate"]).all()
    # the count simulator observes clicks, the model reads RecSimu's window: said, not raised
    assert "recent_items" in rows.loc["sim", "note"]
    assert "start window" in table.attrs["observation_note"]
    given = ope.evaluate(model, logs, ["dm", recsimu_sim], n_bootstrap=20).set_index(
        "estimator")
    assert given.loc["sim-recsimu", "estimand"] == "on-policy"
    assert 0 <= given.loc["sim-recsimu", "estimate"] <= 1
    with pytest.raises(ope.MissingInputError, match="recent_items"):
        ope.evaluate(model, logs, ["sim"], n_bootstrap=20)


def test_rebuilt_observations_follow_the_model_space(synthetic):
    model, sim, logs = synthetic
    spaces = SB3Policy.from_model(model).observation_spaces
    assert list(spaces) == ["clicks"]
    rebuilt = observations_from_logs(logs, sim.num_items, spaces=spaces)
    np.testing.assert_array_equal(rebuilt["clicks"],
                                  observations_from_logs(logs, sim.num_items)["clicks"])
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        observations_from_logs(logs, sim.num_items,
                               spaces={"item_features": gym.spaces.Box(0, 1, (3,))})
    with pytest.raises(TypeError, match="stable-baselines3 model"):
        ope.evaluate(object(), logs, ["dm"])


def test_an_estimate_outside_the_reward_range_is_flagged():
    sim_logs = pd.DataFrame({
        "session_id": np.arange(200), "step": 0,
        "slate": [np.array([i % 4]) for i in range(200)],
        "click": np.where(np.arange(200) % 3 == 0, np.arange(200) % 4, -1),
    })
    sim_logs["reward"] = (sim_logs["click"] >= 0).astype(float)
    # propensities logged 20x too small: IPS weights of 5 on a uniform target over 4 items
    sim_logs["propensity"] = 0.25 / 20
    table = ope.evaluate(RandomPolicy(4, 1), sim_logs, ["ips", "snips"], num_items=4,
                         context_column=None, n_bootstrap=20)
    rows = table.set_index("estimator")
    assert rows.loc["ips", "estimate"] > 1
    assert not rows.loc["ips", "in_range"] and rows.loc["snips", "in_range"]
    assert rows.loc["ips", "note"].startswith("OUT OF RANGE")
    printed = ope.format_table(table)
    assert "! out of range [0, 1]: ips cannot" in printed
    assert "snips" not in printed.splitlines()[-1]


def test_sampling_probabilities_of_a_discrete_model(recsimu):
    model, sim, logs = recsimu
    policy = SB3Policy.from_model(model, deterministic=False)
    assert policy.slate_size == 1 and policy.num_items == sim.num_items
    obs = observations_from_logs(logs, sim.num_items, spaces=policy.observation_spaces)
    slates = np.stack(logs["slate"].to_numpy())
    probs = ope.policy_probabilities(policy, obs, slates)
    one = policy.slate_probability({k: torch.from_numpy(v) for k, v in obs.items()},
                                   torch.from_numpy(slates))
    np.testing.assert_allclose(probs.slate, one.numpy(), rtol=1e-6)
    assert ((probs.slate > 0) & (probs.slate < 1)).all()
