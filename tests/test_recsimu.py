"""RecSimu: losses, fitting on a world with a known feedback rule, the env, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from recgym.cli import main
from recgym.core import UserRandom
from recgym.simulators.recsimu import RecSimuUsers
from recgym.simulators.recsimu.data import BrowsingSequences, make_tuples, split_last_tuples
from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu
from recgym.simulators.recsimu.model import RecSimu, RecSimuConfig, discriminator_loss

FAST = RecSimuTraining(generator_pretrain_epochs=2, discriminator_pretrain_epochs=10,
                       adversarial_epochs=3, embedding_epochs=20, batch_size=128)


def parity_world(sessions: int = 200, length: int = 20, items: int = 30, seed: int = 0):
    """Sessions of a type t browse mostly items of parity t and like exactly those.

    With 5% label noise, feedback is predictable from the state and the item.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for session in range(sessions):
        kind = rng.integers(2)
        for step in range(length):
            parity = kind if rng.random() < 0.7 else 1 - kind
            item = int(2 * rng.integers(items // 2) + parity)
            liked = (item % 2 == kind) != (rng.random() < 0.05)
            rows.append((session, step, [item], item, int(liked)))
    return pd.DataFrame(rows, columns=["session_id", "step", "slate", "click", "feedback"])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp("recsimu") / "parity.pt"
    result = fit_recsimu(parity_world(items=10), training=FAST, state_length=6,
                         checkpoint=path, progress=False)
    return result, path


def test_tuples_slide_over_sessions_and_hold_out_the_last():
    logs = parity_world(sessions=3, length=10)
    tuples = make_tuples(BrowsingSequences.from_logs(logs), state_length=4)
    assert len(tuples) == 3 * (10 - 4)
    first = logs[logs.session_id == 0]
    assert tuples.state_items[0].tolist() == first.click.iloc[:4].tolist()
    assert tuples.action[0] == first.click.iloc[4]
    split = split_last_tuples(tuples)
    assert len(split.test) == len(split.valid) == 3
    assert split.test.action.tolist() == logs.groupby("session_id").click.last().tolist()


def test_discriminator_outputs_2k_probabilities_and_losses_are_finite():
    config = RecSimuConfig(num_items=10, num_feedback=3, state_length=4)
    model = RecSimu(config, torch.rand(10, 20) * 2 - 1)
    items, feedback = torch.randint(0, 10, (8, 4)), torch.randint(0, 3, (8, 4))
    logits = model.logits(items, feedback, torch.randint(0, 10, (8,)))
    assert logits.shape == (8, 6)
    assert torch.allclose(torch.softmax(logits, 1).sum(1), torch.ones(8))
    assert torch.allclose(model.feedback_probabilities(logits).sum(1), torch.ones(8))
    loss = discriminator_loss(logits, logits.flip(0), torch.randint(0, 3, (8,)),
                              num_feedback=3, alpha=1.0, lam=0.3)
    assert torch.isfinite(loss)
    single = RecSimu(RecSimuConfig(num_items=10, num_feedback=3, state_length=4,
                                   per_feedback_fake=False), torch.zeros(10, 20))
    assert single.logits(items, feedback, items[:, 0]).shape == (8, 4)  # RecSimu-1: K + 1


def test_fit_learns_a_known_feedback_rule(fitted):
    result, _ = fitted
    assert result.test.auc > 0.75
    assert [h["stage"] for h in result.history].count("adversarial") == 3


def test_resume_continues_to_the_same_model(tmp_path):
    logs = parity_world(sessions=30, length=10)
    short = RecSimuTraining(generator_pretrain_epochs=1, discriminator_pretrain_epochs=1,
                            adversarial_epochs=1, embedding_epochs=1, batch_size=64)
    longer = RecSimuTraining(**{**short.__dict__, "adversarial_epochs": 2})
    straight = fit_recsimu(logs, training=longer, state_length=4, progress=False)
    path = tmp_path / "resume.pt"
    fit_recsimu(logs, training=short, state_length=4, checkpoint=path, progress=False)
    assert path.exists() and (tmp_path / "resume.pt.trainer").exists()
    resumed = fit_recsimu(logs, training=longer, state_length=4, checkpoint=path, resume=True,
                          progress=False)
    assert len(resumed.history) == len(straight.history) == 4
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert torch.load(path, weights_only=True)["kind"] == "recsimu"


def test_env_feedback_follows_the_discriminator(fitted):
    _, path = fitted
    users = RecSimuUsers.from_checkpoint(path)
    batch = 20_000
    rng = UserRandom.from_seeds(range(batch))
    state = users.reset(batch, rng)
    start = {key: value[:1].repeat(batch, *([1] * (value.dim() - 1)))
             for key, value in state.items()}
    action = torch.full((batch, 1), 3)
    out = users.step(start, action, rng)
    with torch.no_grad():
        logits = users.model.discriminator.logits_from_encoding(
            start["hidden"][:1], users.model.item_vectors[3][None])
        expected = float(users.model.feedback_probabilities(logits)[0, 1])
    observed = float((out.info["feedback"][:, 0] == 1).float().mean())
    assert abs(observed - expected) < 4.5 * np.sqrt(expected * (1 - expected) / batch)
    assert torch.equal(out.reward, out.info["feedback"][:, 0].float())
    # the state shifts: the shown item enters last, the oldest leaves
    assert torch.equal(out.state["recent_items"][:, -1], action[:, 0])
    assert torch.equal(out.state["recent_items"][:, :-1], start["recent_items"][:, 1:])


def test_reset_state_is_the_encoding_of_a_logged_start_state(fitted):
    users = RecSimuUsers.from_checkpoint(fitted[1])
    state = users.reset(50, UserRandom.from_seeds(range(50)))
    with torch.no_grad():
        encoded = users.model.discriminator.encoder(
            users.model.item_vectors[state["recent_items"]], state["feedback"])
    assert torch.allclose(state["hidden"], encoded, atol=1e-5)
    assert len({tuple(row) for row in state["recent_items"].tolist()}) > 1


def test_env_runs_and_checks_with_a_fitted_checkpoint(fitted):
    from gymnasium.utils.env_checker import check_env

    _, path = fitted
    env = gym.make("RecSimu-v0", checkpoint=path)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["recent_items"].shape == (6,) and isinstance(env.action_space, gym.spaces.Discrete)
    obs, reward, terminated, truncated, info = env.step(4)
    assert obs["recent_items"][-1] == 4 and reward in (0.0, 1.0) and not terminated
    slate_env = gym.make_vec("RecSimuSlate-v0", num_envs=8, checkpoint=path, slate_size=3,
                             vectorization_mode="vector_entry_point")
    slate_env.reset(seed=0)
    obs, reward, *_ = slate_env.step(np.tile([1, 2, 3], (8, 1)))
    assert obs["recent_items"][:, -3:].tolist() == [[1, 2, 3]] * 8 and reward.max() <= 3


def test_bad_input_is_refused_clearly(fitted, tmp_path):
    result, path = fitted
    env = gym.make("RecSimu-v0", checkpoint=path)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        env.step(10)
    model = result.model
    with pytest.raises(ValueError, match="shape"):
        wrong = torch.zeros(4, 5, dtype=torch.long)
        RecSimuUsers(model, wrong, wrong)
    with pytest.raises(ValueError, match="catalogue|item ids"):
        RecSimuUsers(model, torch.full((4, 6), 99), torch.zeros(4, 6, dtype=torch.long))
    other = tmp_path / "other.pt"
    torch.save({"kind": "something-else"}, other)
    with pytest.raises(ValueError, match="checkpoint of .something-else., expected .recsimu."):
        RecSimuUsers.from_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="recgym fit recsimu"):
        RecSimuUsers.from_checkpoint(tmp_path / "missing.pt")


def test_fit_command_on_a_log_file(tmp_path, capsys):
    from recgym.data import LogDataset

    logs_path = tmp_path / "logs.parquet"
    LogDataset(parity_world(sessions=30, length=10), num_items=30).save(logs_path)
    out = tmp_path / "fitted.pt"
    main(["fit", "recsimu", "--data", str(logs_path), "--out", str(out), "--state-length", "4",
          "--epochs", "1", "--pretrain-epochs", "1", "--embedding-epochs", "1"])
    printed = capsys.readouterr().out
    assert "AUC" in printed and out.exists()
    env = gym.make("RecSimu-v0", checkpoint=out)
    assert env.reset(seed=1)[0]["recent_items"].shape == (4,)


def test_baselines_learn_an_item_rule_and_random_does_not():
    from recgym.simulators.recsimu.baselines import BaselineTraining, fit_baseline

    rng = np.random.default_rng(1)
    rows = []
    for session in range(120):
        for step in range(12):
            item = int(rng.integers(10))
            rows.append((session, step, [item], item, int((item < 5) != (rng.random() < 0.05))))
    logs = pd.DataFrame(rows, columns=["session_id", "step", "slate", "click", "feedback"])
    split = split_last_tuples(make_tuples(BrowsingSequences.from_logs(logs), 4))
    vectors = torch.eye(10) * 0.9
    training = BaselineTraining(epochs=15, batch_size=64, hidden_size=16)
    for name in ("lr", "gru", "gan-s"):
        assert fit_baseline(name, split, vectors, 2, training).auc > 0.85, name
    assert abs(fit_baseline("random", split, vectors, 2, training).auc - 0.5) < 0.2
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("svm", split, vectors, 2, training)


def test_next_item_ranks_and_metrics_hand_cases():
    from recgym.simulators.recsimu.generator_eval import map_and_ndcg, rank_of_target

    scores = torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.2, 0.2]])
    ranks = rank_of_target(scores, torch.tensor([2, 0]))
    assert ranks.tolist() == [2, 3]  # ties count against the target
    metrics = map_and_ndcg(ranks, cutoff=2)
    assert metrics["map"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert metrics["ndcg@2"] == pytest.approx((1 / np.log2(3)) / 2)


def test_generator_imitates_a_predictable_logging_policy():
    from recgym.simulators.recsimu.generator_eval import (
        generator_ranks,
        map_and_ndcg,
        popularity_ranks,
    )

    # the logging policy recommends item (last + 1) mod 10: the generator can learn it
    rows = [(s, t, [(s + t) % 10], (s + t) % 10, (s + t) % 2) for s in range(60)
            for t in range(12)]
    logs = pd.DataFrame(rows, columns=["session_id", "step", "slate", "click", "feedback"])
    training = RecSimuTraining(generator_pretrain_epochs=30, discriminator_pretrain_epochs=1,
                               adversarial_epochs=1, embedding_epochs=1, batch_size=64)
    fit = fit_recsimu(logs, training=training, state_length=3, progress=False,
                      item_vectors=torch.eye(10, 20) * 0.9)
    generated = map_and_ndcg(generator_ranks(fit.model, fit.split.test))
    popular = map_and_ndcg(popularity_ranks(fit.split.train, fit.split.test, 10))
    assert generated["map"] > 0.9 > popular["map"]


def test_incremental_gru_step_equals_the_full_gru():
    config = RecSimuConfig(num_items=10, state_length=5)
    model = RecSimu(config, torch.rand(10, 20) * 2 - 1)
    encoder = model.discriminator.encoder
    items, feedback = torch.randint(0, 10, (6, 5)), torch.randint(0, 2, (6, 5))
    full = encoder(model.embed(items), feedback)
    stepped = encoder(model.embed(items[:, :4]), feedback[:, :4])
    stepped = encoder.advance(stepped, model.embed(items[:, 4]), feedback[:, 4])
    assert torch.allclose(full, stepped, atol=1e-6)
