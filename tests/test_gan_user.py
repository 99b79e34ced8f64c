"""The GAN user model (Chen et al. 2019): choice probabilities, recovering a known reward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recgym.simulators.gan_user.fit import (
    GANUserTraining,
    PageViews,
    fit_gan_user,
    item_features,
    precision_at,
)
from recgym.simulators.gan_user.model import (
    GANUserConfig,
    GANUserModel,
    OneHotItems,
    features_of,
)


def synthetic_user_logs(sessions: int = 400, steps: int = 8, items: int = 40, shown: int = 8,
                        seed: int = 0):
    """Users who choose by eq. 3 with a known reward: r(s, a) = <w, f_a> + <last click, f_a>."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(items, 6)).astype(np.float32)
    weights = rng.normal(size=6)
    rows = []
    for session in range(sessions):
        last = np.zeros(6)
        for step in range(steps):
            display = rng.choice(items, shown, replace=False)
            reward = features[display] @ weights + features[display] @ last
            logits = np.append(reward, 0.0)  # no click: zero features, zero reward
            probabilities = np.exp(logits - logits.max())
            choice = rng.choice(shown + 1, p=probabilities / probabilities.sum())
            click = int(display[choice]) if choice < shown else -1
            rows.append((session, session, step, display.tolist(), click))
            if click >= 0:
                last = features[click]
    logs = pd.DataFrame(rows, columns=["session_id", "user_id", "step", "slate", "click"])
    return logs, torch.from_numpy(features)


def test_choice_probabilities_sum_to_one_with_no_click():
    for config in (GANUserConfig(feature_dim=5), GANUserConfig(feature_dim=5, state="lstm",
                                                                no_click="learned")):
        model = GANUserModel(config)
        state = model.state(torch.randn(3, config.history, 5))
        logits = model.choice_logits(state, torch.randn(3, 7, 5),
                                     shown=torch.tensor([[True] * 6 + [False]] * 3))
        probabilities = torch.softmax(logits, 1)
        assert probabilities.shape == (3, 8)
        assert torch.allclose(probabilities.sum(1), torch.ones(3))
        assert (probabilities[:, 6] == 0).all()


@pytest.mark.parametrize("state", ["pw", "lstm"])
def test_one_hot_ids_give_the_dense_identity_model_and_its_gradients(state):
    """OneHotItems (row lookups) and torch.eye features: same choices, same gradients."""
    torch.manual_seed(0)
    items, history = 7, 3
    model = GANUserModel(GANUserConfig(feature_dim=items, history=history, hidden=8,
                                       state=state, lstm_hidden=5))
    clicks = torch.tensor([[-1, -1, 4], [2, 2, 6], [0, 5, 1]])
    shown = torch.tensor([[1, 4, 6], [0, 3, 2], [5, 5, 1]])

    def choice_and_grads(features):
        model.zero_grad()
        state_vector = model.state(features_of(clicks, features))
        probabilities = model.choice_probabilities(state_vector, features[shown])
        probabilities[:, 0].log().sum().backward()
        return probabilities.detach(), [p.grad.clone() for p in model.parameters()]

    dense, dense_grads = choice_and_grads(torch.eye(items))
    ids, id_grads = choice_and_grads(OneHotItems(items))
    torch.testing.assert_close(ids, dense)
    for from_ids, from_dense in zip(id_grads, dense_grads, strict=True):
        torch.testing.assert_close(from_ids, from_dense)


def test_entropy_fit_recovers_a_known_reward_better_than_chance():
    logs, features = synthetic_user_logs()
    views = PageViews.from_logs(logs, history=1)
    users = np.asarray(views.user)
    train, valid, test = (views.subset(users % 8 < 4), views.subset(users % 8 == 4),
                          views.subset(users % 8 > 4))
    fit = fit_gan_user(train, valid, features, config=GANUserConfig(feature_dim=6, history=1,
                                                                      hidden=32),
                       training=GANUserTraining(epochs=30, patience=5), test=test,
                       progress=False)
    # chance: 1 / 8 for Prec@1 and 2 / 8 for Prec@2 over 8 displayed items
    assert fit.test_precision[1] > 3 / 8 and fit.test_precision[2] > 4 / 8
    assert fit.history[-1]["valid_log_likelihood"] > fit.history[0]["valid_log_likelihood"]


def test_page_views_carry_the_session_history():
    logs = pd.DataFrame({"session_id": [0, 0, 0, 1], "step": [0, 1, 2, 0],
                         "slate": [[1, 2], [3, 4], [5, 6], [7, 8]], "click": [2, -1, 6, 8]})
    views = PageViews.from_logs(logs, history=2)
    assert views.history.tolist() == [[-1, -1], [-1, 2], [-1, 2], [-1, -1]]
    assert views.choice.tolist() == [1, 2, 1, 1]


def test_item_features_and_checkpoints_are_checked(tmp_path):
    items = pd.DataFrame({"genre_Drama": [1, 0], "year": [1990.0, np.nan]})
    assert item_features(items).shape == (2, 1)
    assert item_features(items, with_year=True).shape == (2, 2)
    with pytest.raises(ValueError, match="features"):
        item_features(pd.DataFrame({"title": ["a"]}))
    with pytest.raises(ValueError, match="checkpoint of .recsimu., expected .gan-user."):
        GANUserModel.from_checkpoint({"kind": "recsimu"})
    model = GANUserModel(GANUserConfig(feature_dim=3))
    clone = GANUserModel.from_checkpoint(model.checkpoint())
    views = PageViews(torch.full((2, 10), -1), torch.tensor([[0, 1], [1, 0]]),
                      torch.tensor([0, 1]), np.array([0, 1]))
    features = torch.eye(3)[:2]
    assert precision_at(model, views, features) == precision_at(clone, views, features)


@pytest.fixture(scope="module")
def env_checkpoint_path(tmp_path_factory):
    from recgym.simulators.gan_user.fit import env_checkpoint

    logs, features = synthetic_user_logs(sessions=200)
    views = PageViews.from_logs(logs, history=1)
    users = np.asarray(views.user)
    fit = fit_gan_user(views.subset(users % 2 == 0), views.subset(users % 2 == 1), features,
                       config=GANUserConfig(feature_dim=6, history=1, hidden=16),
                       training=GANUserTraining(epochs=5), test=views.subset(users % 2 == 1),
                       progress=False)
    path = tmp_path_factory.mktemp("gan") / "user.pt"
    torch.save(env_checkpoint(fit, features, views.subset(users % 2 == 1)), path)
    return path


def test_env_choices_follow_the_model(env_checkpoint_path):
    from recgym.core import UserRandom
    from recgym.simulators.gan_user import GANUsers

    users = GANUsers.from_checkpoint(env_checkpoint_path, slate_size=3)
    batch = 30_000
    rng = UserRandom.from_seeds(range(batch))
    state = users.reset(batch, rng)
    state = {key: value[:1].repeat(batch, *([1] * (value.dim() - 1)))
             for key, value in state.items()}
    slate = torch.tensor([[0, 2, 0]]).repeat(batch, 1)  # position 0 repeated: shown once
    out = users.step(state, slate, rng)
    shown = state["pool"][:1].gather(1, slate[:1])
    model_state = users.model.state(users._history_features(state["history"][:1]))
    logits = users.model.choice_logits(model_state, users.features[shown],
                                       shown=torch.tensor([[True, True, False]]))
    expected = torch.softmax(logits, 1)[0].detach().numpy()
    counts = np.array([(out.clicked == shown[0, 0]).sum(), (out.clicked == shown[0, 1]).sum(),
                       0, (out.clicked < 0).sum()])
    z = (counts - expected * batch) / np.sqrt(np.maximum(expected * (1 - expected) * batch, 1))
    assert np.all(np.abs(z) < 4.5)


def test_env_passes_checkers_and_refuses_bad_checkpoints(env_checkpoint_path, tmp_path):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from recgym.simulators.gan_user import GANUsers

    env = gym.make("GANUserModel-v0", checkpoint=env_checkpoint_path, slate_size=3)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make("GANUserModel-v0", checkpoint=env_checkpoint_path, slate_size=3))
    obs, _ = env.reset(seed=0)
    assert obs["candidates"].shape == (8 * 6,) and obs["history"].shape == (1 * 6,)
    loaded = torch.load(env_checkpoint_path, weights_only=True)
    loaded["display_sets"] = loaded["display_sets"] + 1000
    torch.save(loaded, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="another one"):
        GANUsers.from_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="slate_size"):
        GANUsers.from_checkpoint(env_checkpoint_path, slate_size=9)


def test_reference_click_models():
    from recgym.simulators.gan_user.baselines import baseline_precision

    logs, features = synthetic_user_logs()
    views = PageViews.from_logs(logs, history=1)
    users = np.asarray(views.user)
    train, test = views.subset(users % 2 == 0), views.subset(users % 2 == 1)
    chance = {1: 1 / 8, 2: 2 / 8}
    for name in ("popularity", "display-ctr", "iknn", "lr"):
        precision = baseline_precision(name, train, test, features)
        assert set(precision) == {1, 2} and 0 <= precision[1] <= precision[2] <= 1
    # the synthetic users' reward has a fixed part <w, f_a>: a linear choice model finds it
    assert baseline_precision("lr", train, test, features)[1] > 2 * chance[1]
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_precision("svd", train, test, features)


def test_display_ctr_divides_clicks_by_displays():
    from recgym.simulators.gan_user.baselines import baseline_precision

    # every item clicked once; item 0 and 2 shown 4 times, item 3 three times, item 1 once
    train = PageViews(torch.full((4, 1), -1),
                      torch.tensor([[0, 1, 2], [0, 2, 3], [0, 2, 3], [0, 3, 2]]),
                      torch.tensor([1, 0, 1, 1]), np.arange(4))
    test = PageViews(torch.full((1, 1), -1), torch.tensor([[0, 1, 2]]), torch.tensor([1]),
                     np.array([9]))
    features = torch.zeros(4, 1)
    assert baseline_precision("display-ctr", train, test, features)[1] == 1.0
    assert baseline_precision("popularity", train, test, features)[1] == pytest.approx(1 / 3)
