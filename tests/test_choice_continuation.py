"""The choice-continuation simulator: what its fit learns, its likelihood, its files, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recgym.core.checkpoint import CheckpointError, save_checkpoint
from recgym.core.random import UserRandom
from recgym.evaluation import evaluate_policy
from recgym.fidelity import make_logs
from recgym.simulators.choice_continuation import (
    ChoiceContinuationConfig,
    ChoiceContinuationUsers,
    fit_choice_continuation,
)
from recgym.simulators.choice_continuation.model import LoggedSessions, continue_logit, forward
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy


def fit(logs: pd.DataFrame, world: SyntheticMDP, seed: int = 0, **options
        ) -> ChoiceContinuationUsers:
    """The simulator fitted on ``logs`` of ``world`` with config ``options``."""
    return fit_choice_continuation(logs, world.num_items, world.slate_size, seed=seed,
                                   config=ChoiceContinuationConfig(**options))


def test_choice_continuation_learns_that_no_click_ends_a_session(tiny_world, tiny_logs):
    simulator = fit(tiny_logs, tiny_world, num_latent=3, max_iter=40)
    p = simulator.parameters
    items = torch.tensor([0, tiny_world.num_items])
    keep = torch.sigmoid(continue_logit(p, items, tiny_world.num_items))
    assert (keep[0] > 0.9).all() and (keep[1] < 0.1).all()
    # its roll-out of the logging policy matches the logged session length
    result = evaluate_policy(simulator, logging_policy("random", tiny_world), 1000,
                             coverage_at=())
    logged = tiny_logs.groupby("session_id").size().mean()
    assert result.mean_length == pytest.approx(logged, rel=0.15)


def test_logging_model_reads_a_logged_slate_as_evidence_of_the_state():
    """With ``logging_model`` the fit's forward pass infers the state from the logger's slate.

    Two latent states that differ only in accepting item 0; the logger shows items 0, 1 in
    state 0 and items 2, 3 in state 1. The first page's click (item 1) is as likely in both
    states, so only its slate says the user is in state 0.
    """
    logs = pd.DataFrame({"session_id": [0, 0], "step": [0, 1],
                         "slate": [np.array([0, 1]), np.array([0, 2])], "click": [1, 0]})
    stay = torch.eye(2, dtype=torch.float64) * 20.0
    p = {"start": torch.zeros(2, dtype=torch.float64),
         "attraction": torch.zeros(2, 4, dtype=torch.float64),
         "acceptance": torch.tensor([[5.0, 0, 0, 0], [-5.0, 0, 0, 0]], dtype=torch.float64),
         "transition": stay.expand(5, 2, 2), "continue_type": torch.zeros(2, dtype=torch.float64),
         "continue_state": torch.zeros(2, 2, dtype=torch.float64),
         "continue_item": torch.zeros(4, dtype=torch.float64)}
    logging = torch.tensor([[5.0, 5, -5, -5], [-5.0, -5, 5, 5]], dtype=torch.float64)
    click_item_0 = {}
    for name, parameters in (("clicks only", p), ("logging model", {**p, "logging": logging})):
        predictive = np.zeros((2, 3))
        forward(parameters, LoggedSessions(logs, 4), 4, predictive=predictive)
        click_item_0[name] = predictive[1, 0]
    exact = 0.5 * torch.sigmoid(torch.tensor(5.0)).item()
    assert click_item_0["clicks only"] == pytest.approx(exact / 2 + 0.5 * torch.sigmoid(
        torch.tensor(-5.0)).item() / 2, abs=1e-6)
    assert click_item_0["logging model"] == pytest.approx(exact, abs=1e-3)


def test_logging_model_is_a_fitting_aid_only(tiny_world):
    """The fitted users simulate without the logging model (a policy's slate is no evidence)."""
    logs = make_logs(tiny_world, "mix", 200)
    users = fit(logs, tiny_world, num_latent=3, max_iter=20, logging_model=True)
    assert "logging" not in users.parameters
    plain = fit(logs, tiny_world, num_latent=3, max_iter=20)
    assert not torch.equal(users.parameters["acceptance"], plain.parameters["acceptance"])
    result = evaluate_policy(users, logging_policy("random", tiny_world), 100, coverage_at=())
    assert result.mean_length >= 1.0


def test_acceptance_offset_shifts_the_prior_of_pairs_the_logs_never_show(tiny_world):
    """Every acceptance the logs say nothing about moves by one shared offset."""
    sessions = [(0, [0, 1], 0), (1, [1, 0], -1)]
    logs = pd.DataFrame([{"session_id": s, "step": step, "slate": np.array(slate),
                          "click": click} for s in range(10) for step, slate, click in sessions])
    shifted, plain = (fit(logs, tiny_world, num_latent=2, max_iter=10,
                          acceptance_offset_scale=scale).parameters
                      for scale in (2.0, 0.0))
    unseen = (shifted["acceptance"] - plain["acceptance"])[:, 2:]
    assert unseen.abs().min() > 1e-3
    assert torch.allclose(unseen, unseen[0, 0].expand_as(unseen))



def test_a_checkpoint_round_trip_steps_users_identically(tiny_world, tiny_logs, tmp_path):
    users = fit(tiny_logs, tiny_world, num_latent=3, max_iter=10)
    path = users.save(tmp_path / "cc.pt", ChoiceContinuationConfig(num_latent=3).to_dict())
    loaded = ChoiceContinuationUsers.from_checkpoint(path)
    slate = torch.tensor([[0, 1]] * 64)
    steps = []
    for model in (users, loaded):
        rng = UserRandom.from_seeds(range(64))
        state = model.reset(64, rng)
        steps.append(model.step(state, slate, rng))
    assert torch.equal(steps[0].clicked, steps[1].clicked)
    assert torch.equal(steps[0].terminated, steps[1].terminated)
    assert np.allclose(users.page_view_probabilities(tiny_logs),
                       loaded.page_view_probabilities(tiny_logs))


def test_a_checkpoint_of_another_kind_or_without_parameters_is_refused(tmp_path):
    other = save_checkpoint(tmp_path / "other.pt", {"recgym_checkpoint": 1, "kind": "recsimu",
                                                    "config": {}, "state_dict": {}})
    with pytest.raises(CheckpointError, match="recsimu"):
        ChoiceContinuationUsers.from_checkpoint(other)
    empty = save_checkpoint(tmp_path / "empty.pt", {
        "recgym_checkpoint": 1, "kind": "choice-continuation",
        "config": {"slate_size": 2, "history_length": 10}, "state_dict": {}})
    with pytest.raises(ValueError, match="without the parameters"):
        ChoiceContinuationUsers.from_checkpoint(empty)


@pytest.mark.parametrize(("change", "message"), [
    (lambda logs: logs.drop(columns="click"), "missing \\['click'\\]"),
    (lambda logs: logs.iloc[:0], "empty log"),
    (lambda logs: logs.assign(slate=[np.array([0, 1, 2])] * len(logs)), "slate_size=2"),
    (lambda logs: logs.assign(slate=[np.array([0, 99])] * len(logs)), "num_items > 99"),
    (lambda logs: logs.assign(slate=[np.array([0, 1])] * len(logs), click=5), "does not show"),
])
def test_logs_the_fit_cannot_read_are_named(tiny_world, tiny_logs, change, message):
    with pytest.raises(ValueError, match=message):
        fit(change(tiny_logs), tiny_world, max_iter=1)


@pytest.mark.parametrize(("option", "value"), [("num_latent", 0), ("max_iter", 2.5),
                                               ("prior_scale", float("nan")),
                                               ("acceptance_offset_scale", -1.0)])
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        ChoiceContinuationConfig(**{option: value})


def test_fit_command_writes_a_checkpoint_fidelity_scores(tmp_path, capsys):
    """`recgym fit choice-continuation` on a generated log, then `recgym fidelity` on its file."""
    from recgym.cli import main
    from recgym.data import LogDataset
    from recgym.fidelity import make_world

    world = make_world("default")
    LogDataset(make_logs(world, "random", 150), num_items=world.num_items).save(
        tmp_path / "logs.parquet")
    assert main(["fit", "choice-continuation", "--data", str(tmp_path / "logs.parquet"),
                 "--out", str(tmp_path / "cc.pt"), "--num-latent", "3", "--max-iter", "20"]) == 0
    printed = capsys.readouterr().out
    assert "held-out (15 sessions): log-likelihood per page view" in printed
    assert main(["fidelity", "--simulator", str(tmp_path / "cc.pt"), "--logs",
                 str(tmp_path / "logs.parquet"), "--logging", "random", "--held-out", "40",
                 "--eval-sessions", "60", "--out-dir", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "fidelity_synthetic-mdp_logs_cc.csv")
    assert len(table) >= 8 and table.sim_value.notna().all()
    assert main(["fit", "choice-continuation", "--data", str(tmp_path / "logs.parquet"),
                 "--out", str(tmp_path / "cc.zip")]) == 2
    assert "must end in .pt" in capsys.readouterr().err
