"""The fidelity instrument: metrics on known answers, policies, kinds, score, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recgym.core.random import UserRandom
from recgym.data.slates import bootstrap_sessions, outcomes, sorted_logs
from recgym.evaluation import evaluate_policy
from recgym.evaluation.ope_models import CountClickSimulator
from recgym.fidelity import (
    KINDS,
    PolicySpec,
    get_kind,
    make_logs,
    make_world,
    metrics,
    policy_set,
    score,
    train_ppo,
)
from recgym.fidelity.history import last_clicks
from recgym.fidelity.policies import FixedSlate
from recgym.fidelity.score import ensemble_status
from recgym.fidelity.worlds import world_info
from recgym.simulators.synthetic_mdp import SyntheticMDP, SyntheticWorld, logging_policy

TINY_OPTIONS = {"irecgan": {"epochs": 1, "hidden_size": 16, "embedding_dim": 8,
                            "num_layers": 1},
                "choice-continuation": {"num_latent": 3, "max_iter": 30},
                "gan-user-pw": {"epochs": 15, "hidden": 16, "batch_size": 32},
                "gan-user-lstm": {"epochs": 15, "hidden": 16, "batch_size": 32},
                "recsimu": {"state_length": 4, "pretrain_epochs": 1, "adversarial_epochs": 1,
                            "embedding_epochs": 1}}


@pytest.fixture(scope="module")
def fitted(tiny_world, tiny_logs) -> dict:
    info = world_info(tiny_world)
    return {name: get_kind(name, **TINY_OPTIONS.get(name, {}))(tiny_logs, info)
            for name in KINDS}


def test_paper_kinds_score_large_logs_in_batches(fitted, tiny_logs):
    """Held-out probabilities come in batches (a 9,742-item catalogue at once: ~50 GiB)."""
    logs = sorted_logs(tiny_logs)
    for name in ("gan-user-pw", "recsimu"):
        whole = fitted[name].page_view_probabilities(logs)
        batched = fitted[name].page_view_probabilities(logs, batch_size=7)
        np.testing.assert_allclose(batched, whole, rtol=1e-6, atol=1e-9)
        assert batched.shape == (len(logs), 3)


def test_held_out_scoring_never_sees_the_page_being_predicted(fitted, tiny_logs):
    """Changing each session's last click moves no predicted probability (no leak).

    A kind may read the clicks of earlier pages, never the outcome it predicts; the last
    page of a session is no earlier page's history, so nothing may move.
    """
    logs = sorted_logs(tiny_logs)
    last = np.r_[logs["session_id"].to_numpy()[1:] != logs["session_id"].to_numpy()[:-1], True]
    changed = logs.copy()
    slates = np.stack(changed["slate"].to_numpy())
    clicked = changed["click"].to_numpy().copy()
    # last page clicked -> no click; last page not clicked -> its first item clicked
    clicked[last] = np.where(clicked[last] >= 0, -1, slates[last, 0])
    changed["click"] = clicked
    assert (outcomes(changed) != outcomes(logs)).sum() == last.sum()
    for name, users in fitted.items():
        np.testing.assert_allclose(users.page_view_probabilities(changed),
                                   users.page_view_probabilities(logs), rtol=1e-6,
                                   atol=1e-9, err_msg=name)


def test_gan_kind_batches_follow_the_memory_budget(fitted, tiny_logs, monkeypatch):
    """The default batch keeps gathered one-hot features within PAGE_BATCH_BYTES."""
    from recgym.fidelity import paper_kinds

    users, logs = fitted["gan-user-pw"], sorted_logs(tiny_logs)
    whole = users.page_view_probabilities(logs)
    sizes = []
    choice = users._choice
    monkeypatch.setattr(users, "_choice", lambda h, s: sizes.append(len(h)) or choice(h, s))
    per_view = 4 * users.model.config.state_dim  # one-hot items: the state is what grows
    monkeypatch.setattr(paper_kinds, "PAGE_BATCH_BYTES", 5 * per_view)
    np.testing.assert_allclose(users.page_view_probabilities(logs), whole, rtol=1e-6, atol=1e-9)
    assert max(sizes) == 5 and sum(sizes) == len(logs)


# -- metrics on hand-built cases


def test_perfect_simulator_metrics():
    true = np.array([0.5, 1.0, 2.0, 3.0, 9.0])
    assert metrics.kendall_tau(true, true) == pytest.approx(1.0)
    assert metrics.spearman(true, true) == pytest.approx(1.0)
    assert metrics.regret(true, true) == 0.0
    assert metrics.median_relative_error(true, true) == 0.0
    assert metrics.transfer(4.2, 4.2) == pytest.approx(1.0)


def test_reversed_values_and_known_regret():
    true = np.array([1.0, 2.0, 4.0])
    assert metrics.kendall_tau(true, -true) == pytest.approx(-1.0)
    assert metrics.spearman(true, true[::-1]) == pytest.approx(-1.0)
    # the simulator's favourite is policy 1 (true 2 of a best 4): half the best is lost
    assert metrics.regret(true, np.array([0.0, 5.0, 1.0])) == pytest.approx(0.5)
    assert metrics.median_relative_error(true, 1.5 * true) == pytest.approx(0.5)
    assert metrics.transfer(3.0, 4.0) == pytest.approx(0.75)


def test_value_metric_intervals_cover_and_repeat():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    se = np.full(4, 0.01)
    found = metrics.value_metrics(true, se, 2 * true, se, n_bootstrap=200, seed=3)
    assert found["kendall_tau"].value == pytest.approx(1.0)
    assert found["median_relative_error"].contains(1.0)
    again = metrics.value_metrics(true, se, 2 * true, se, n_bootstrap=200, seed=3)
    assert found == again
    noisy = metrics.value_metrics(true, np.full(4, 2.0), true, np.full(4, 2.0),
                                  n_bootstrap=200, seed=3)
    assert noisy["kendall_tau"].low < 0.5  # overlapping values: the interval says so


def test_calibration_and_likelihood_known_answers():
    predicted = np.r_[np.full(10, 0.25), np.full(10, 0.75)]
    observed = np.r_[[1] * 2 + [0] * 8, [1] * 8 + [0] * 2].astype(float)  # rates 0.2, 0.8
    table = metrics.reliability_table(predicted, observed)
    assert list(table["count"]) == [10, 10]
    assert table["observed"].tolist() == pytest.approx([0.2, 0.8])
    assert metrics.expected_calibration_error(predicted, observed) == pytest.approx(0.05)
    assert metrics.expected_calibration_error(np.r_[0.2, 0.8], np.r_[0.2, 0.8]) == 0.0
    probabilities = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    log_likelihood = metrics.outcome_log_likelihood(probabilities, np.array([0, 2]))
    assert log_likelihood.tolist() == pytest.approx([np.log(0.5), np.log(0.8)])


def test_session_bootstrap_resamples_whole_sessions():
    sessions = np.array([7, 7, 7, 3, 5, 5])
    per_row = {"session": sessions.astype(float)}

    def whole(d) -> float:  # 1 when every session came with all its rows
        counts = {s: int((d["session"] == s).sum()) for s in (7, 5)}
        return float(counts[7] % 3 == 0 and counts[5] % 2 == 0)

    found = metrics.session_bootstrap(per_row, sessions, whole, n_bootstrap=50, seed=0)
    assert found.value == found.low == found.high == 1.0
    mean = metrics.session_bootstrap({"x": np.arange(6.0)}, sessions,
                                     lambda d: float(d["x"].mean()), n_bootstrap=200, seed=1)
    assert mean.low < 2.5 < mean.high and mean.value == pytest.approx(2.5)


# -- worlds


def test_decoupled_world_step_matches_exact_probabilities():
    world = SyntheticWorld.random(3, 8, seed=4, continuation=(0.2, 0.9))
    simulator = SyntheticMDP(3, 8, 3, world=world)
    users = 200_000
    rng = UserRandom.from_seeds(torch.arange(users))
    state = simulator.reset(users, rng)
    state["state"] = torch.arange(users) % 3
    slate = torch.tensor([[5, 1, 6]]).expand(users, -1).contiguous()
    step = simulator.step(state, slate, rng)
    clicks = simulator.click_probabilities(state, slate).double()
    keep = simulator.continue_probabilities(state, slate).double()
    for s in range(3):
        mine = state["state"] == s
        count = int(mine.sum())
        for j in range(3):
            p = float(clicks[mine][0, j])
            clicked = step.clicked[mine] == slate[0, j]
            z = (float(clicked.double().mean()) - p) / np.sqrt(p * (1 - p) / count)
            assert abs(z) < 5, (s, j, z)
            q = float(keep[mine][0, j])
            stayed = (~step.terminated[mine][clicked]).double()
            z = (float(stayed.mean()) - q) / np.sqrt(q * (1 - q) / len(stayed))
            assert abs(z) < 5, (s, j, z)
        assert (step.terminated[mine][step.clicked[mine] < 0]).all()


def test_paper_world_draws_no_continuation_and_keeps_clicks_going():
    plain, decoupled = SyntheticWorld.random(4, 9, 0), SyntheticWorld.random(4, 9, 0,
                                                                             continuation=(0, 1))
    assert plain.continuation is None
    assert torch.equal(plain.rewards, decoupled.rewards)
    assert torch.equal(plain.transition, decoupled.transition)
    world = make_world("default")
    logs = make_logs(world, "random", 200)
    last = logs.groupby("session_id").tail(1)
    assert (logs.drop(last.index).click >= 0).all()  # only a no-click ends a session
    assert (last.click[last.step < 199] < 0).all()
    with pytest.raises(ValueError, match="unknown world"):
        make_world("huge")


# -- policies and kinds


def test_policy_set_runs_in_the_world_and_in_every_kind(tiny_world, tiny_logs, fitted):
    specs = policy_set(tiny_world, tiny_logs, greedy_rates=np.arange(8.0))
    assert len(specs) >= 8
    for simulator in [tiny_world, *fitted.values()]:
        for spec in specs:
            result = evaluate_policy(simulator, spec.make(), 30, seed=1, max_steps=20,
                                     coverage_at=())
            assert np.isfinite(result.mean_return), (type(simulator).__name__, spec.name)
    greedy = next(spec for spec in specs if spec.name == "greedy-sim").make()
    assert greedy.act({"clicks": torch.zeros(2, 10, dtype=torch.int64)})[0].tolist() == [7, 6]


def test_kinds_give_outcome_probabilities(tiny_world, tiny_logs, fitted):
    held = make_logs(tiny_world, "random", 50, seed=10_000)
    for name, simulator in fitted.items():
        probabilities = simulator.page_view_probabilities(held)
        assert probabilities.shape == (len(held), 3), name
        assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5), name
        assert (probabilities >= 0).all(), name


def test_non_privileged_kinds_hide_the_state(fitted):
    for name, simulator in fitted.items():
        keys = set(simulator.observation_spaces())
        assert ("true_state" in keys) == (name == "count-privileged"), name


def test_simulated_first_pages_follow_the_kinds_outcome_probabilities(tiny_world, fitted):
    # what a kind simulates and what it scores held-out pages with are one model
    slate = torch.tensor([[3, 5]])
    page = pd.DataFrame({"session_id": [0], "step": [0], "slate": [[3, 5]], "click": [-1]})
    users = 4000
    for name, simulator in fitted.items():
        if name == "count-privileged":
            continue  # its probabilities need the hidden state of each page
        expected = simulator.page_view_probabilities(page)[0]
        random = UserRandom.from_seeds(range(users))
        step = simulator.step(simulator.reset(users, random), slate.expand(users, -1), random)
        clicked = step.clicked.numpy()
        seen = np.array([(clicked == 3).mean(), (clicked == 5).mean(), (clicked < 0).mean()])
        assert np.allclose(seen, expected, atol=0.03), (name, seen, expected)


def test_paper_kinds_end_a_session_at_a_page_without_a_click(fitted):
    for name in ("gan-user-pw", "gan-user-lstm", "recsimu"):
        go_on = fitted[name].continue_probability(torch.tensor([False, True]))
        assert go_on[0] == 0.0 and 0.0 < go_on[1] < 1.0, name


def test_recsimu_reads_a_slate_log_item_by_item():
    from recgym.fidelity.paper_kinds import browsing_sequences, recsimu_tuples

    logs = pd.DataFrame({"session_id": [1, 1, 1, 2], "step": [0, 1, 2, 0],
                         "slate": [[3, 4], [5, 6], [7, 8], [1, 2]], "click": [4, -1, 8, 2]})
    items, feedback, positions = browsing_sequences(logs, state_length=3, start_item=9)
    # 9: session start, 10: page break
    assert items.tolist() == [9, 9, 9, 10, 3, 4, 10, 5, 6, 10, 7, 8, 9, 9, 9, 10, 1, 2]
    assert feedback.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert positions.tolist() == [[4, 5], [7, 8], [10, 11], [16, 17]]
    tuples = recsimu_tuples(logs, state_length=3, start_item=9)
    assert tuples.action.tolist() == [3, 4, 5, 6, 7, 8, 1, 2]
    assert tuples.feedback.tolist() == [0, 1, 0, 0, 0, 1, 0, 1]
    # each item is judged from the browsed items before it, its own page's included
    assert tuples.state_items[1].tolist() == [9, 10, 3]
    assert tuples.state_items[2].tolist() == [3, 4, 10]
    assert tuples.state_feedback[2].tolist() == [0, 1, 0]
    assert tuples.state_items[6].tolist() == [9, 9, 10]
    assert tuples.session.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]


def test_gan_user_kind_beats_a_uniform_guess_on_held_out_pages(tiny_world, tiny_logs, fitted):
    held = make_logs(tiny_world, "random", 300, seed=20_000)
    held = held.sort_values(["session_id", "step"]).reset_index(drop=True)
    chosen = outcomes(held)
    for name in ("gan-user-pw", "gan-user-lstm"):
        probabilities = fitted[name].page_view_probabilities(held)
        log_likelihood = np.log(probabilities[np.arange(len(held)), chosen]).mean()
        assert log_likelihood > np.log(1 / 3) + 0.05, name


def test_last_clicks_and_outcomes():
    logs = pd.DataFrame({"session_id": [1, 1, 1, 2], "step": [0, 1, 2, 0],
                         "slate": [[3, 4], [4, 5], [5, 6], [1, 2]], "click": [4, -1, 6, 2]})
    assert last_clicks(logs, no_click=9).tolist() == [9, 4, 4, 9]
    assert outcomes(logs).tolist() == [1, 2, 1, 1]


def test_count_simulator_lets_sessions_end():
    world = make_world("default")
    logs = make_logs(world, "mix", 2000)
    count = CountClickSimulator.fit(logs, world.num_items)
    assert 0.5 < count.max_click < 1.0
    oracle = logging_policy("max", world)
    slate = oracle.act({"true_state": torch.zeros(4, dtype=torch.int64)})
    assert float(count.click_probabilities(torch.zeros(4, dtype=torch.int64),
                                           slate).sum(1).max()) <= count.max_click + 1e-9
    result = evaluate_policy(count, oracle, 500, coverage_at=())
    assert result.mean_length < 30  # capped at a certain click it was the 200-step cut


# -- score


def test_perfect_simulator_scores_perfectly(tiny_world, tiny_logs):
    report = score(tiny_world, world=tiny_world, logs=tiny_logs, n_sessions=300,
                   ppo_timesteps=64 * 32, n_bootstrap=50)
    assert report.metric("kendall_tau", "all").value == pytest.approx(1.0)
    assert report.metric("regret", "all").value == 0.0
    assert report.metric("median_relative_error", "all").value == 0.0
    assert report.metric("transfer", "ppo").value == pytest.approx(1.0)
    assert "ppo-world" in set(report.table.policy)


def test_score_a_kind_on_a_tiny_world(tiny_world, tiny_logs, tmp_path):
    report = score("item-rate", world=tiny_world, logs=tiny_logs, n_sessions=300,
                   n_bootstrap=50)
    table = report.table
    assert len(table) >= 9 and table.policy.is_unique
    assert (table.true_low <= table.true_value).all() and (table.sim_high >= table.sim_value).all()
    assert table.unsupported_share.between(0, 1).all()
    summary = set(zip(report.summary.metric, report.summary.subset, strict=True))
    assert {("kendall_tau", "deployable"), ("regret", "all"), ("ece", "held-out"),
            ("log_likelihood", "held-out"), ("log_likelihood_true_model", "held-out"),
            ("kendall_tau", "world-vs-world")} <= summary
    true_ll = report.metric("log_likelihood_true_model", "held-out").value
    uniform = report.metric("log_likelihood_uniform", "held-out").value
    assert true_ll > uniform
    assert "fit" in report.timings and "world roll-outs" in report.timings
    path = report.plot(tmp_path / "plot.png")
    assert path.stat().st_size > 1000
    assert "| policy |" in report.to_markdown()


def test_worst_slate_is_out_of_support_of_mix_logs():
    world = SyntheticMDP(4, 40, 4)
    logs = make_logs(world, "mix", 300)
    report = score("count", world=world, logs=logs, n_sessions=200, n_bootstrap=20)
    flags = report.table.set_index("policy").out_of_support
    # mix logs show each state's top 4 and its 20%-50% band: 24 of 40 items never
    assert flags["worst-k-s0"] and flags["random"]
    assert not flags["mix"] and not flags["oracle"]
    share = report.table.set_index("policy").unsupported_share
    assert share["random"] == pytest.approx(24 / 40, abs=0.05)
    hidden = score("count", world=world, logs=logs.drop(columns="true_state"), n_sessions=200,
                   n_bootstrap=20, noise_ceiling=False)
    assert hidden.table.set_index("policy").out_of_support["worst-k-s0"]


# -- bad input


def test_bad_inputs_name_the_problem(tiny_world, tiny_logs):
    with pytest.raises(ValueError, match="unknown simulator kind 'recsim'"):
        score("recsim", world=tiny_world, logs=tiny_logs, n_sessions=10)
    with pytest.raises(ValueError, match=r"lacks \['true_state'\]"):
        score("count-privileged", world=tiny_world, logs=tiny_logs.drop(columns="true_state"),
              n_sessions=10)
    with pytest.raises(ValueError, match=r"lacks \['click'\]"):
        score("logistic", world=tiny_world, logs=tiny_logs.drop(columns="click"), n_sessions=10)
    wide = SyntheticMDP(3, 8, 3)
    with pytest.raises(ValueError, match="slates hold \\[2\\] items.*slate_size=3"):
        score("count", world=wide, logs=tiny_logs, n_sessions=10)
    wrong = [PolicySpec("three-items", lambda: FixedSlate(np.array([0, 1, 2])))]
    with pytest.raises(ValueError, match="policy 'three-items'.*slate_size=2"):
        score("count", world=tiny_world, logs=tiny_logs, policies=wrong, n_sessions=10)
    with pytest.raises(TypeError, match="kind name"):
        score(42, world=tiny_world, logs=tiny_logs, n_sessions=10)


def test_ppo_trains_on_a_fitted_simulator(fitted):
    policy = train_ppo(fitted["item-rate"], 64 * 32, seed=0)
    slate = policy.act({"clicks": torch.full((3, 10), 8, dtype=torch.int64)})
    assert slate.shape == (3, 2)
    assert ((slate >= 0) & (slate < 8)).all()


# -- command line


def test_cli_names_match_the_package_and_help_needs_no_torch():
    import subprocess
    import sys

    from recgym import fidelity
    from recgym.cli import fidelity as command

    assert sorted(command.WORLDS.values()) == sorted(fidelity.WORLDS)
    assert command.KINDS == tuple(fidelity.KINDS)
    code = ("import argparse, sys\n"
            "from recgym.cli.fidelity import add_fidelity_commands\n"
            "parser = argparse.ArgumentParser(prog='recgym')\n"
            "add_fidelity_commands(parser.add_subparsers())\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "parser.parse_args(['fidelity', '--help'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--simulator" in done.stdout


def test_cli_writes_table_and_plot(tmp_path):
    import argparse

    from recgym.cli.fidelity import add_fidelity_commands

    parser = argparse.ArgumentParser(prog="recgym")
    add_fidelity_commands(parser.add_subparsers())
    args = parser.parse_args(["fidelity", "--logging", "random", "--sessions", "200",
                              "--held-out", "50", "--eval-sessions", "100", "--simulator",
                              "item-rate", "--out-dir", str(tmp_path)])
    args.func(args)
    stem = tmp_path / "fidelity_synthetic-mdp_random_item-rate"
    table = pd.read_csv(f"{stem}.csv")
    assert {"policy", "true_value", "sim_value", "out_of_support"} <= set(table.columns)
    assert "kendall_tau" in stem.with_suffix(".md").read_text()
    assert stem.with_suffix(".png").stat().st_size > 1000



def _parse_fidelity(*argv: str):
    import argparse

    from recgym.cli.fidelity import add_fidelity_commands

    parser = argparse.ArgumentParser(prog="recgym")
    add_fidelity_commands(parser.add_subparsers())
    return parser.parse_args(["fidelity", *argv])


def test_cli_scores_a_fitted_checkpoint_against_fresh_sessions(tmp_path):
    from recgym.core.checkpoint import save_checkpoint
    from recgym.data import LogDataset
    from recgym.fidelity import make_logs, make_world
    from recgym.fidelity.kinds import fit_irecgan

    world = make_world("default")
    logs = make_logs(world, "random", 150)
    LogDataset(logs, num_items=world.num_items).save(tmp_path / "logs.parquet")
    users = fit_irecgan(logs, world_info(world), hidden_size=8, embedding_dim=4,
                        num_layers=1, epochs=1)
    save_checkpoint(tmp_path / "mine.pt", users.model.checkpoint())
    args = _parse_fidelity("--simulator", str(tmp_path / "mine.pt"), "--logs",
                           str(tmp_path / "logs.parquet"), "--logging", "random",
                           "--held-out", "40", "--eval-sessions", "60", "--out-dir",
                           str(tmp_path))
    args.func(args)
    table = pd.read_csv(tmp_path / "fidelity_synthetic-mdp_logs_mine.csv")
    assert len(table) >= 8 and table.sim_value.notna().all()
    # the checkpoint is scored as saved: its simulated values are its own, not a refit's
    assert not np.allclose(table.sim_value, table.true_value)


def test_cli_refuses_checkpoints_it_cannot_score(tmp_path):
    from recgym.core.checkpoint import checkpoint_payload, save_checkpoint

    with pytest.raises(SystemExit):
        _parse_fidelity("--simulator", str(tmp_path / "missing.pt"))
    save_checkpoint(tmp_path / "other.pt", checkpoint_payload("recsimu", {}, {}))
    args = _parse_fidelity("--simulator", str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="holds a 'recsimu' checkpoint"):
        args.func(args)
    args = _parse_fidelity("--simulator", str(tmp_path / "other.pt"), "--ensemble", "2")
    with pytest.raises(ValueError, match="--ensemble refits a kind"):
        args.func(args)


# -- ensemble intervals and the continuation kind


def _status_table(true, sim, out_of_support):
    true, sim = np.asarray(true, float), np.asarray(sim, float)
    return pd.DataFrame({"true_value": true, "true_low": true - 0.05, "true_high": true + 0.05,
                         "sim_value": sim, "sim_low": sim - 0.05, "sim_high": sim + 0.05,
                         "relative_error": (sim - true) / true,
                         "out_of_support": out_of_support})


def test_ensemble_status_known_answers():
    # policies: right; wrong but the members disagree; wrong and all agree; 5% off and
    # agreeing; wrong, agreeing, but out of the log's support
    table = _status_table([2.0, 2.0, 0.5, 2.0, 0.5], [2.0, 4.0, 4.0, 2.1, 4.0],
                          [False, False, False, False, True])
    members = np.array([[2.0, 1.0, 4.1, 2.1, 4.0], [2.02, 6.0, 3.9, 2.1, 4.1]])
    found = ensemble_status(table, members, np.full(members.shape, 0.02))
    assert found.status.tolist() == ["covered", "covered", "confident-error",
                                     "within-tolerance", "flagged"]
    # the disagreeing policy's interval spans the members: it covers the truth 2.0
    assert found.ens_low[1] < 1.0 and found.ens_high[1] > 6.0
    assert found.disagrees.tolist() == [False, True, False, False, False]
    # without the instrument's support measure the out-of-support error is unwarned
    assert found.status_log_only[4] == "confident-error"
    # members that disagree about a wrong value flag it even where it is not covered
    table = _status_table([0.5], [4.0], [False])
    found = ensemble_status(table, np.array([[3.0], [6.0]]), np.full((2, 1), 0.02))
    assert found.status.tolist() == ["flagged"]
    # no members: the roll-out interval alone
    found = ensemble_status(_status_table([1.0], [3.0], [False]), np.zeros((0, 1)),
                            np.zeros((0, 1)))
    assert found.status.tolist() == ["confident-error"] and found.ens_spread[0] == 0.0


def test_bootstrap_sessions_resamples_whole_sessions(tiny_logs):
    resample = bootstrap_sessions(tiny_logs, seed=4)
    assert resample.session_id.nunique() == tiny_logs.session_id.nunique()
    steps = resample.groupby("session_id").step.apply(list)
    assert all(s == list(range(len(s))) for s in steps)
    assert not resample.equals(bootstrap_sessions(tiny_logs, seed=5))


def test_score_with_an_ensemble_reports_status(tiny_world, tiny_logs):
    report = score("choice-continuation", world=tiny_world, logs=tiny_logs, n_sessions=200,
                   n_bootstrap=30, support_sessions=50, ensemble=2,
                   kind_options=TINY_OPTIONS["choice-continuation"])
    table = report.table
    assert (table.ens_low <= table.sim_low + 1e-12).all()
    assert (table.ens_high >= table.sim_high - 1e-12).all()
    assert set(table.status) <= {"covered", "flagged", "within-tolerance", "confident-error"}
    counts = [report.metric(f"status_{s}", "deployable").value
              for s in ("covered", "flagged", "within-tolerance", "confident-error")]
    assert sum(counts) == (~table.reads_true_state).sum()
    assert "ensemble fits" in report.timings and "| ens_spread |" in report.to_markdown()
    with pytest.raises(ValueError, match="ensemble"):
        score(tiny_world, world=tiny_world, logs=tiny_logs, n_sessions=20, ensemble=2)
