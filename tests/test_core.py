"""The batched core: random streams, single/vector equivalence, autoreset, bad input."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

import recgym  # noqa: F401  (registers the envs)
from recgym.core import RandomPolicy, TopKSlate, TopKSlateVector, UserRandom, scores_to_slate
from recgym.core.env import RecEnv, RecVectorEnv
from recgym.core.sb3 import make_sb3_vec_env
from recgym.core.simulator import Step
from recgym.simulators.synthetic_mdp import SyntheticMDP, SyntheticWorld


def test_streams_do_not_depend_on_the_batch():
    alone = UserRandom.from_seeds([12])
    together = UserRandom.from_seeds([10, 11, 12, 13])
    for n in (1, 3, 2):
        assert torch.equal(alone.uniform(n)[0], together.uniform(n)[2])


def test_masked_users_do_not_consume_draws():
    rng = UserRandom.from_seeds([0, 1])
    first = rng.uniform(2, active=torch.tensor([True, False]))
    second = rng.uniform(2)
    assert not torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])


def test_streams_are_uniform_and_independent():
    rng = UserRandom.from_seeds(range(2000))
    draws = torch.cat([rng.uniform(5) for _ in range(20)], dim=1)
    assert float(draws.min()) >= 0.0 and float(draws.max()) < 1.0
    assert stats.kstest(draws.flatten().numpy(), "uniform").pvalue > 1e-3
    # neighbouring seeds and consecutive draws are uncorrelated
    assert abs(np.corrcoef(draws[:-1, 0], draws[1:, 0])[0, 1]) < 0.1
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.1


def test_next_step_autoreset_returns_first_observation_and_zero_reward():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=64, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    actions = np.tile(np.arange(10), (64, 1))
    _, _, terminated, _, _ = envs.step(actions)
    assert terminated.any()
    obs, reward, terminated_next, _, info = envs.step(actions)
    assert np.all(obs[terminated] == 50)  # empty click history: a fresh session
    assert np.all(reward[terminated] == 0) and not terminated_next[terminated].any()
    assert np.all(info["clicked"][terminated] == -1)


def test_vector_env_truncates_at_max_episode_steps():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=256, vectorization_mode="vector_entry_point",
                        max_episode_steps=1)
    envs.reset(seed=0)
    actions = np.tile(np.arange(10), (256, 1))
    _, _, terminated, truncated, _ = envs.step(actions)
    # every session hits the limit; as Gymnasium's TimeLimit, also those that terminated
    assert truncated.all() and terminated.any()
    _, reward, terminated, truncated, _ = envs.step(actions)  # all restart
    assert not (terminated.any() or truncated.any() or reward.any())


def test_reset_mask_resets_only_chosen_users():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=8, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    world = envs.unwrapped.simulator.world
    top = world.rewards[0].argsort(descending=True)[:10].numpy()
    for _ in range(3):
        obs, *_ = envs.step(np.tile(top, (8, 1)))
    mask = np.zeros(8, dtype=bool)
    mask[:4] = True
    new_obs, _ = envs.reset(options={"reset_mask": mask})
    assert np.all(new_obs[:4] == 50)
    assert np.array_equal(new_obs[4:], obs[4:])


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (np.full(10, 50), ValueError, r"\[0, 50\)"),
        (np.full(10, -1), ValueError, r"\[0, 50\)"),
        (np.zeros(9, dtype=np.int64), ValueError, r"shape \(10,\)"),
        (np.zeros((1, 10), dtype=np.int64), ValueError, r"shape \(10,\)"),
        (np.zeros(10, dtype=np.float32), TypeError, "integer item ids"),
        ("top items", TypeError, "integer"),
    ],
)
def test_bad_actions_say_what_was_expected(action, error, match):
    env = gym.make("SyntheticMDP-v0")
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_bad_vector_actions_say_what_was_expected():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=4, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4, 10\)"):
        envs.step(np.zeros((3, 10), dtype=np.int64))


def test_step_before_reset_is_refused():
    env = gym.make("SyntheticMDP-v0").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.arange(10))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_items": 5, "slate_size": 6}, "slate_size"),
        ({"num_states": 0}, "num_states"),
        ({"num_items": 0}, "num_items"),
        ({"history_length": 0}, "history_length"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("SyntheticMDP-v0", **kwargs)


def test_topk_wrapper_shows_highest_scores():
    env = TopKSlate(gym.make("SyntheticMDP-v0", num_items=20, slate_size=3))
    env.reset(seed=0)
    scores = np.linspace(-1, 1, 20, dtype=np.float32)
    assert env.action(scores).tolist() == [19, 18, 17]
    env.step(scores)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(20, np.nan, dtype=np.float32))
    vector = TopKSlateVector(gym.make_vec("SyntheticMDP-v0", num_envs=2,
                                          vectorization_mode="vector_entry_point"))
    vector.reset(seed=0)
    vector.step(vector.action_space.sample())
    assert scores_to_slate(np.array([[0.1, 0.5, 0.3]]), 2).tolist() == [[1, 2]]


def test_sb3_adapter_autoresets_with_terminal_observation():
    venv = make_sb3_vec_env("SyntheticMDP-v0", num_envs=16, seed=0)
    obs = venv.reset()
    assert obs.shape == (16, 10)
    seen_done = False
    for _ in range(10):
        venv.step_async(np.stack([venv.action_space.sample() for _ in range(16)]))
        obs, reward, done, infos = venv.step_wait()
        for i in np.flatnonzero(done):
            seen_done = True
            assert infos[i]["terminal_observation"].shape == (10,)
            assert np.all(obs[i] == 50)  # already the next session
    assert seen_done


def test_random_policy_slates_are_distinct_and_seeded():
    observation = {"clicks": torch.zeros(100, 3)}
    slates = RandomPolicy(20, 5, seed=1).act(observation)
    assert slates.shape == (100, 5)
    assert all(len(set(row)) == 5 for row in slates.tolist())
    assert torch.equal(slates, RandomPolicy(20, 5, seed=1).act(observation))


@pytest.mark.parametrize("env_id", ["SyntheticMDP-v0", "IRecGAN-v0", "RecSimu-v0",
                                    "GANUserModel-v0"])
def test_compiled_step_reproduces_eager_trajectories_without_graph_breaks(env_id):
    # IRecGAN-v0's eager step runs its RNN on the users who clicked only, the compiled one
    # on every user; IRecGAN's nn.LSTM and RecSimu's GRU weights broke the graph until
    # Dynamo's RNN support was switched on for compiled steps
    from torch._dynamo.utils import counters

    kwargs = {"num_envs": 64, "vectorization_mode": "vector_entry_point"}
    eager = gym.make_vec(env_id, **kwargs)
    fused = gym.make_vec(env_id, compile=True, **kwargs)
    eager.action_space.seed(0)
    actions = [eager.action_space.sample() for _ in range(12)]
    for env in (eager, fused):
        env.reset(seed=5)
    counters.clear()
    for step_actions in actions:
        out_eager, out_fused = eager.step(step_actions), fused.step(step_actions)
        observations = [out[0] if isinstance(out[0], dict) else {"": out[0]}
                        for out in (out_eager, out_fused)]
        assert observations[0].keys() == observations[1].keys()
        assert all(np.array_equal(observations[0][key], observations[1][key])
                   for key in observations[0])
        for a, b in zip(out_eager[2:4], out_fused[2:4], strict=True):  # the session ends
            assert np.array_equal(a, b)
        assert np.array_equal(out_eager[4]["clicked"], out_fused[4]["clicked"])
        # GANUserModel-v0's learned reward: fused arithmetic rounds differently (~4e-6)
        np.testing.assert_allclose(out_eager[1], out_fused[1], rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] >= 1  # the step did compile
    assert not counters["graph_break"], dict(counters["graph_break"])
    # only steps with an RNN pay for switching Dynamo's RNN support on, and it is off after
    from recgym.core.batch import _holds_rnn
    assert _holds_rnn(fused.unwrapped.simulator) == (env_id in ("IRecGAN-v0", "RecSimu-v0"))
    assert not torch._dynamo.config.allow_rnn


def test_compiled_env_pickles():
    import pickle

    env = gym.make_vec("SyntheticMDP-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       compile=True)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.batch.compile


def test_integral_seeds_of_any_type_and_refused_seeds():
    env = gym.make("SyntheticMDP-v0")
    first = env.reset(seed=3)[0]
    assert np.array_equal(env.reset(seed=np.int64(3))[0], first)
    assert np.array_equal(env.reset(seed=3.0)[0], first)
    with pytest.raises(TypeError, match="seed must be an integer, got 1.5"):
        env.reset(seed=1.5)
    with pytest.raises(TypeError, match="seed must be an integer"):
        env.reset(seed="3")
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=5, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match=r"seed must be in \[0, 9223372036854775802\]"):
        envs.reset(seed=2**63 - 2)
    with pytest.raises(ValueError, match="seed must be in"):
        envs.reset(seed=-1)
    envs.reset(seed=np.int64(2**63 - 6))  # the largest seed that leaves room for 5 users


def test_vector_env_refuses_step_before_reset():
    envs = gym.make_vec("SyntheticMDP-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="call envs.reset"):
        envs.step(envs.action_space.sample())
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())


def test_seeded_fits_and_agents_leave_the_global_generator_alone():
    from agents.cascading_dqn import CascadingDQN, CascadingDQNConfig
    from recgym.core.random import isolated_global_rng

    @isolated_global_rng
    def reseeds():
        torch.manual_seed(123)
        return torch.rand(1)

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    first, second = reseeds(), reseeds()
    CascadingDQN(CascadingDQNConfig(feature_dim=4, slate_size=2), seed=7)
    assert torch.equal(torch.rand(3), expected) and torch.equal(first, second)
    # without the decorator the same body does change the caller's draws
    torch.manual_seed(0)
    reseeds.__wrapped__()
    assert not torch.equal(torch.rand(3), expected)


def test_one_user_streams_equal_the_batched_streams():
    for seed in (0, 5, 2**40 + 3, 2**63 - 10):
        alone, batched = UserRandom.from_seeds([seed]), UserRandom.from_seeds([seed, 1])
        for n, active in ((3, None), (2, None), (1, False), (4, True)):
            mask = None if active is None else torch.tensor([active])
            wide = None if active is None else torch.tensor([active, True])
            assert torch.equal(alone.uniform(n, mask), batched.uniform(n, wide)[:1])
        assert int(alone.counter[0]) == int(batched.counter[0]) == 9


def test_single_env_follows_vector_users_with_a_continuation_table():
    world = SyntheticWorld.random(5, 20, 3, continuation=(0.3, 0.9))
    simulator = SyntheticMDP(slate_size=4, world=world)
    keys, users, seed = ("clicks", "true_state"), 16, 7
    slates = np.random.default_rng(0).integers(0, 20, (12, users, 4))
    vector = RecVectorEnv(simulator, users, observation_keys=keys)
    vector.reset(seed=seed)
    steps = [vector.step(slate)[:3] for slate in slates]
    left_after_click = 0
    for i in range(users):
        single = RecEnv(simulator, observation_keys=keys)
        single.reset(seed=seed + i)
        for slate, (obs, reward, terminated) in zip(slates, steps, strict=False):
            one_obs, one_reward, one_terminated, _, _ = single.step(slate[i])
            assert np.array_equal(one_obs["clicks"], obs["clicks"][i])
            assert (one_obs["true_state"], one_reward, one_terminated) == \
                (obs["true_state"][i], reward[i], terminated[i])
            if one_terminated:
                left_after_click += one_reward == 1.0
                break
    assert left_after_click > 0, "the test should cover a click that ends the session"


def test_single_env_restores_torch_flags_and_its_batch_stays_usable():
    env = gym.make("SyntheticMDP-v0", render_mode="ansi")
    env.reset(seed=0)
    onednn = torch.backends.mkldnn.enabled
    env.step(np.arange(10))
    assert torch.backends.mkldnn.enabled == onednn and not torch.is_inference_mode_enabled()
    assert "slate [0 1 2 3 4 5 6 7 8 9]" in env.render()
    batch = env.unwrapped.batch  # its tensors are inference tensors: updated out of place
    batch.step(torch.arange(10)[None])
    batch.reset()
    env.reset(seed=0)
    env.step(np.arange(10))


class _LargeObservations:
    """A toy simulator with large observation keys of three kinds.

    A view of its state, a view of a constant it keeps, and a tensor computed afresh.
    """

    num_items, slate_size, width = 4, 1, 4096

    def __init__(self) -> None:
        self.table = torch.arange(float(self.width))

    def reset(self, batch_size, rng):
        return {"level": torch.zeros(batch_size, self.width)}

    def step(self, state, slate, rng):
        batch = slate.shape[0]
        return Step(state={"level": state["level"] + 1.0}, reward=torch.zeros(batch),
                    clicked=torch.full((batch,), -1), terminated=torch.zeros(batch, dtype=bool))

    def observe(self, state):
        level = state["level"]
        fresh = level * 2.0
        return {"state_view": level, "constant_view": self.table.expand(len(level), -1),
                "fresh": fresh, "fresh_again": fresh[:, :]}

    def observation_spaces(self):
        box = gym.spaces.Box(-np.inf, np.inf, (self.width,), np.float32)
        return {"state_view": box, "constant_view": box, "fresh": box, "fresh_again": box}


def test_vector_observations_never_share_memory_the_env_keeps():
    simulator = _LargeObservations()
    envs = RecVectorEnv(simulator, 4, observation_keys=("state_view", "constant_view", "fresh",
                                                        "fresh_again"))
    first, _ = envs.reset(seed=0)
    for array in first.values():
        array[:] = -7.0  # the caller owns what it got
    assert torch.equal(envs.batch.state["level"], torch.zeros(4, simulator.width))
    assert torch.equal(simulator.table, torch.arange(float(simulator.width)))
    second, *_ = envs.step(np.zeros((4, 1), dtype=np.int64))
    assert np.all(second["state_view"] == 1.0) and np.all(second["fresh"] == 2.0)
    assert np.array_equal(second["constant_view"][0], np.arange(float(simulator.width)))
    assert np.all(first["state_view"] == -7.0)  # a later step does not write into it
    # only the fresh tensor's own memory is handed over, once; views and a second key on
    # the same fresh memory are copies
    assert not second["fresh"].flags.owndata
    assert all(second[key].flags.owndata for key in ("state_view", "constant_view",
                                                     "fresh_again"))
    second["fresh"][:] = 5.0
    assert np.all(second["fresh_again"] == 2.0)


def test_gan_user_observations_handed_over_stay_the_callers():
    # 512 users: every key, the state's ids included, is past the size that is always copied
    make = functools.partial(gym.make_vec, "GANUserModel-v0", num_envs=512,
                             vectorization_mode="vector_entry_point", observe_ids=True)
    envs, twin = make(), make()
    observation, _ = envs.reset(seed=3)
    twin.reset(seed=3)
    envs.action_space.seed(0)
    for _ in range(5):
        for array in observation.values():
            array[...] = 0  # scribbling on every array changes nothing the env does next
        action = envs.action_space.sample()
        observation, reward, *_ = envs.step(action)
        expected, expected_reward, *_ = twin.step(action)
        for key, array in observation.items():
            np.testing.assert_array_equal(array, expected[key])
        np.testing.assert_array_equal(reward, expected_reward)
