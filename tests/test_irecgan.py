"""IRecGAN's user model U: likelihood, fit on a synthetic world, the IRecGAN-v0 env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from recgym.cli import main
from recgym.core import UserRandom
from recgym.data import LogDataset
from recgym.evaluation import collect_logs
from recgym.simulators.irecgan import IRecGANUsers
from recgym.simulators.irecgan.fit import SessionTensors, UserModelTraining, fit_user_model
from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy

SMALL = {"embedding_dim": 16, "hidden_size": 32, "num_layers": 1}


@pytest.fixture(scope="module")
def world_and_fit(tmp_path_factory):
    world = SyntheticMDP(num_items=20, slate_size=5, world_seed=3)
    logs = collect_logs(world, logging_policy("random", world, seed=0), 3000, seed=0)
    path = tmp_path_factory.mktemp("irecgan") / "u.pt"
    fit = fit_user_model(LogDataset(logs, num_items=20), training=UserModelTraining(epochs=12),
                         checkpoint=path, progress=False, **SMALL)
    return world, fit, path


def _start_click_distribution(model: UserBehaviorModel, slate: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        state, _ = model.states(torch.tensor([[model.start_token]]))
        return torch.softmax(model.click_logits(state[:, 0], slate), -1)[0].numpy()


@pytest.mark.parametrize("num_items", [6, 200])  # the all-items product and the gather path
def test_click_logits_follow_eq_1(num_items):
    model = UserBehaviorModel(UserModelConfig(num_items=num_items, **SMALL))
    state, slate = torch.randn(4, 3, SMALL["hidden_size"]), torch.randint(0, num_items, (4, 3, 2))
    with torch.no_grad():
        query = model.click_projection(state)
        candidates = torch.cat([model.item_embedding(slate),
                                model.end_embedding.expand(4, 3, 1, -1)], dim=2)
        expected = torch.einsum("btkd,btd->btk", candidates, query)
        assert torch.allclose(model.click_logits(state, slate), expected, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_advances_the_rnn_of_the_users_who_clicked_only(cell):
    model = UserBehaviorModel(UserModelConfig(num_items=8, cell=cell, **SMALL))
    users = IRecGANUsers(model, slate_size=3)
    rng = UserRandom.from_seeds(range(400))
    start = users.reset(400, rng)
    out_slates = torch.randint(0, 8, (400, 3))
    out = users.step(start, out_slates, rng)
    clicked = out.clicked >= 0
    assert 0 < int(clicked.sum()) < 400
    with torch.no_grad():
        after = model.states(torch.stack([torch.full_like(out.clicked, model.start_token),
                                          out.clicked.clamp(min=0)], 1))[0][:, 1]
    assert torch.allclose(out.state["output"][clicked], after[clicked], atol=1e-5)
    for key in ("output", "hidden", "cell"):
        assert torch.equal(out.state[key][~clicked], start[key][~clicked])
    # a batch of one (the single env's branch) steps each user as the batch of 400 does
    for user in (int(clicked.nonzero()[0]), int((~clicked).nonzero()[0])):
        one = UserRandom.from_seeds([user])
        alone = users.step(users.reset(1, one), out_slates[user:user + 1], one)
        assert torch.equal(alone.clicked, out.clicked[user:user + 1])
        for key in ("output", "hidden", "cell"):
            assert torch.allclose(alone.state[key], out.state[key][user:user + 1], atol=1e-6)


def test_padding_does_not_change_the_likelihood():
    model = UserBehaviorModel(UserModelConfig(num_items=6, **SMALL))
    slates = torch.randint(0, 6, (1, 3, 2))
    positions, clicked = torch.tensor([[0, 1, 2]]), slates[:, :, 0]
    rewards, mask = torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool)
    short = model.log_likelihood(slates, positions, clicked, rewards, mask)
    padded = model.log_likelihood(
        torch.cat([slates, slates[:, :2]], 1), torch.cat([positions, positions[:, :2]], 1),
        torch.cat([clicked, clicked[:, :2]], 1), torch.ones(1, 5),
        torch.tensor([[True, True, True, False, False]]))
    assert torch.allclose(short, padded)


def test_fitted_u_recovers_the_true_click_distribution(world_and_fit):
    world, fit, _ = world_and_fit
    assert fit.history[-1]["valid_log_likelihood"] > fit.history[0]["valid_log_likelihood"]
    slate = world.world.rewards[0].topk(5).indices[None]
    learned = _start_click_distribution(fit.model, slate)
    truth = world.click_probabilities({"state": torch.tensor([0])}, slate)[0].numpy()
    truth = np.append(truth, 1 - truth.sum())  # the last outcome: the user leaves
    uniform = np.full(6, 1 / 6)
    distance = 0.5 * np.abs(learned - truth).sum()
    assert distance < 0.5 * 0.5 * np.abs(uniform - truth).sum()


def test_env_clicks_follow_u(world_and_fit):
    _, fit, path = world_and_fit
    users = IRecGANUsers.from_checkpoint(path, slate_size=5)
    batch = 40_000
    rng = UserRandom.from_seeds(range(batch))
    state = users.reset(batch, rng)
    slate = torch.tensor([[3, 7, 3, 1, 9]]).repeat(batch, 1)  # 3 repeated: shown once
    out = users.step(state, slate, rng)
    logits = fit.model.click_logits(users._start_output, slate[:1])
    logits[0, 2] = -float("inf")
    expected = torch.softmax(logits, -1)[0].detach().numpy()
    outcomes = np.where(out.clicked.numpy() < 0, 5, 0)
    for position, item in enumerate([3, 7, None, 1, 9]):
        if item is not None:
            outcomes[out.clicked.numpy() == item] = position
    counts = np.bincount(outcomes, minlength=6)
    z = (counts - expected * batch) / np.sqrt(np.maximum(expected * (1 - expected) * batch, 1))
    assert np.all(np.abs(z) < 4.5) and counts[2] == 0
    assert torch.equal(out.terminated, out.clicked < 0)
    assert (out.reward[out.terminated] == 0).all()


def test_sessions_pad_and_refuse_clicks_outside_the_slate():
    frame = LogDataset(collect_logs(SyntheticMDP(num_items=10, slate_size=3),
                                    logging_policy("max", SyntheticMDP(num_items=10,
                                                                       slate_size=3)), 5),
                       num_items=10).logs
    data = SessionTensors.from_logs(frame)
    assert int(data.mask.sum()) == len(frame) and data.slates.shape[-1] == 3
    broken = frame.copy()
    broken.loc[0, "click"] = 9 if 9 not in broken.loc[0, "slate"] else 8
    with pytest.raises(ValueError, match="not in its slate"):
        SessionTensors.from_logs(broken)


def test_fit_command_and_env_from_its_checkpoint(tmp_path, capsys):
    from gymnasium.utils.env_checker import check_env

    world = SyntheticMDP(num_items=12, slate_size=4)
    logs = tmp_path / "logs.parquet"
    LogDataset(collect_logs(world, logging_policy("random", world), 200),
               num_items=12).save(logs)
    out = tmp_path / "u.pt"
    main(["fit", "irecgan-user", "--data", str(logs), "--out", str(out), "--epochs", "2",
          "--hidden-size", "16", "--embedding-dim", "8", "--num-layers", "1"])
    assert "log-likelihood" in capsys.readouterr().out
    env = gym.make("IRecGAN-v0", checkpoint=out, slate_size=4)
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="checkpoint of .recsimu., expected .irecgan-user."):
        torch.save({"kind": "recsimu"}, tmp_path / "other.pt")
        IRecGANUsers.from_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="recgym fit irecgan-user"):
        IRecGANUsers.from_checkpoint(tmp_path / "missing.pt")
