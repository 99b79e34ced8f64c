"""Fitting the GAN user model: the L2 mini-max game, resume, ties, session page views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_gan_user import synthetic_user_logs

from recgym.data.pageviews import display_sets_by_nearest_time
from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    cooccurrence_features,
    fit_gan_user,
    l2_game_loss,
    precision_at,
    ranked_precision,
)
from recgym.simulators.gan_user.model import (
    GANUserConfig,
    GANUserModel,
    OneHotItems,
    project_onto_simplex,
)

CONFIG = GANUserConfig(feature_dim=6, history=1, hidden=32)


@pytest.fixture(scope="module")
def synthetic():
    """Train / valid / test page views of users with a known reward (eq. 3), and features."""
    logs, features = synthetic_user_logs()
    views = PageViews.from_logs(logs, history=1)
    users = np.asarray(views.user)
    return (views.subset(users % 8 < 4), views.subset(users % 8 == 4),
            views.subset(users % 8 > 4), features)


@pytest.fixture(scope="module")
def entropy_fit(synthetic):
    train, valid, test, features = synthetic
    return fit_gan_user(train, valid, features, config=CONFIG, test=test, progress=False,
                        training=GANUserTraining(epochs=30, patience=5))


def test_l2_choice_probabilities_sum_to_one_and_solve_the_inner_problem():
    torch.manual_seed(0)
    for state in ("pw", "lstm"):
        model = GANUserModel(GANUserConfig(feature_dim=5, state=state, regularizer="l2"))
        with torch.no_grad():
            model.reward_out.weight.mul_(30)  # large rewards: some items get probability 0
        features = torch.randn(64, 7, 5)
        shown = torch.ones(64, 7, dtype=torch.bool)
        shown[:, 6] = False
        with torch.no_grad():
            hidden_state = model.state(torch.randn(64, 10, 5))
            phi = model.choice_probabilities(hidden_state, features, shown)
            rewards = model.choice_logits(hidden_state, features, shown)
        assert phi.shape == (64, 8) and (phi >= 0).all() and (phi[:, 6] == 0).all()
        assert torch.allclose(phi.sum(1), torch.ones(64), atol=1e-5)
        assert (phi == 0).any()  # sparse, unlike the softmax
        # phi maximises phi . r - ||phi||^2 / eta over the simplex (eta = 1): no random
        # distribution on the shown items does better
        finite = rewards.masked_fill(~torch.isfinite(rewards), 0)
        value = (phi * finite).sum(1) - phi.pow(2).sum(1)
        others = torch.distributions.Dirichlet(torch.ones(8)).sample((500, 64))
        others[..., 6] = 0
        others = others / others.sum(-1, keepdim=True)
        other_value = (others * finite).sum(-1) - others.pow(2).sum(-1)
        assert (other_value <= value + 1e-5).all()
    # a point of the simplex is its own projection
    point = torch.tensor([[0.2, 0.5, 0.3]])
    assert torch.allclose(project_onto_simplex(point), point)


def test_l2_fit_starts_from_the_entropy_solution_and_recovers_the_reward(synthetic,
                                                                         entropy_fit):
    train, valid, test, features = synthetic
    # no game epochs: the L2 fit returns the entropy solution it started from
    start = fit_gan_user(train, valid, features, initial=entropy_fit.model, progress=False,
                         training=GANUserTraining(regularizer="l2", adversarial_epochs=0))
    for name, value in entropy_fit.model.state_dict().items():
        assert torch.equal(start.model.state_dict()[name], value)
    assert start.history[0]["valid_prec1"] == pytest.approx(
        precision_at(entropy_fit.model, valid, features, (1,))[1])
    fit = fit_gan_user(train, valid, features, initial=entropy_fit.model, test=test,
                       training=GANUserTraining(regularizer="l2", adversarial_epochs=8,
                                                patience=8), progress=False)
    assert fit.model.config.regularizer == "l2"
    assert [entry["epoch"] for entry in fit.history] == list(range(9))
    # the game lowers its own validation value (eq. 5) from the entropy start
    assert fit.history[-1]["valid_l2_loss"] < fit.history[0]["valid_l2_loss"]
    # chance: 1 / 8 for Prec@1 and 2 / 8 for Prec@2 over 8 displayed items
    assert fit.test_precision[1] > 3 / 8 and fit.test_precision[2] > 4 / 8


def test_l2_game_loss_is_bounded_by_the_margin(synthetic, entropy_fit):
    train, _, _, features = synthetic
    loss = l2_game_loss(entropy_fit.model, train, features)
    assert (loss >= -1 / CONFIG.eta - 1e-5).all()
    assert loss.mean() < l2_game_loss(GANUserModel(CONFIG), train, features).mean()


def test_l2_fit_resumes_where_it_stopped(synthetic, tmp_path):
    train, valid, _, features = synthetic
    train = train.subset(np.arange(len(train)) < 600)

    def fit(epochs: int, path, resume: bool = False):
        training = GANUserTraining(regularizer="l2", epochs=2, adversarial_epochs=epochs,
                                   patience=10, adversarial_learning_rate=1e-2)
        return fit_gan_user(train, valid, features, config=CONFIG, training=training,
                            checkpoint=path, resume=resume, progress=False)

    straight = fit(3, tmp_path / "straight.pt")
    fit(1, tmp_path / "stopped.pt")
    resumed = fit(3, tmp_path / "stopped.pt", resume=True)
    assert [entry["phase"] for entry in resumed.history] == ["entropy"] * 2 + ["l2"] * 4
    assert resumed.history == straight.history
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value)
    saved = torch.load(tmp_path / "stopped.pt", weights_only=True)
    assert GANUserModel.from_checkpoint(saved).config.regularizer == "l2"
    with pytest.raises(ValueError, match="another fit"):
        fit_gan_user(train, valid, features, config=GANUserConfig(feature_dim=6, history=1),
                     training=GANUserTraining(regularizer="l2"), checkpoint=tmp_path /
                     "stopped.pt", resume=True, progress=False)


def test_bad_regularizer_names_are_refused(entropy_fit, synthetic):
    with pytest.raises(ValueError, match="unknown regularizer 'l1'"):
        GANUserTraining(regularizer="l1")
    with pytest.raises(ValueError, match="regularizer must be one of"):
        GANUserConfig(feature_dim=3, regularizer="shannon")
    train, valid, _, features = synthetic
    with pytest.raises(ValueError, match="regularizer='l2'"):
        fit_gan_user(train, valid, features, initial=entropy_fit.model, progress=False)
    from recgym.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["fit", "gan-user", "--data", "x", "--regularizer", "l1"])


def test_one_hot_items_fit_without_a_checkpoint_and_refuse_one(synthetic, tmp_path):
    """OneHotItems stores no features, so a checkpoint (which must hold them) is refused."""
    train, valid, _, features = synthetic
    one_hot = OneHotItems(len(features))
    config = GANUserConfig(feature_dim=len(features), history=1, hidden=8)
    fit = fit_gan_user(train, valid, one_hot, config=config, progress=False,
                       training=GANUserTraining(epochs=2))
    assert np.isfinite(fit.history[-1]["valid_log_likelihood"])
    with pytest.raises(ValueError, match=r"torch.eye\(n_items\)"):
        fit_gan_user(train, valid, one_hot, config=config, progress=False,
                     checkpoint=tmp_path / "user.pt")
    assert not (tmp_path / "user.pt").exists()


def test_ties_count_in_expectation():
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 1.0, 0.0], [1.0, 2.0, 0.0, 0.0]])
    precision = ranked_precision(scores, torch.tensor([0, 1, 0]), (1, 2))
    assert precision[1] == pytest.approx((1 / 4 + 0 + 0) / 3)
    assert precision[2] == pytest.approx((2 / 4 + 1 / 2 + 1) / 3)


def test_nearest_time_display_sets():
    items = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    times = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 50.0, 51.0])
    sessions = np.array([0, 1, 1, 2, 3, 3, 4, 5])
    sets = display_sets_by_nearest_time(items, times, sessions, size=3, seed=0)
    assert sets.shape == (8, 3)
    assert [sorted(row) for row in sets[:4]] == [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]
    # item 4's session also holds item 5: the nearest others are 3 and 2 (not 5)
    assert sorted(sets[4]) == [2, 3, 4]
    with pytest.raises(ValueError, match="fewer than"):
        display_sets_by_nearest_time(np.zeros(4, np.int64) + np.arange(4), np.arange(4.0),
                                     np.zeros(4), size=3)


def test_cooccurrence_features_follow_shared_users():
    views = PageViews(torch.full((6, 1), -1), torch.tensor([[0, 1]] * 3 + [[2, 3]] * 3),
                      torch.tensor([0, 1, 0, 0, 1, 2]), np.array([0, 0, 1, 2, 2, 3]))
    # users: 0 clicked items 0 and 1, user 1 item 0, user 2 items 2 and 3; item 4 never
    embedding = torch.from_numpy(cooccurrence_features(views, 5, dim=3))
    similarity = embedding @ embedding.T
    assert similarity[0, 1] > similarity[0, 2] and similarity[2, 3] > similarity[1, 3]
    assert torch.all(embedding[4] == 0)



def test_default_features_append_cooccurrence_to_genres_on_request():
    from recgym.data import LogDataset
    from recgym.simulators.gan_user.fit import default_features

    views = PageViews(torch.full((6, 1), -1), torch.tensor([[0, 1]] * 3 + [[2, 3]] * 3),
                      torch.tensor([0, 1, 0, 0, 1, 2]), np.array([0, 0, 1, 2, 2, 3]))
    items = pd.DataFrame({"genre_a": [1, 0, 1, 0, 0], "genre_b": [0, 1, 1, 0, 1]})
    dataset = LogDataset(pd.DataFrame({"session_id": [0], "step": [0], "slate": [[0, 1]],
                                       "click": [0]}), items=items)
    plain = default_features(dataset, views)
    both = default_features(dataset, views, cooccurrence=True)
    assert plain.shape == (5, 3)  # two genres and popularity
    assert both.shape[1] > 3 and torch.equal(both[:, :2], plain[:, :2])
    assert torch.equal(both[:, -1], plain[:, -1])
    assert torch.allclose(both[:, 2:-1], torch.from_numpy(cooccurrence_features(views, 5)))

def test_session_page_views_use_sessions_as_users():
    from recgym.data.pageviews import session_page_views
    from recgym.data.sessions import SessionData

    rng = np.random.default_rng(0)
    events = pd.DataFrame({"session_id": np.repeat(np.arange(30), 3),
                           "step": np.tile(np.arange(3), 30),
                           "item_id": rng.integers(0, 20, 90),
                           "time": np.sort(rng.random(90)) * 1000})
    events["timestamp"] = events["time"].astype(np.int64)
    data = SessionData("toy", events, pd.DataFrame(index=pd.RangeIndex(20, name="item_id")))
    logs = session_page_views(data, size=5, max_sessions=20).logs
    assert logs["session_id"].nunique() == 20 and (logs["user_id"] == logs["session_id"]).all()
    slates = np.stack(logs["slate"].to_numpy())
    assert (slates == logs["click"].to_numpy()[:, None]).sum(1).tolist() == [1] * len(logs)


def test_fit_command_fits_l2_resumes_and_reports_fidelity(tmp_path, capsys):
    from recgym.cli import main
    from recgym.data import LogDataset

    logs, features = synthetic_user_logs(sessions=120)
    items = pd.DataFrame(features.numpy(), columns=[f"genre_{i}" for i in range(6)])
    items.index = pd.RangeIndex(len(items), name="item_id")
    path = tmp_path / "logs.parquet"
    LogDataset(logs, items=items, num_items=len(items)).save(path)
    out = tmp_path / "user.pt"
    command = ["fit", "gan-user", "--data", str(path), "--out", str(out), "--hidden", "16",
               "--history", "1", "--epochs", "2", "--adversarial-epochs", "1",
               "--regularizer", "l2", "--state", "lstm"]
    main(command)
    report = capsys.readouterr().out
    for name in ("GAN-LSTM (l2)", "popularity", "IKNN", "LR click model"):
        assert name in report
    main(command[:-6] + ["--adversarial-epochs", "2", "--regularizer", "l2", "--state", "lstm",
                         "--resume"])
    progress = torch.load(tmp_path / "user.fit.pt", weights_only=True)["progress"]
    assert [entry["epoch"] for entry in progress["l2"]["history"]] == [0, 1, 2]
    assert GANUserModel.from_checkpoint(torch.load(out, weights_only=True)).config.state == "lstm"


def test_env_users_of_an_l2_model_choose_by_its_projection():
    from dataclasses import replace

    from recgym.core import UserRandom
    from recgym.simulators.gan_user import GANUsers

    torch.manual_seed(0)
    config = GANUserConfig(feature_dim=3, history=1, hidden=8, regularizer="l2", eta=10.0)
    model = GANUserModel(config)
    features = torch.randn(6, 3)
    users = GANUsers(model, features, display_sets=torch.tensor([[0, 1, 2, 3]]), slate_size=3)
    batch = 20_000
    rng = UserRandom.from_seeds(range(batch))
    state = users.reset(batch, rng)
    out = users.step(state, torch.tensor([[0, 1, 2]]).repeat(batch, 1), rng)
    model_state = model.state(users._history_features(state["history"][:1]))
    logits = model.choice_logits(model_state, features[:3][None])
    expected = project_onto_simplex(logits / 2)[0].detach().numpy()
    softmax = torch.softmax(logits, -1)[0].detach().numpy()
    counts = np.array([(out.clicked == i).sum() for i in range(3)] + [(out.clicked < 0).sum()])
    assert np.abs(counts / batch - expected).max() < 0.015
    assert np.abs(expected - softmax).max() > 0.05  # the two rules differ on this model
    entropy_users = GANUsers(GANUserModel(replace(config, regularizer="entropy")), features,
                             display_sets=torch.tensor([[0, 1, 2, 3]]), slate_size=3)
    entropy_users.model.load_state_dict(model.state_dict())
    out = entropy_users.step(state, torch.tensor([[0, 1, 2]]).repeat(batch, 1), rng)
    counts = np.array([(out.clicked == i).sum() for i in range(3)] + [(out.clicked < 0).sum()])
    assert np.abs(counts / batch - softmax).max() < 0.015
