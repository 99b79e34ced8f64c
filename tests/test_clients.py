"""Third-party agents on plain ``gym.make(id)``.

SB3 with item embeddings, skrl, Gymnasium's wrappers and vector envs, the env checker with
rendering.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.preprocessing import preprocess_obs

import recgym
from recgym.integrations.sb3 import (
    ItemEmbeddingExtractor,
    item_keys,
    policy_class,
    policy_kwargs,
    simulator_embeddings,
)

ENV_IDS = sorted(recgym.ENV_DESCRIPTIONS)


def test_extractor_reads_ids_from_one_hot_blocks():
    space = gym.make("RecSimu-v0").observation_space
    extractor = ItemEmbeddingExtractor(space, embedding_dim=4)
    assert list(extractor.embeddings) == ["recent_items"] == item_keys(space)
    observation = {key: torch.as_tensor(np.stack([space[key].sample() for _ in range(3)]))
                   for key in space}
    features = extractor(preprocess_obs(observation, space))
    table = extractor.embeddings["recent_items"].weight
    expected_items = table[observation["recent_items"]]
    assert list(space) == ["feedback", "recent_items"]  # features follow the space's order
    assert features.shape == (3, extractor.features_dim) == (3, 20 * 2 + 4 + 4)
    one_hot_feedback = torch.nn.functional.one_hot(observation["feedback"], 2).reshape(3, -1)
    torch.testing.assert_close(features[:, :40], one_hot_feedback.float())
    torch.testing.assert_close(features[:, 40:44], expected_items.mean(1))
    torch.testing.assert_close(features[:, 44:], expected_items[:, -1])


def test_extractor_refuses_keys_that_are_not_ids():
    space = gym.make("RecSimu-v0").observation_space
    with pytest.raises(ValueError, match="feedback"):
        ItemEmbeddingExtractor(space, keys=["feedback"])


def test_simulator_embeddings_are_the_simulators_own():
    recsimu = gym.make("RecSimu-v0")
    found = simulator_embeddings(recsimu)
    torch.testing.assert_close(found["recent_items"],
                               recsimu.unwrapped.simulator.model.item_vectors.float())
    irecgan = gym.make("IRecGAN-v0")
    torch.testing.assert_close(simulator_embeddings(irecgan)["obs"],
                               irecgan.unwrapped.simulator.model.item_embedding.weight)
    assert simulator_embeddings("SyntheticMDP-v0") == {}
    assert simulator_embeddings("GANUserModel-v0") == {}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_algorithms_build_and_step_with_policy_kwargs(env_id):
    env = gym.make(env_id)
    kwargs = policy_kwargs(env_id, env=env)
    algorithms = [PPO, A2C] + ([DQN] if isinstance(env.action_space, gym.spaces.Discrete)
                               else [])
    for algorithm in algorithms:
        extra = {DQN: {"learning_starts": 0, "buffer_size": 1000},
                 PPO: {"n_steps": 8, "batch_size": 8}, A2C: {"n_steps": 8}}[algorithm]
        model = algorithm(policy_class(algorithm), env, policy_kwargs=kwargs, seed=0,
                          device="cpu", **extra)
        model.learn(16)
        if item_keys(env.observation_space):  # ids embedded: far narrower than one-hot
            extractors = [m for m in model.policy.modules()
                          if isinstance(m, ItemEmbeddingExtractor)]
            width = extractors[0].features_dim
            assert 5 * width < gym.spaces.flatdim(env.observation_space), width
        action, _ = model.predict(env.observation_space.sample(), deterministic=True)
        assert env.action_space.contains(action if np.ndim(action) else int(action))


def test_policy_kwargs_overrides_and_unknown_id():
    kwargs = policy_kwargs("RecSimu-v0", net_arch=[8], pretrained=False,
                           features_extractor_kwargs={"embedding_dim": 5})
    assert kwargs["net_arch"] == [8]
    assert kwargs["features_extractor_kwargs"] == {"keys": ["recent_items"], "embedding_dim": 5}
    with pytest.raises(ValueError, match="unknown recgym env"):
        policy_kwargs("CartPole-v1")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_ansi(env_id):
    env = gym.make(env_id, render_mode="ansi")
    assert "ansi" in env.metadata["render_modes"]
    env.reset(seed=0)
    assert "no slate shown yet" in env.render()
    env.action_space.seed(0)
    _, _, _, _, info = env.step(env.action_space.sample())
    text = env.render()
    assert text.startswith("step 1: slate [")
    assert ("no click" in text) == (info["clicked"] < 0)
    assert len(text.splitlines()) >= 2 and len(text) < 600
    plain = gym.make(env_id)
    plain.reset(seed=0)
    assert plain.render() is None


def test_render_shows_true_state_and_one_text_per_user():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        render_mode="ansi")
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    texts = envs.render()
    states = envs.batch.state["state"].tolist()
    assert len(texts) == 3
    for text, state in zip(texts, states, strict=True):
        assert f"true_state: {state}" in text.splitlines()


def test_render_adds_a_simulators_describe_lines():
    env = gym.make("IRecGAN-v0", render_mode="ansi")
    simulator = env.unwrapped.simulator
    simulator.describe = lambda state: [f"lstm state of {len(state['history'][i])} clicks"
                                        for i in range(len(state["history"]))]
    env.reset(seed=0)
    assert env.render().splitlines()[-1] == "lstm state of 10 clicks"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env_with_render(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, render_mode="ansi").unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_wrappers_and_vector_envs(env_id):
    env = gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id)))
    obs, _ = env.reset(seed=0)
    assert obs.ndim == 1 and env.observation_space.contains(obs)
    env.action_space.seed(0)
    for _ in range(300):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            assert info["episode"]["l"] >= 1
            break
    else:
        pytest.fail("no episode ended within 300 steps")
    for vector in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        envs = vector([lambda: gym.make(env_id)] * 2)
        try:
            obs, _ = envs.reset(seed=0)
            assert envs.observation_space.contains(obs)
            obs, reward, *_ = envs.step(envs.action_space.sample())
            assert envs.observation_space.contains(obs) and reward.shape == (2,)
        finally:
            envs.close()


_FORK_AFTER_TORCH = """
import gymnasium as gym, torch, recgym
torch.set_num_threads(2)
matrix = torch.randn(1500, 1500)
(matrix @ matrix).sum()  # the parent's OpenMP pool now has worker threads
envs = gym.vector.AsyncVectorEnv([lambda: gym.make({env_id!r})] * 2, context="fork")
envs.reset(seed=0)
envs.step(envs.action_space.sample())
envs.close()
print("stepped")
"""


@pytest.mark.parametrize("env_id", ["GANUserModel-v0", "SyntheticMDP-v0"])
def test_forked_workers_step_after_the_parent_used_torch_threads(env_id):
    """Without recgym.threads the forked workers wait forever on the parent's dead pool."""
    done = subprocess.run([sys.executable, "-c", _FORK_AFTER_TORCH.format(env_id=env_id)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "stepped" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("env_id", ["RecSimu-v0", "SyntheticMDP-v0"])
def test_item_policies_skip_the_one_hot_and_give_the_same_features(env_id):
    env = gym.make(env_id)
    ours = PPO(policy_class(PPO), env, policy_kwargs=policy_kwargs(env_id, env=env), seed=0,
               device="cpu")
    observation = [env.observation_space.sample() for _ in range(4)]
    batch, _ = ours.policy.obs_to_tensor(
        {key: np.stack([o[key] for o in observation]) for key in observation[0]}
        if isinstance(observation[0], dict) else np.stack(observation))
    extractor = ours.policy.features_extractor
    one_hot = preprocess_obs(batch, env.observation_space)
    torch.testing.assert_close(ours.policy.extract_features(batch), extractor(one_hot))


def _skrl_models(env):
    """A categorical (or multi-categorical) policy and a value MLP on skrl's flat obs."""
    from skrl.models.torch import (
        CategoricalMixin,
        DeterministicMixin,
        Model,
        MultiCategoricalMixin,
    )

    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    outputs = int(env.action_space.n) if discrete else int(sum(env.action_space.nvec))
    mixin = CategoricalMixin if discrete else MultiCategoricalMixin

    def make(kind, width: int):
        def __init__(self) -> None:
            Model.__init__(self, observation_space=env.observation_space,
                           action_space=env.action_space, device=env.device)
            kind.__init__(self)
            self.net = torch.nn.Sequential(torch.nn.LazyLinear(32), torch.nn.Tanh(),
                                           torch.nn.Linear(32, width))

        def compute(self, inputs, role=""):
            return self.net(inputs["observations"].float()), {}

        return type(kind.__name__, (kind, Model), {"__init__": __init__, "compute": compute})()

    return {"policy": make(mixin, outputs), "value": make(DeterministicMixin, 1)}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_skrl_ppo_updates_on_plain_gym_make(env_id, tmp_path):
    skrl = pytest.importorskip("skrl")  # a dev dependency
    from skrl.agents.torch.ppo import PPO as SkrlPPO
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.memories.torch import RandomMemory
    from skrl.trainers.torch import SequentialTrainer

    assert skrl.__version__
    env = wrap_env(gym.make(env_id), wrapper="gymnasium")
    models = _skrl_models(env)
    for model in models.values():
        model.init_state_dict(role="")
    before = [p.detach().clone() for p in models["policy"].parameters()]
    agent = SkrlPPO(models=models, memory=RandomMemory(memory_size=16, num_envs=env.num_envs,
                                                        device=env.device),
                    observation_space=env.observation_space, action_space=env.action_space,
                    device=env.device,
                    cfg={"rollouts": 16, "learning_epochs": 2, "mini_batches": 2,
                         "experiment": {"write_interval": 0, "checkpoint_interval": 0,
                                        "directory": str(tmp_path)}})
    # closed here: skrl's default closes at interpreter exit, after pytest closed the
    # streams its logger writes to
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": 48, "headless": True,
                                                  "disable_progressbar": True,
                                                  "close_environment_at_exit": False}).train()
    env.close()
    after = list(models["policy"].parameters())
    assert any((a != b).any() for a, b in zip(before, after, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("env_id, algorithm, budget_scale, n_sessions", [
    ("SyntheticMDP-v0", "PPO", 0.5, 1000), ("RecSimu-v0", "PPO", 0.5, 1000),
    ("RecSimu-v0", "DQN", 0.5, 1000), ("IRecGAN-v0", "PPO", 1.0, 2000),
    ("RecSimuSlate-v0", "PPO", 1.0, 2000), ("GANUserModel-v0", "PPO", 0.5, 1000)])
def test_sb3_learns_on_plain_gym_make(env_id, algorithm, budget_scale, n_sessions,
                                     benchmark_module):
    """The committed budgets learn (IRecGAN-v0's gain, ~0.4 click, needs 2,000 sessions)."""
    clients = benchmark_module("clients")
    run = next(r for r in clients.RUNS if (r.env_id, r.algorithm) == (env_id, algorithm))
    row = clients.measure(run, budget_scale=budget_scale, n_sessions=n_sessions)
    assert row["z"] >= clients.MARGIN, row
