"""recgym.integrations.rllib_module: the RLlib RLModule that embeds item ids.

Needs Ray with RLlib (skipped without it, as in CI); the PPO run is a subprocess with its
own local Ray instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("ray.rllib", reason="optional: pip install 'recgym[ray]'")

import recgym  # noqa: E402  (registers the envs)
from recgym.integrations.layout import item_keys, simulator_embeddings  # noqa: E402
from recgym.integrations.rllib import RLlibPolicy, make_rllib_env  # noqa: E402
from recgym.integrations.rllib_module import (  # noqa: E402
    ItemEmbeddingRLModule,
    rl_module_spec,
)

REPO = Path(__file__).resolve().parents[1]
ENV_IDS = sorted(recgym.ENV_DESCRIPTIONS)


def _build(env_id: str, **model_config) -> tuple[ItemEmbeddingRLModule, gym.vector.VectorEnv]:
    """The module of ``rl_module_spec(env_id)`` on a native vector env of 4 users."""
    env = make_rllib_env(env_id, {"num_envs": 4, "observation_encoding": "native"})
    spec = rl_module_spec(env_id, **model_config)
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    return spec.build(), env


def _tensors(observation):
    if isinstance(observation, dict):
        return {key: torch.from_numpy(value) for key, value in observation.items()}
    return torch.from_numpy(observation)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_module_builds_and_acts_on_native_observations(env_id):
    module, env = _build(env_id)
    observation, _ = env.reset(seed=0)
    batch = {"obs": _tensors(observation)}
    action_space = env.single_action_space
    logits = module.forward_exploration(batch)["action_dist_inputs"]
    width = action_space.n if isinstance(action_space, gym.spaces.Discrete) \
        else int(action_space.nvec.sum())
    assert logits.shape == (4, width)
    train = module.forward_train(batch)
    assert module.compute_values(batch).shape == (4,)
    torch.testing.assert_close(module.compute_values(batch, train["embeddings"]),
                               module.compute_values(batch))
    actions = module.get_exploration_action_dist_cls().from_logits(logits).sample().numpy()
    for action in actions:
        assert action_space.contains(action if action.ndim else int(action))
    env.step(actions)
    keys = item_keys(env.single_observation_space)
    assert list(module.embeddings) == keys
    if keys:  # ids embedded: features far narrower than their one-hot encoding
        assert 5 * train["embeddings"].shape[1] < gym.spaces.flatdim(env.single_observation_space)


def test_features_are_the_sb3_layout_mean_and_last_item_after_one_hot_flags():
    module, env = _build("RecSimu-v0", pretrained=False, embedding_dim=4)
    observation, _ = env.reset(seed=0)
    features = module.features({"obs": _tensors(observation)})
    table = module.embeddings["recent_items"].weight
    items = table[torch.from_numpy(observation["recent_items"])]
    flags = torch.nn.functional.one_hot(torch.from_numpy(observation["feedback"]), 2)
    assert list(env.single_observation_space) == ["feedback", "recent_items"]
    torch.testing.assert_close(features, torch.cat([flags.reshape(4, -1).float(),
                                                    items.mean(1), items[:, -1]], dim=1))


@pytest.mark.parametrize(("env_id", "key"), [("RecSimu-v0", "recent_items"),
                                             ("IRecGAN-v0", "obs")])
def test_embeddings_start_from_the_simulators_own(env_id, key):
    expected = simulator_embeddings(env_id)[key]
    pretrained, _ = _build(env_id)
    torch.testing.assert_close(pretrained.embeddings[key].weight.detach(), expected)
    assert pretrained.embeddings[key].weight.requires_grad  # fine-tuned by default
    frozen, _ = _build(env_id, freeze_embeddings=True)
    assert not frozen.embeddings[key].weight.requires_grad
    learned, _ = _build(env_id, pretrained=False)
    assert learned.embeddings[key].weight.shape == (expected.shape[0], 32)


def test_flat_observations_are_refused_with_the_fix():
    env = make_rllib_env("RecSimu-v0", {"num_envs": 2})
    spec = rl_module_spec("RecSimu-v0", pretrained=False)
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    with pytest.raises(ValueError, match="observation_encoding"):
        spec.build()


def test_rllib_policy_takes_the_best_slot_of_the_module():
    module, env = _build("IRecGAN-v0")
    policy = RLlibPolicy(module, env)
    observation = {"clicks": torch.as_tensor(env.reset(seed=0)[0])}
    slate = policy.act(observation)
    logits = module.forward_inference({"obs": observation["clicks"]})["action_dist_inputs"]
    assert slate.shape == (4, 10)
    torch.testing.assert_close(slate, logits.reshape(4, 10, 50).argmax(-1))


_PPO_SCRIPT = """
import json, ray
from ray.rllib.algorithms.ppo import PPOConfig
from recgym.integrations.rllib import env_runner_options, register_rllib_envs
from recgym.integrations.rllib_module import ItemEmbeddingRLModule, rl_module_spec
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
try:
    register_rllib_envs(["RecSimu-v0"])
    algo = (PPOConfig()
            .environment("RecSimu-v0", env_config={"observation_encoding": "native"})
            .env_runners(**env_runner_options(16, num_env_runners=0))
            .training(train_batch_size_per_learner=256, minibatch_size=128, num_epochs=1)
            .rl_module(rl_module_spec=rl_module_spec("RecSimu-v0"))
            .debugging(seed=0).build_algo())
    before = algo.get_module().embeddings["recent_items"].weight.detach().clone()
    results = [algo.train() for _ in range(2)]
    module = algo.get_module()
    moved = float((module.embeddings["recent_items"].weight - before).abs().max())
    print(json.dumps({"module": type(module).__name__, "moved": moved,
                      "steps": int(results[-1]["num_env_steps_sampled_lifetime"]),
                      "return": results[-1]["env_runners"].get("episode_return_mean")}))
    algo.stop()
finally:
    ray.shutdown()
"""


def test_ppo_trains_two_iterations_on_recsimu():
    result = subprocess.run([sys.executable, "-c", _PPO_SCRIPT], capture_output=True,
                            text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["module"] == "ItemEmbeddingRLModule"
    assert summary["steps"] >= 2 * 256
    assert summary["moved"] > 0  # the embedding is trained
    assert summary["return"] is not None and np.isfinite(summary["return"])
