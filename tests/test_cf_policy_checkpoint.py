"""CF models as recgym policies, one-file checkpoints and resumed training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import recgym  # noqa: F401  (registers the env ids)
from agents.cf import CFSFL, EASE, MultDAE, MultVAE, Popularity, RaCT, load_model
from agents.cf.checkpoint import KIND
from recgym.core import Policy
from recgym.core.checkpoint import CheckpointError
from recgym.evaluation import evaluate_policy
from recgym.simulators.synthetic_mdp import SyntheticMDP

TINY = dict(hidden_dims=(16,), latent_dim=4, batch_size=16)
N_ITEMS = 50

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def random_histories(n_users: int = 40, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, N_ITEMS)) < 0.15).astype(np.float32)
    x[np.arange(n_users), rng.integers(0, N_ITEMS, n_users)] = 1.0
    return sp.csr_matrix(x)


def make(name: str):
    return {
        "MultVAE": lambda: MultVAE(N_ITEMS, epochs=4, **TINY),
        "MultDAE": lambda: MultDAE(N_ITEMS, epochs=4, **TINY),
        "RaCT": lambda: RaCT(N_ITEMS, actor_epochs=2, critic_epochs=1, ac_epochs=2, **TINY),
        "CFSFL": lambda: CFSFL(N_ITEMS, steps=2, pretrain_epochs=2, reward_epochs=1,
                               joint_epochs=2, embed_dim=4, feedback_dim=4,
                               virtual_hidden=(8,), **TINY),
        "EASE": lambda: EASE(N_ITEMS, l2=10.0),
        "Popularity": lambda: Popularity(N_ITEMS),
    }[name]()


NAMES = ["MultVAE", "MultDAE", "RaCT", "CFSFL", "EASE", "Popularity"]


@pytest.fixture(scope="module")
def fitted():
    x = random_histories()
    return {name: make(name).fit(x, progress=False) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_policy_recommends_unseen_items_in_synthetic_mdp(fitted, name):
    policy = fitted[name].as_policy(k=5)
    assert isinstance(policy, Policy) and policy.slate_size == 5
    clicks = torch.tensor([[3, 7, 7, 50], [50, 50, 50, 50], [0, 1, 2, 3]])
    slate = policy.act({"clicks": clicks})
    assert slate.shape == (3, 5) and slate.dtype == torch.int64
    for row, hist in zip(slate.tolist(), clicks.tolist(), strict=True):
        assert len(set(row)) == 5 and not set(row) & set(hist)
    result = evaluate_policy(SyntheticMDP(num_items=N_ITEMS, slate_size=5), policy,
                             n_sessions=16, max_steps=20)
    # every session shows a slate; a click (reward 1) is what continues it
    assert 1 <= result.mean_length <= 20 and result.mean_return == pytest.approx(
        result.ctr * result.mean_length)


def test_policy_runs_in_vector_env(fitted):
    env = gym.make_vec("SyntheticMDP-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       num_items=N_ITEMS, slate_size=5)
    obs, _ = env.reset(seed=0)
    policy = fitted["MultVAE"].as_policy(k=5)
    for _ in range(5):
        slate = policy.act({"clicks": torch.as_tensor(obs)}).numpy()
        for row, history in zip(slate, obs, strict=True):
            assert len(set(row)) == 5 and not set(row) & (set(history) - {N_ITEMS})
        obs, reward, *_ = env.step(slate)
    env.close()


def test_policy_rejects_items_beyond_catalogue(fitted):
    policy = fitted["MultVAE"].as_policy(k=3)
    with pytest.raises(ValueError, match="catalogue"):
        policy.act({"clicks": torch.tensor([[3, 99]])})
    with pytest.raises(KeyError, match="history_key"):
        policy.act({"items": torch.tensor([[3]])})


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_roundtrip(fitted, name, tmp_path):
    model = fitted[name]
    path = model.save(tmp_path / f"{name}.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == KIND and raw["model"] == name and raw["recgym_checkpoint"] == 1
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.as_tensor(random_histories(5, seed=9).toarray())
    torch.testing.assert_close(loaded.eval().score(x), model.eval().score(x))


@pytest.mark.parametrize("name", ["MultVAE", "RaCT", "CFSFL"])
def test_resume_gives_the_uninterrupted_result(name, tmp_path):
    x = random_histories()
    heldout = (random_histories(10, seed=3), random_histories(10, seed=4))
    heldout = (heldout[0], sp.csr_matrix(heldout[1] - heldout[1].multiply(heldout[0])))
    whole = make(name).fit(x, valid=heldout, progress=False)
    path = tmp_path / "ckpt.pt"
    make(name).fit(x, valid=heldout, progress=False, checkpoint=path, max_epochs=3)
    resumed = load_model(path)
    assert resumed.epoch == 3
    resumed.fit(x, valid=heldout, progress=False, checkpoint=path, resume=True)
    assert [h["epoch"] for h in resumed.history] == [h["epoch"] for h in whole.history]
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(),
                         strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a recgym checkpoint"):
        load_model(path)
    torch.save({"kind": "recsimu", "config": {}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="checkpoint of 'recsimu', expected 'cf-model'"):
        load_model(path)


@pytest.mark.parametrize(("env_id", "key"),
                         [("IRecGAN-v0", "clicks"), ("RecSimu-v0", "recent_items")])
def test_policy_runs_in_learned_simulator_envs(env_id, key):
    env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    sim = env.unwrapped.simulator
    rng = np.random.default_rng(0)
    hist = (rng.random((30, sim.num_items)) < 0.02).astype(np.float32)
    hist[:, 0] = 1.0
    model = MultVAE(sim.num_items, epochs=1, **TINY).fit(sp.csr_matrix(hist), progress=False)
    policy = model.as_policy(k=sim.slate_size, history_key=key)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs = obs if isinstance(obs, dict) else {key: obs}
        slate = policy.act({k: torch.as_tensor(v) for k, v in obs.items()})
        assert slate.shape == (3, sim.slate_size)
        for row, history in zip(slate.tolist(), obs[key].tolist(), strict=True):
            assert not set(row) & (set(history) - {sim.num_items})  # no item seen before
        obs, *_ = env.step(slate.numpy().reshape(env.action_space.shape))
    env.close()
    result = evaluate_policy(sim, policy, n_sessions=4, max_steps=3)
    assert result.n_sessions == 4 and 1 <= result.mean_length <= 3


def _popularity(counts: list[int]) -> Popularity:
    """A popularity model whose item c was clicked counts[c] times."""
    rows = [u for c, n in enumerate(counts) for u in range(n)]
    cols = [c for c, n in enumerate(counts) for _ in range(n)]
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                          shape=(max(counts), len(counts)))
    return Popularity(len(counts)).fit(train, progress=False)


def test_policy_ranks_candidate_pool_through_item_ids():
    # model columns 0..3 are env items 10, 11, 12, 13; column popularity 1 < 4 < 3 < 2
    policy = _popularity([1, 4, 3, 2]).as_policy(
        k=2, history_key="clicks", pad_id=-1, item_ids=np.array([10, 11, 12, 13]),
        candidates_key="candidate_ids")
    observation = {"clicks": torch.tensor([[-1, 11], [-1, -1]]),
                   "candidate_ids": torch.tensor([[13, 11, 99, 12], [10, 99, 13, 12]])}
    slate = policy.act(observation)
    # user 0 already clicked 11: best unseen are 12 (pos 3) then 13 (pos 0);
    # user 1: 12 (pos 3) then 13 (pos 2); item 99 is unknown to the model and ranks last
    assert slate.tolist() == [[3, 0], [3, 2]]


def test_policy_item_ids_must_cover_the_model():
    with pytest.raises(ValueError, match="one env id per model column"):
        _popularity([1, 2, 3]).as_policy(k=1, item_ids=np.array([5, 6]))
    with pytest.raises(ValueError, match="distinct"):
        _popularity([1, 2, 3]).as_policy(k=1, item_ids=np.array([5, 6, 5]))


def test_cf_policy_acts_in_gan_user_model_env():
    from agents.cf.train import load_cf_data

    data = load_cf_data("ml-latest-small")
    model = Popularity(data.num_items).fit(data.train, progress=False)
    policy = model.as_policy(k=5, pad_id=-1, item_ids=data.item_ids,
                             candidates_key="candidate_ids")
    env = gym.make_vec("GANUserModel-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       observe_ids=True)
    obs, _ = env.reset(seed=0)
    column = {int(item): c for c, item in enumerate(data.item_ids)}
    popularity = np.asarray(data.train.sum(0)).ravel()
    slate = policy.act({k: torch.as_tensor(v) for k, v in obs.items()}).numpy()
    for user in range(4):
        scores = [popularity[column[int(i)]] if int(i) in column else -1
                  for i in obs["candidate_ids"][user]]
        shown = [scores[p] for p in slate[user]]
        assert len(set(slate[user])) == 5 and shown == sorted(shown, reverse=True)
        assert min(shown) >= max(np.delete(scores, slate[user]))
    result = evaluate_policy(env.unwrapped.simulator, policy, n_sessions=8, max_steps=3)
    env.close()
    assert result.mean_length == 3  # GAN user sessions end only at the horizon
    assert np.isfinite(result.mean_return)


def test_gan_user_env_ids_match_its_features():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("GANUserModel-v0", observe_ids=True)
    check_env(env.unwrapped, skip_render_check=True)
    features = env.unwrapped.simulator.features.numpy()
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        history = obs["history"].reshape(len(obs["clicks"]), -1)
        clicked = obs["clicks"] >= 0
        assert np.allclose(history[clicked], features[obs["clicks"][clicked]])
        assert np.allclose(history[~clicked], 0.0)
        assert np.allclose(obs["candidates"].reshape(len(obs["candidate_ids"]), -1),
                           features[obs["candidate_ids"]])
        obs, *_ = env.step(env.action_space.sample())
    assert set(gym.make("GANUserModel-v0").observation_space.spaces) == {"history", "candidates"}
