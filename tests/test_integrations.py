"""recgym.integrations: RLlib env adapter, data-parallel fitting, Minari export.

Fast tests need neither Ray nor a second process; the 2-process gloo run and the local Ray
cluster are marked slow. The Minari round trip skips when the optional package is absent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist

import recgym  # noqa: F401  (registers the envs)
from recgym.core.distributed import (
    DataParallel,
    is_main_process,
    local_rows,
    shard_share,
)
from recgym.data import LogDataset
from recgym.integrations.rllib import (
    RLlibPolicy,
    RLlibVectorEnv,
    env_runner_options,
    make_rllib_env,
    observation_encoder,
)

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- RLlib adapter


def test_observation_encoder_one_hot_and_ids():
    space = gym.spaces.Dict({"a": gym.spaces.MultiDiscrete([3, 4]),
                             "b": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})
    batch = {"a": np.array([[0, 3], [2, 1]]), "b": np.array([[0.5, -1.0], [1.0, 0.0]])}
    box, encode = observation_encoder(space, "one_hot")
    out = encode(batch)
    assert box.shape == (9,) and out.shape == (2, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [1, 0, 0, 0, 0, 0, 1, 0.5, -1.0])
    np.testing.assert_array_equal(out[1], [0, 0, 1, 0, 1, 0, 0, 1.0, 0.0])
    assert all(box.contains(row) for row in out)
    box, encode = observation_encoder(space, "ids")
    np.testing.assert_allclose(encode(batch)[1], [1.0, 1 / 3, 1.0, 0.0])
    with pytest.raises(ValueError, match="one of"):
        observation_encoder(space, "embedding")


def test_auto_encoding_falls_back_to_ids_for_large_catalogues():
    small, _ = observation_encoder(gym.spaces.MultiDiscrete([51] * 10))
    large, _ = observation_encoder(gym.spaces.MultiDiscrete([9742] * 20))
    assert small.shape == (510,) and large.shape == (20,)


def test_rllib_vector_env_steps_the_batched_path_with_strided_seeds():
    env = make_rllib_env("SyntheticMDP-v0", {"num_envs": 8, "num_items": 20})
    assert isinstance(env, RLlibVectorEnv)
    assert type(env.unwrapped).__name__ == "SyntheticMDPVectorEnv"
    observation, _ = env.reset(seed=1)
    assert observation.shape == (8, env.single_observation_space.shape[0])
    assert env.observation_space.contains(observation)
    env.action_space.seed(0)
    next_observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert next_observation.shape == observation.shape and reward.shape == (8,)
    single = make_rllib_env("SyntheticMDP-v0", {"num_items": 20})
    assert single.observation_space == env.single_observation_space
    first, _ = single.reset(seed=0)
    assert single.observation_space.contains(first)


def test_strided_seeds_give_disjoint_user_blocks():
    def rewards(seed: int) -> np.ndarray:
        env = gym.make_vec("SyntheticMDP-v0", num_envs=4, num_items=20,
                           vectorization_mode="vector_entry_point")
        wrapped = RLlibVectorEnv(env, "one_hot")
        wrapped.reset(seed=seed)
        actions = np.tile(np.arange(10), (4, 1))
        return np.stack([wrapped.step(actions)[1] for _ in range(6)], axis=1)

    # RLlib resets runner w with seed + w; with 4 users each, runner 1 gets users 4..7 of
    # a plain vector env seeded 0 (no overlap with runner 0's users 0..3)
    plain = gym.make_vec("SyntheticMDP-v0", num_envs=8, num_items=20,
                         vectorization_mode="vector_entry_point")
    plain.reset(seed=0)
    actions = np.tile(np.arange(10), (8, 1))
    reference = np.stack([plain.step(actions)[1] for _ in range(6)], axis=1)
    np.testing.assert_array_equal(rewards(1), reference[4:])
    np.testing.assert_array_equal(rewards(0), reference[:4])


def test_native_encoding_keeps_recgym_observations_and_strides_seeds():
    env = make_rllib_env("RecSimu-v0", {"num_envs": 2, "observation_encoding": "native"})
    plain = gym.make_vec("RecSimu-v0", num_envs=6, vectorization_mode="vector_entry_point")
    assert env.single_observation_space == plain.single_observation_space
    observation, _ = env.reset(seed=2)  # runner 2 of 2 users each: users 4 and 5
    reference, _ = plain.reset(seed=0)
    for key in ("recent_items", "feedback"):
        np.testing.assert_array_equal(observation[key], reference[key][4:])


def test_rllib_policy_takes_the_best_item_per_slate_position():
    env = make_rllib_env("SyntheticMDP-v0", {"num_envs": 3, "num_items": 20})
    seen = []

    class Module:  # stands in for an RLModule: position p prefers item 19 - p
        def forward_inference(self, batch):
            seen.append(batch["obs"])
            logits = torch.zeros(batch["obs"].shape[0], 10, 20)
            logits[:, torch.arange(10), 19 - torch.arange(10)] = 1.0
            return {"action_dist_inputs": logits.reshape(-1, 200)}

    env.reset(seed=0)
    policy = RLlibPolicy(Module(), env)
    slate = policy.act(env.unwrapped.batch.observe())
    assert slate.dtype == torch.int64 and policy.slate_size == 10
    assert slate.tolist() == [list(range(19, 9, -1))] * 3
    assert seen[0].shape == (3, env.single_observation_space.shape[0])


def test_make_rllib_env_rejects_unknown_ids_and_encodings():
    with pytest.raises(ValueError, match="unknown recgym env"):
        make_rllib_env("CartPole-v1", {})
    with pytest.raises(ValueError, match="observation_encoding"):
        make_rllib_env("SyntheticMDP-v0", {"observation_encoding": "pixels"})
    options = env_runner_options(64, num_env_runners=2)
    assert options == {"num_envs_per_env_runner": 64, "num_env_runners": 2,
                       "gym_env_vectorize_mode": "vector_entry_point"}
    with pytest.raises(ValueError, match=">= 1"):
        env_runner_options(0)


# ----------------------------------------------------------------------------- data-parallel


def test_shards_partition_every_global_batch():
    for total in (0, 1, 5, 500, 501):
        for world in (1, 2, 3):
            shards = [DataParallel(rank, world).shard(total) for rank in range(world)]
            covered = [i for s in shards for i in range(total)[s]]
            assert covered == list(range(total))
            assert sum(shard_share(1.0, s, total) for s in shards) == pytest.approx(
                1.0 if total else 0.0)
    assert local_rows(None, 7) == slice(0, 7)
    assert shard_share(float("nan"), slice(3, 3), 6) == 0.0


def _cf_matrix(users: int = 203, items: int = 40) -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = (rng.random((users, items)) < 0.2).astype(np.float32)
    dense[np.arange(users), rng.integers(items, size=users)] = 1.0
    return sp.csr_matrix(dense)


def _parity_logs(sessions: int = 60, length: int = 12, items: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for session in range(sessions):
        kind = rng.integers(2)
        for step in range(length):
            item = int(2 * rng.integers(items // 2) + (kind if rng.random() < 0.7 else 1 - kind))
            rows.append((session, step, [item], item, int(item % 2 == kind)))
    return pd.DataFrame(rows, columns=["session_id", "step", "slate", "click", "feedback"])


def _fit_both(parallel: DataParallel | None) -> dict[str, list[list[float]]]:
    """Loss curves of Mult-VAE and RecSimu (batches that leave a small last shard)."""
    from agents.cf.vae import MultVAE
    from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu

    vae = MultVAE(40, hidden_dims=(16,), latent_dim=4, epochs=3, batch_size=67,
                  anneal_epochs=2)
    vae.data_parallel = parallel
    vae.fit(_cf_matrix(), progress=False)
    training = RecSimuTraining(generator_pretrain_epochs=1, discriminator_pretrain_epochs=1,
                               adversarial_epochs=2, embedding_epochs=1, batch_size=101)
    fit = fit_recsimu(_parity_logs(), training=training, state_length=4, progress=False,
                      parallel=parallel)
    return {"vae": [[h["loss"], h["nll"], h["kl"]] for h in vae.history],
            "recsimu": [[h["loss_g"], h["loss_d"]] for h in fit.history]}


def test_sharded_path_with_one_rank_reproduces_the_plain_fit(tmp_path):
    plain = _fit_both(None)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        sharded = _fit_both(DataParallel(0, 1))
    finally:
        dist.destroy_process_group()
    for name in plain:
        np.testing.assert_allclose(sharded[name], plain[name], rtol=1e-6, atol=1e-7)


def _worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from recgym.core.distributed import init_data_parallel

    try:
        queue.put((rank, _fit_both(init_data_parallel())))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_loss_curves():
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(rank, 2, port, queue))
               for rank in range(2)]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    single = _fit_both(None)
    assert results[0] == results[1]  # every rank logs the same global statistics
    for name in single:
        np.testing.assert_allclose(results[0][name], single[name], rtol=1e-5, atol=1e-6)



def test_only_rank_zero_reports(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()  # not under torchrun
    for rank, main in (("0", True), ("1", False), ("3", False)):
        monkeypatch.setenv("RANK", rank)
        assert is_main_process() == main

# ----------------------------------------------------------------------------- Minari


def _full_log() -> LogDataset:
    """Every schema column plus an extra one, an item table, rows out of session order."""
    rng = np.random.default_rng(0)
    rows = []
    for session in rng.permutation(25):
        for step in range(int(rng.integers(1, 6))):
            candidates = rng.permutation(20)[:6]
            slate = candidates[:3]
            rows.append({"session_id": int(session) * 7, "user_id": int(session) % 4,
                         "step": step, "slate": list(slate), "candidates": list(candidates),
                         "click": int(rng.choice([-1, slate[0], slate[2]])),
                         "feedback": int(rng.integers(3)), "reward": float(rng.random()),
                         "propensity": float(rng.random()), "timestamp": 1000 + step,
                         "true_state": int(rng.integers(4))})
    items = pd.DataFrame({"genre": rng.integers(0, 3, 20)},
                         index=pd.Index(np.arange(20), name="item_id"))
    return LogDataset(pd.DataFrame(rows).sample(frac=1, random_state=0), items, num_items=20)


def test_minari_round_trip_preserves_every_field(tmp_path):
    pytest.importorskip("minari", reason="optional: pip install 'recgym[minari]'")
    from recgym.integrations.minari import export_minari, import_minari

    dataset = _full_log()
    written = export_minari(dataset, "recgym/full-v0", history=4, data_path=tmp_path)
    assert written.total_episodes == dataset.num_sessions
    assert written.total_steps == len(dataset)
    episode = next(iter(written.iterate_episodes()))
    steps = len(episode.actions)
    assert episode.observations.shape == (steps + 1, 4)
    assert episode.terminations[-1] and not episode.truncations.any()
    assert len(episode.infos["propensity"]) == steps + 1
    back = import_minari("recgym/full-v0", data_path=tmp_path)
    assert back.equals(dataset)
    # without a reward column the export rewards clicks, and the import adds no column
    clicks_only = dataset.with_logs(dataset.logs.drop(columns=["reward"]))
    written = export_minari(clicks_only, "recgym/clicks-v0", data_path=tmp_path)
    rewards = np.concatenate([e.rewards for e in written.iterate_episodes()])
    assert rewards.sum() == (clicks_only.logs["click"] >= 0).sum()
    assert import_minari(written).equals(clicks_only)


def test_minari_observations_are_click_histories():
    from recgym.integrations.minari import click_histories

    histories = click_histories(np.array([4, -1, 7, 2]), history=2, num_items=9)
    np.testing.assert_array_equal(histories, [[9, 9], [9, 4], [9, 4], [4, 7], [7, 2]])


def test_minari_export_refuses_what_it_cannot_carry(tmp_path):
    pytest.importorskip("minari", reason="optional: pip install 'recgym[minari]'")
    from recgym.integrations.minari import export_minari

    logs = _full_log().logs.assign(note="text")
    with pytest.raises(ValueError, match="'note'.*numeric"):
        export_minari(LogDataset(logs, num_items=20), "recgym/bad-v0", data_path=tmp_path)


def test_export_and_import_commands(tmp_path, capsys):
    pytest.importorskip("minari", reason="optional: pip install 'recgym[minari]'")
    from recgym.cli import main

    dataset = _full_log()
    dataset.save(tmp_path / "log.parquet")
    minari_path = str(tmp_path / "minari")
    export = ["export-minari", str(tmp_path / "log.parquet"), "recgym/cli-v0",
              "--data-path", minari_path]
    assert main(export) == 0
    printed = capsys.readouterr()
    assert "25 episodes" in printed.out and "export-minari" in printed.err  # tqdm bar
    assert main(["import-minari", "recgym/cli-v0", "--data-path", minari_path,
                 "--out", str(tmp_path / "back.parquet")]) == 0
    assert LogDataset.load(tmp_path / "back.parquet").equals(dataset)
    assert main(["import-minari", "recgym/cli-v0", "--data-path", minari_path,
                 "--out", str(tmp_path / "back.csv")]) == 2
    assert "must end in .parquet" in capsys.readouterr().err


def test_export_refuses_an_existing_dataset_and_overwrites_a_partial_one(tmp_path, capsys):
    pytest.importorskip("minari", reason="optional: pip install 'recgym[minari]'")
    from recgym.cli import main

    _full_log().save(tmp_path / "log.parquet")
    export = ["export-minari", str(tmp_path / "log.parquet"), "recgym/again-v0",
              "--data-path", str(tmp_path / "minari")]
    partial = tmp_path / "minari" / "recgym" / "again-v0" / "data"
    partial.mkdir(parents=True)  # what a killed export leaves behind
    (partial / "half-written.arrow").write_bytes(b"\0" * 10)
    assert main(export) == 2
    err = capsys.readouterr().err
    assert err.startswith("recgym: error: Minari dataset recgym/again-v0 already exists")
    assert "--overwrite" in err and err.count("\n") == 1
    assert main([*export, "--overwrite"]) == 0
    assert not (partial / "half-written.arrow").exists()
    assert main([*export, "--overwrite"]) == 0  # a complete one is replaced too
    assert "25 episodes" in capsys.readouterr().out


def test_a_failed_export_leaves_no_partial_dataset(tmp_path, monkeypatch):
    pytest.importorskip("minari", reason="optional: pip install 'recgym[minari]'")
    from recgym.integrations import minari as bridge

    def interrupted(*args, **kwargs):
        yield from []
        raise KeyboardInterrupt

    monkeypatch.setattr(bridge, "_episodes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bridge.export_minari(_full_log(), "recgym/cut-v0", data_path=tmp_path)
    assert not (tmp_path / "recgym" / "cut-v0").exists()


# ----------------------------------------------------------------------------- Ray cluster

_RAY_SCRIPT = """
import json, ray
from ray.rllib.algorithms.ppo import PPOConfig
from recgym.integrations.rllib import env_runner_options, register_rllib_envs
ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
try:
    register_rllib_envs()
    algo = (PPOConfig().environment("SyntheticMDP-v0", env_config={"num_items": 20})
            .env_runners(**env_runner_options(32, num_env_runners=2))
            .training(train_batch_size_per_learner=512, minibatch_size=256, num_epochs=1)
            .debugging(seed=0).build_algo())
    results = [algo.train() for _ in range(3)]
    envs = algo.env_runner_group.foreach_env_runner(
        lambda r: (type(r.env.unwrapped).__name__, r.num_envs), local_env_runner=False)
    mean_return = results[-1]["env_runners"].get("episode_return_mean")
    print(json.dumps({"steps": int(results[-1]["num_env_steps_sampled_lifetime"]),
                      "envs": [[name, int(n)] for name, n in envs],
                      "return": None if mean_return is None else float(mean_return)}))
    algo.stop()
finally:
    ray.shutdown()
"""


@pytest.mark.slow
def test_local_ray_cluster_trains_ppo_with_two_batched_env_runners():
    pytest.importorskip("ray.rllib", reason="optional: pip install 'recgym[ray]'")
    result = subprocess.run([sys.executable, "-c", _RAY_SCRIPT], capture_output=True,
                            text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] >= 3 * 512
    assert summary["envs"] == [["SyntheticMDPVectorEnv", 32]] * 2
    assert summary["return"] is not None and np.isfinite(summary["return"])


@pytest.mark.slow
def test_rllib_example_runs_on_both_envs(tmp_path):
    pytest.importorskip("ray.rllib", reason="optional: pip install 'recgym[ray]'")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "rllib_ppo.py"), "--iterations", "2",
         "--num-envs-per-env-runner", "32", "--train-batch-size", "1024"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    for env_id in ("SyntheticMDP-v0", "RecSimu-v0"):
        assert f"{env_id} iteration 2:" in result.stdout
