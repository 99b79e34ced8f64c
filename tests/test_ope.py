"""Off-policy evaluation: estimators against exact truths, invalid inputs, policies, CLI."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
import torch

from recgym.core import RandomPolicy
from recgym.evaluation import collect_logs, evaluate_policy, ope, ope_estimators
from recgym.evaluation.ope_models import SyntheticRewardModel
from recgym.evaluation.ope_policies import act_on_logs, observations_from_logs
from recgym.simulators.synthetic_mdp import MaxRewardPolicy, SyntheticMDP, logging_policy

ALL_LOG_ESTIMATORS = ["dm", "ips", "snips", "dr", "switch-dr", "slate-ips", "iips", "rips", "pi"]


@pytest.fixture(scope="module")
def small_sim() -> SyntheticMDP:
    # n = 6 items, k = 2: whole-slate weights stay moderate (30 ordered slates)
    return SyntheticMDP(num_states=3, num_items=6, slate_size=2, history_length=3, world_seed=4)


@pytest.fixture(scope="module")
def default_sim() -> SyntheticMDP:
    return SyntheticMDP()


@pytest.fixture(scope="module")
def mix_logs(default_sim) -> pd.DataFrame:
    return collect_logs(default_sim, logging_policy("mix", default_sim, seed=1), 300, seed=0,
                        extra_observation_keys=("true_state",))


def _first_step_logs(sim, policy_name: str, sessions: int, seed: int) -> pd.DataFrame:
    # session i of a log seeded s replays user stream s + i: keep the logs disjoint
    return collect_logs(sim, logging_policy(policy_name, sim, seed=seed), sessions,
                        seed=seed * 1_000_003, max_steps=1, extra_observation_keys=("true_state",))


# ----------------------------------------------------------------------------- observations


class _Recorder:
    """Random policy that records every observation it is shown."""

    def __init__(self, sim) -> None:
        self.inner = RandomPolicy(sim.num_items, sim.slate_size, seed=3)
        self.slate_size = sim.slate_size
        self.seen: list[dict[str, np.ndarray]] = []

    def act(self, observation):
        self.seen.append({k: v.clone().numpy() for k, v in observation.items()})
        return self.inner.act(observation)


def test_observations_replay_what_the_env_showed(default_sim):
    recorder = _Recorder(default_sim)
    logs = collect_logs(default_sim, recorder, 200, seed=5,
                        extra_observation_keys=("true_state",))
    rebuilt = observations_from_logs(logs.sample(frac=1.0, random_state=0),
                                     default_sim.num_items, default_sim.history_length)
    shuffled = logs.sample(frac=1.0, random_state=0)
    for row, (session, step) in enumerate(zip(shuffled.session_id, shuffled.step,
                                              strict=True)):
        seen = recorder.seen[step]
        np.testing.assert_array_equal(rebuilt["clicks"][row], seen["clicks"][session])
        assert rebuilt["true_state"][row] == seen["true_state"][session]
    assert (logs.step > default_sim.history_length).any()  # histories did fill up


def test_observations_without_true_state_have_only_clicks():
    logs = pd.DataFrame({"session_id": [0, 0, 1], "step": [0, 1, 0], "click": [4, -1, 2]})
    obs = observations_from_logs(logs, num_items=9, history_length=2)
    assert set(obs) == {"clicks"}
    np.testing.assert_array_equal(obs["clicks"], [[9, 9], [9, 4], [9, 9]])


# ----------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("name", ["random", "mix", "max"])
def test_slate_probabilities_match_the_policies(default_sim, mix_logs, name):
    policy = logging_policy(name, default_sim, seed=2)
    data = ope.prepare_logs(mix_logs, num_items=default_sim.num_items)
    probs = ope.policy_probabilities(policy, data.observation, data.slates)
    obs = {k: torch.from_numpy(v) for k, v in data.observation.items()}
    expected = policy.slate_probability(obs, torch.from_numpy(data.slates)).numpy()
    np.testing.assert_allclose(probs.slate, expected, rtol=1e-12)
    np.testing.assert_allclose(probs.prefix[:, -1], probs.slate)
    assert probs.position.shape == data.slates.shape


def test_mix_position_marginals_match_sampling(default_sim):
    policy = logging_policy("mix", default_sim, seed=8)
    n = 40_000
    obs = {"true_state": np.full(n, 3), "clicks": np.full((n, 10), 50)}
    slates = act_on_logs(policy, obs)
    probs = ope.policy_probabilities(policy, obs, slates)
    for j in (0, 4):
        items, counts = np.unique(slates[:, j], return_counts=True)
        for item, count in zip(items, counts, strict=True):
            marginal = probs.position[slates[:, j] == item, j][0]
            assert abs(count / n - marginal) < 4 * math.sqrt(marginal / n) + 1e-3


class _ActOnly:
    """A policy that can only act (no probabilities, not declared deterministic)."""

    def __init__(self, world, k):
        self.inner = MaxRewardPolicy(world, k)
        self.slate_size = k

    def act(self, observation):
        return self.inner.act(observation)


def test_policy_without_probabilities_says_why_and_what_remains(default_sim, mix_logs):
    policy = _ActOnly(default_sim.world, default_sim.slate_size)
    with pytest.raises(ope.MissingInputError, match="dm and sim"):
        ope.evaluate(policy, mix_logs, ["ips"], n_bootstrap=10)
    table = ope.evaluate(policy, mix_logs, ["dm", "ips"], n_bootstrap=10, skip_unusable=True)
    assert np.isfinite(table.set_index("estimator").loc["dm", "estimate"])
    assert "slate_probability" in table.set_index("estimator").loc["ips", "note"]
    declared = ope.evaluate(policy, mix_logs, ["ips"], n_bootstrap=10, deterministic=True)
    oracle = ope.evaluate(MaxRewardPolicy(default_sim.world, 10), mix_logs, ["ips"],
                          n_bootstrap=10)
    assert declared.estimate.iat[0] == pytest.approx(oracle.estimate.iat[0])


def test_slate_only_policy_leaves_position_estimators_unusable(small_sim):
    class SlateOnly:
        slate_size = 2

        def __init__(self):
            self.inner = RandomPolicy(6, 2, seed=0)

        def act(self, observation):
            return self.inner.act(observation)

        def slate_probability(self, observation, slate):
            return self.inner.slate_probability(observation, slate)

    logs = _first_step_logs(small_sim, "random", 200, 0)
    table = ope.evaluate(SlateOnly(), logs, ["ips", "iips"], skip_unusable=True,
                         logging_policy=logging_policy("random", small_sim), n_bootstrap=10)
    notes = table.set_index("estimator")["note"]
    assert "effective sample size" in notes["ips"] and "position_probability" in notes["iips"]


def test_sb3_policy_probabilities(default_sim):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from recgym.core import SB3Policy
    from recgym.core.sb3 import make_sb3_vec_env

    model = PPO("MlpPolicy", make_sb3_vec_env("SyntheticMDP-v0", num_envs=2, seed=0),
                n_steps=8, batch_size=16, seed=0, device="cpu")
    obs = {"clicks": torch.randint(0, 51, (64, 10)), "true_state": torch.zeros(64).long()}
    slate = torch.randint(0, 50, (64, 10))
    sampling = SB3Policy(model, ("clicks",), 10, deterministic=False)
    p = sampling.slate_probability(obs, slate)
    assert p.dtype == torch.float64 and ((p > 0) & (p < 1)).all()
    numpy_obs = {k: v.numpy() for k, v in obs.items()}
    probs = ope.policy_probabilities(sampling, numpy_obs, slate.numpy())
    np.testing.assert_allclose(probs.slate, p.numpy(), rtol=1e-6)
    greedy = SB3Policy(model, ("clicks",), 10, deterministic=True)
    chosen = greedy.act(obs)
    assert greedy.slate_probability(obs, chosen).eq(1).all()
    assert greedy.slate_probability(obs, slate).eq(0).all()


# ----------------------------------------------------------------------------- unbiasedness


def test_ips_converges_to_the_on_policy_value(small_sim):
    """First page views all start in s0, so the logged contexts are the on-policy ones."""
    target = logging_policy("max", small_sim)
    exact = SyntheticRewardModel.from_world(small_sim.world)
    best = act_on_logs(target, {"true_state": np.zeros(1, np.int64),
                                "clicks": np.full((1, 3), 6)})
    truth = float(exact.predict(np.zeros(1, np.int64), best)[0])
    estimates = {name: [] for name in ("ips", "snips", "slate-ips", "iips", "rips", "pi")}
    for seed in range(40):
        logs = _first_step_logs(small_sim, "random", 1000, seed)
        data = ope.prepare_logs(logs, num_items=6, history_length=3, validate=False)
        inputs, _ = ope.build_inputs(target, data,
                                     logging_policy=logging_policy("random", small_sim))
        for name in estimators_in(estimates):
            estimates[name].append(ope.make_estimator(name).estimate(inputs))
    ips = np.array(estimates["ips"])
    assert abs(ips.mean() - truth) < 3 * ips.std(ddof=1) / math.sqrt(len(ips))
    slate_ips = np.array(estimates["slate-ips"])
    np.testing.assert_allclose(slate_ips, ips)  # reward = click: the same estimator
    assert abs(np.mean(estimates["snips"]) - truth) < 0.02


def estimators_in(estimates: dict) -> list[str]:
    return list(estimates)


@pytest.mark.parametrize("replacement", [False, True])
def test_slate_estimators_are_unbiased_for_additive_rewards(replacement):
    """Uniform logging (without / with replacement), Bernoulli rewards additive in items."""
    rng = np.random.default_rng(0)
    n_items, k, rows = 8, 3, 4000
    click = rng.uniform(0.0, 0.3, (k, n_items))  # P(click | item at position j)
    target_slate = np.array([5, 1, 7])
    truth = click[np.arange(k), target_slate].sum()
    if replacement:
        pi, prefix_log = ope.PseudoInverse(), (1.0 / n_items) ** np.arange(1, k + 1)
    else:
        pi = ope.PseudoInverse(uniform_items=n_items)
        prefix_log = np.cumprod(1.0 / np.arange(n_items, n_items - k, -1))
    ests = {"iips": [], "pi": [], "rips": []}
    for _ in range(60):
        if replacement:
            slates = rng.integers(0, n_items, (rows, k))
        else:
            slates = np.argsort(rng.random((rows, n_items)), axis=1)[:, :k]
        position_reward = (rng.random((rows, k)) < click[np.arange(k), slates]).astype(float)
        same = (slates == target_slate).astype(float)
        inputs = ope.OPEInputs(
            reward=position_reward.sum(1), position_reward=position_reward,
            pscore_position=np.full((rows, k), 1 / n_items), target_position=same,
            pscore_prefix=np.tile(prefix_log, (rows, 1)), target_prefix=np.cumprod(same, 1),
            target_inclusion=np.isin(slates, target_slate).astype(float))
        for name in ests:
            estimator = pi if name == "pi" else ope.make_estimator(name)
            ests[name].append(estimator.estimate(inputs))
    for name, values in ests.items():
        values = np.array(values)
        assert abs(values.mean() - truth) < 3.5 * values.std(ddof=1) / math.sqrt(len(values)), name


def test_simple_pseudo_inverse_form_is_biased_without_replacement():
    """Why the uniform closed form matters: the product form misses the no-repeat coupling."""
    alpha, beta, gamma = ope_estimators.uniform_pseudo_inverse_coefficients(50, 10)
    assert beta != 0 and alpha != pytest.approx(50)
    assert ope_estimators.uniform_pseudo_inverse_coefficients(50, 1) == pytest.approx(
        (50, 1, 0), abs=1e-9)


def test_dr_with_a_perfect_reward_model_is_unbiased(default_sim):
    exact = SyntheticRewardModel.from_world(default_sim.world)
    errors = []
    for seed in range(8):
        logs = collect_logs(default_sim, logging_policy("mix", default_sim, seed=seed), 200,
                            seed=seed * 1_000_003, extra_observation_keys=("true_state",))
        data = ope.prepare_logs(logs, num_items=50, validate=False)
        target = logging_policy("max", default_sim)
        truth = exact.predict(data.contexts, act_on_logs(target, data.observation)).mean()
        inputs, _ = ope.build_inputs(target, data, reward_model=exact,
                                     logging_policy=logging_policy("mix", default_sim))
        errors.append(ope.DoublyRobust().estimate(inputs) - truth)
        # deterministic target: the DM term is the exact value, residuals average zero
    errors = np.array(errors)
    assert abs(errors.mean()) < 3 * errors.std(ddof=1) / math.sqrt(len(errors)) + 1e-12


def test_snips_equals_ips_when_weights_average_one():
    rng = np.random.default_rng(1)
    pscore = rng.uniform(0.1, 0.4, 500)
    weight = rng.uniform(0.0, 2.0, 500)
    weight /= weight.mean()
    inputs = ope.OPEInputs(reward=rng.random(500), pscore=pscore,
                           target_prob=weight * pscore)
    assert ope.SelfNormalizedIPS().estimate(inputs) == pytest.approx(
        ope.InverseProbabilityWeighting().estimate(inputs), rel=1e-12)


def test_on_policy_logs_make_every_weighted_estimator_the_sample_mean(small_sim):
    logs = collect_logs(small_sim, logging_policy("random", small_sim, seed=0), 300, seed=0,
                        extra_observation_keys=("true_state",))
    table = ope.evaluate(logging_policy("random", small_sim, seed=9), logs,
                         ["ips", "snips", "slate-ips", "iips", "rips", "pi"],
                         logging_policy=logging_policy("random", small_sim), history_length=3,
                         n_bootstrap=20)
    np.testing.assert_allclose(table.estimate, logs.reward.astype(float).mean(), rtol=1e-12)


# ----------------------------------------------------------------------------- invalid inputs

N = 4
GOOD = dict(reward=np.ones(N), pscore=np.full(N, 0.5), target_prob=np.full(N, 0.5))

INVALID = [
    (dict(GOOD, reward=np.ones((N, 2))), ValueError, r"reward must have shape \(n,\)"),
    (dict(GOOD, reward=np.array([1.0, np.nan, 0, 0])), ValueError, "reward must be finite"),
    (dict(GOOD, reward=np.zeros(0), pscore=None, target_prob=None), ValueError, "empty"),
    (dict(GOOD, pscore=np.full(N + 1, 0.5)), ValueError, r"pscore must have shape \(n,\)"),
    (dict(GOOD, pscore=np.array([0.5, 0.0, 0.5, 0.5])), ValueError, r"pscore must be in \(0, 1\]"),
    (dict(GOOD, pscore=np.array([0.5, 1.5, 0.5, 0.5])), ValueError, r"pscore must be in \(0, 1\]"),
    (dict(GOOD, target_prob=np.array([0.5, -0.1, 0, 0])), ValueError, "target_prob must be"),
    (dict(GOOD, position_reward=np.ones((N, 2)), pscore_position=np.full((N, 3), 0.5)),
     ValueError, "pscore_position has 3 positions"),
    (dict(GOOD, pscore_position=np.full(N, 0.5)), ValueError,
     r"pscore_position must have shape \(n, k\)"),
    (dict(GOOD, session=np.arange(N + 1)), ValueError, r"session must have shape"),
    (dict(GOOD, target_inclusion=-np.ones((N, 2))), ValueError, "target_inclusion must be >= 0"),
    (dict(GOOD, reward_hat_target=np.ones(N - 1)), ValueError,
     r"reward_hat_target must have shape \(n,\) = \(4,\)"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), INVALID)
def test_invalid_inputs_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        ope.OPEInputs(**kwargs)


MISSING = [
    ("dm", "reward_hat_target"),
    ("dr", "reward_hat_logged"),
    ("iips", "position_reward"),
    ("rips", "position_reward"),
    ("pi", "pscore_position"),
    ("slate-ips", "position_reward"),
]


@pytest.mark.parametrize(("name", "array"), MISSING)
def test_missing_inputs_are_named(name, array):
    with pytest.raises(ope.MissingInputError, match=array):
        ope.make_estimator(name).estimate(ope.OPEInputs(**GOOD))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unknown estimator 'ipss'"):
        ope.make_estimator("ipss")
    with pytest.raises(ValueError, match="tau must be >= 0"):
        ope.SwitchDoublyRobust(tau=-1)
    with pytest.raises(ValueError, match="n_bootstrap must be >= 2"):
        ope.bootstrap_ratio(np.ones((1, 3)), np.ones((1, 3)), np.arange(3), n_bootstrap=1)
    with pytest.raises(TypeError, match="logs must be a DataFrame"):
        ope.evaluate(RandomPolicy(5, 1), [1, 2, 3])
    with pytest.raises(ope.MissingInputError, match="propensity column"):
        logs = pd.DataFrame({"session_id": [0], "step": [0], "slate": [[1, 2]], "click": [1]})
        ope.evaluate(RandomPolicy(3, 2), logs, ["ips"], n_bootstrap=5)
    with pytest.raises(ValueError, match="num_items = 3"):
        ope.evaluate(RandomPolicy(5, 2), logs, ["dm"], n_bootstrap=5)


# ----------------------------------------------------------------------------- bootstrap, table


def test_bootstrap_is_seeded_and_brackets_the_estimate(default_sim, mix_logs):
    target = logging_policy("max", default_sim)
    kwargs = dict(estimators=["dm", "ips", "snips", "dr"], n_bootstrap=100, seed=3,
                  logging_policy=logging_policy("mix", default_sim))
    first = ope.evaluate(target, mix_logs, **kwargs)
    second = ope.evaluate(target, mix_logs, **kwargs)
    pd.testing.assert_frame_equal(first, second)
    assert (first.ci_low <= first.estimate).all() and (first.estimate <= first.ci_high).all()
    assert first.attrs["n_sessions"] == 300


def test_sim_estimator_with_fitted_and_given_simulators(default_sim, mix_logs):
    target = logging_policy("max", default_sim)
    fitted = ope.SimulatorRollout(kind="count", n_sessions=200, n_refits=3)
    given = ope.SimulatorRollout(name="true-sim", simulator=default_sim, n_sessions=200)
    table = ope.evaluate(target, mix_logs, [fitted, given], n_bootstrap=10).set_index(
        "estimator")
    assert table.loc["sim", "estimand"] == "on-policy"
    assert abs(table.loc["sim", "estimate"] - table.loc["true-sim", "estimate"]) < 0.05


def test_sim_fits_the_choice_continuation_users_by_default(small_sim):
    """On random logs, ``sim`` recovers the random target's on-policy clicks per page view."""
    logs = collect_logs(small_sim, RandomPolicy(6, 2, seed=3), 400, seed=2,
                        extra_observation_keys=("true_state",))
    target = RandomPolicy(6, 2, seed=5)
    truth = evaluate_policy(small_sim, RandomPolicy(6, 2, seed=6), 20_000, seed=7,
                            coverage_at=()).ctr
    rollout = ope.SimulatorRollout(n_sessions=2000, n_refits=1, fit_options={"num_latent": 3,
                                                                             "max_iter": 60})
    assert rollout.kind == "choice-continuation"
    row = ope.evaluate(target, logs, [rollout], n_bootstrap=10).set_index("estimator").loc["sim"]
    assert row.estimate == pytest.approx(truth, abs=0.03)
    assert row.ci_low <= row.estimate <= row.ci_high


def test_sim_names_what_a_state_reading_target_needs(default_sim, mix_logs):
    """The fitted users give clicks only: the oracle, which reads the hidden state, is refused."""
    rollout = ope.SimulatorRollout(n_sessions=10, n_refits=0, fit_options={"max_iter": 1})
    table = ope.evaluate(logging_policy("max", default_sim), mix_logs, ["ips", rollout],
                         n_bootstrap=10, skip_unusable=True).set_index("estimator")
    assert np.isnan(table.loc["sim", "estimate"])
    assert "true_state" in table.loc["sim", "note"] and "kind='count'" in table.loc["sim", "note"]
    with pytest.raises(ValueError, match="kind"):
        ope.SimulatorRollout(kind="gan")


def test_command_prints_the_same_estimates_as_the_python_call(tmp_path, capsys, default_sim,
                                                              mix_logs):
    from recgym.cli.ope import add_ope_commands
    from recgym.data import LogDataset

    path = tmp_path / "logs.parquet"
    LogDataset(mix_logs, num_items=50).save(path)
    parser = argparse.ArgumentParser()
    add_ope_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "ope", "--policy", "max", "--logs", str(path), "--env", "SyntheticMDP-v0",
        "--logging-policy", "mix", "--estimators", "dm", "ips", "dr", "iips", "pi", "sim",
        "--bootstrap", "30", "--sim-kind", "count", "--sim-sessions", "100", "--sim-refits", "2",
        "--plot", str(tmp_path / "ope.png"), "--out", str(tmp_path / "ope.csv")])
    args.func(args)
    printed = capsys.readouterr().out
    assert "iips" in printed and (tmp_path / "ope.png").stat().st_size > 0
    from_cli = pd.read_csv(tmp_path / "ope.csv")
    estimators = ["dm", "ips", "dr", "iips", "pi",
                  ope.SimulatorRollout(kind="count", n_sessions=100, n_refits=2)]
    direct = ope.evaluate(logging_policy("max", default_sim), path, estimators,
                          logging_policy=logging_policy("mix", default_sim), n_bootstrap=30)
    np.testing.assert_allclose(from_cli.estimate, direct.estimate, rtol=1e-9)
    np.testing.assert_allclose(from_cli.ci_low, direct.ci_low, rtol=1e-9)
    rows = slice(3, 3 + len(direct))
    assert ope.format_table(direct).splitlines()[rows] == printed.splitlines()[rows]
    # pi's closed forms do not apply to pi_mix logs (docs/ope.md): the command says so
    assert not direct.set_index("estimator").loc["pi", "in_range"]
    assert "! out of range [0, 1]: pi cannot" in printed


def test_open_bandit_random_policy_from_bts_logs():
    from recgym.data import load_open_bandit

    bts = load_open_bandit(None, "bts", "men")
    table = ope.evaluate(RandomPolicy(bts.num_items, 1), bts.to_logs(),
                         ["ips", "snips", "dm", "dr"], context_column="position",
                         n_bootstrap=50).set_index("estimator")
    assert (table.estimate > 0).all() and (table.estimate < 0.02).all()
    assert (table.ci_low < table.ci_high).all()


@pytest.mark.slow
def test_one_million_slates_estimate_in_seconds_and_bootstrap_in_a_minute():
    import time

    rows, k = 1_000_000, 10
    rng = np.random.default_rng(0)
    position_reward = (rng.random((rows, k)) < 0.02).astype(np.float64)
    pscore_position = rng.uniform(0.01, 1.0, (rows, k))
    target_position = rng.uniform(0.0, 1.0, (rows, k))
    inputs = ope.OPEInputs(
        reward=position_reward.sum(1), position_reward=position_reward,
        pscore=rng.uniform(1e-3, 1.0, rows), target_prob=rng.uniform(0.0, 1.0, rows),
        pscore_position=pscore_position, target_position=target_position,
        pscore_prefix=np.cumprod(pscore_position, 1), target_prefix=np.cumprod(target_position, 1),
        reward_hat_logged=rng.random(rows), reward_hat_target=rng.random(rows),
        session=np.arange(rows) // 3)
    started = time.perf_counter()
    terms = [ope.make_estimator(name).row_terms(inputs) for name in ALL_LOG_ESTIMATORS]
    assert time.perf_counter() - started < 10
    numerators = np.stack([t[0] for t in terms])
    denominators = np.stack([np.ones_like(t[0]) if t[1] is None else t[1] for t in terms])
    started = time.perf_counter()
    ope.bootstrap_ratio(numerators, denominators, inputs.session, n_bootstrap=200)
    assert time.perf_counter() - started < 60
