"""IRecGAN's discriminator D (eq. 5) and Monte-Carlo sequence scores q_D (eq. 6)."""

from __future__ import annotations

import pytest
import torch

from recgym.core import RandomPolicy, UserRandom
from recgym.data import LogDataset
from recgym.evaluation import collect_logs
from recgym.simulators.irecgan import IRecGANUsers
from recgym.simulators.irecgan.discriminator import SequenceDiscriminator, discriminator_loss
from recgym.simulators.irecgan.fit import SessionTensors
from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig
from recgym.simulators.irecgan.rollout import generate, sequence_scores, state_after_clicks
from recgym.simulators.synthetic_mdp import SyntheticMDP, logging_policy


@pytest.fixture(scope="module")
def users():
    torch.manual_seed(0)
    model = UserBehaviorModel(UserModelConfig(num_items=20, embedding_dim=8, hidden_size=16))
    return IRecGANUsers(model, slate_size=4, history_length=3)


def test_state_rebuilt_from_clicks_equals_the_stepped_state(users):
    batch = 256
    rng = UserRandom.from_seeds(range(batch))
    state = users.reset(batch, rng)
    clicks, alive = [], torch.ones(batch, dtype=torch.bool)
    policy = RandomPolicy(20, 4, seed=0)
    for _ in range(3):
        out = users.step(state, policy.act({"clicks": state["history"]}), rng)
        alive &= ~out.terminated
        clicks.append(out.clicked.clamp_min(0))
        state = out.state
    assert alive.sum() > 10
    rebuilt = state_after_clicks(users, torch.stack(clicks, 1)[alive], torch.full((int(
        alive.sum()),), 3))
    for key in ("output", "hidden", "cell", "history"):
        assert torch.allclose(rebuilt[key], state[key][alive], atol=1e-5), key


def test_sequence_scores_are_probabilities_and_end_with_d(users):
    discriminator = SequenceDiscriminator(20, embedding_dim=8, hidden_size=8)
    sessions = generate(users, RandomPolicy(20, 4, seed=1), 32, seed=0, max_steps=10)
    scores = sequence_scores(users, RandomPolicy(20, 4, seed=2), discriminator, sessions,
                             n_rollouts=4, max_steps=10)
    assert scores.shape == sessions.mask.shape
    valid = scores[sessions.mask]
    assert ((valid > 0) & (valid < 1)).all()
    last = scores[torch.arange(32), sessions.lengths - 1]
    assert torch.allclose(last, torch.sigmoid(discriminator(sessions)))
    assert (scores[~sessions.mask] == 0).all()


def test_discriminator_tells_logged_from_generated_sequences(users):
    world = SyntheticMDP(num_items=20, slate_size=4, world_seed=1)
    real = SessionTensors.from_logs(LogDataset(
        collect_logs(world, logging_policy("max", world), 400, seed=0), num_items=20))
    fake = generate(users, RandomPolicy(20, 4, seed=3), 400, seed=1, max_steps=50)
    discriminator = SequenceDiscriminator(20, embedding_dim=8, hidden_size=16)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    for _ in range(60):
        loss = discriminator_loss(discriminator, real, fake)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = ((discriminator(real) > 0).float().mean()
                    + (discriminator(fake) < 0).float().mean()) / 2
    assert accuracy > 0.8


def test_env_reports_d_of_the_trajectory_so_far(users, tmp_path):
    import gymnasium as gym

    discriminator = SequenceDiscriminator(20, embedding_dim=8, hidden_size=8)
    judged = IRecGANUsers(users.model, slate_size=4, history_length=3,
                          discriminator=discriminator)
    rng = UserRandom.from_seeds([4])
    state = judged.reset(1, rng)
    slates, positions, clicked, rewards = [], [], [], []
    for _ in range(3):
        slate = torch.tensor([[1, 5, 9, 13]])
        out = judged.step(state, slate, rng)
        position = 4 if out.clicked[0] < 0 else int((slate[0] == out.clicked[0]).nonzero())
        slates.append(slate[0]), positions.append(position)
        clicked.append(max(int(out.clicked[0]), 0)), rewards.append(float(out.reward[0]))
        prefix = SessionTensors(torch.stack(slates)[None], torch.tensor([positions]),
                                torch.tensor([clicked]), torch.tensor([rewards]),
                                torch.ones(1, len(slates), dtype=torch.bool),
                                torch.tensor([len(slates)]))
        expected = torch.sigmoid(discriminator(prefix))
        assert torch.allclose(out.info["discriminator_score"], expected, atol=1e-6)
        if out.terminated[0]:
            break
        state = out.state
    path = tmp_path / "u.pt"
    torch.save(users.model.checkpoint(), path)
    torch.save({"kind": "irecgan-discriminator", "state_dict": discriminator.state_dict()},
               tmp_path / "d.pt")
    env = gym.make("IRecGAN-v0", checkpoint=path, slate_size=4, discriminator=tmp_path / "d.pt")
    env.reset(seed=0)
    assert 0 < env.step([1, 2, 3, 4])[4]["discriminator_score"] < 1
    with pytest.raises(ValueError,
                       match="checkpoint of .irecgan-user., expected .irecgan-discriminator."):
        gym.make("IRecGAN-v0", checkpoint=path, discriminator=path)


def test_discriminator_weights_depend_on_its_seed_only():
    """A fit that builds D must be repeatable across processes (a resumed fit relies on it)."""
    before = torch.random.get_rng_state()
    first, again = SequenceDiscriminator(20, seed=3), SequenceDiscriminator(20, seed=3)
    other = SequenceDiscriminator(20, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    for name, weight in first.state_dict().items():
        assert torch.equal(weight, again.state_dict()[name]), name
    assert not torch.equal(first.readout.weight, other.readout.weight)
