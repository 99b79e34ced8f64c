"""IRecGAN's agent A and its policy-gradient training (Bai et al., NeurIPS 2019, eq. 4, 9).

A keeps its own RNN state over the embeddings of the user's clicks,
``s^a_t = h_a(s^a_{t-1}, e_{c_{t-1}})``, scores every item with
``pi(i | s^a_t) = softmax_i(W^a s^a_t + b^a)`` (eq. 4) and recommends ``k`` items drawn
without replacement from that distribution (Gumbel top-k; ``greedy=True`` takes the
``k`` most probable). It learns by REINFORCE with ``pi(c_t in a_t | s^a_t)``, the
probability of the clicked item, standing in for the probability of the slate (sec.
5.1), and the discounted return ``R_t = sum_{t' >= t} gamma^{t' - t} q_D(tau_{0:t'}) r_t'``
(eq. 9); on offline data ``q_D = 1``, which is the paper's PG baseline
(:meth:`IRecGANAgent.fit_offline`). :meth:`IRecGANAgent.fit` is the full IRecGAN:
adversarial training of U and A with the discriminator D (sec. 5). A model-based agent,
it imports recgym's IRecGAN user model and roll-outs (DESIGN lets agents import only
``core`` and ``evaluation``: this agent is the exception, since it trains against U).

:class:`UserModelPolicy` is the paper's LSTM baseline: the fitted user model U itself,
recommending the ``k`` items with the highest click score (eq. 1) under its state.
:func:`train_irecgan` runs the adversarial stage on copies of a fitted U and a
pretrained A; the result holds IRecGAN (the agent) and LSTMD (the adversarially updated
U as a :class:`UserModelPolicy`), so the LSTM and PG baselines it started from survive.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from recgym.core.checkpoint import check_checkpoint, checkpoint_payload
from recgym.core.random import isolated_global_rng
from recgym.simulators.irecgan.discriminator import SequenceDiscriminator
from recgym.simulators.irecgan.fit import SessionTensors
from recgym.simulators.irecgan.model import UserBehaviorModel


def window_inputs(clicks: Tensor, no_click: int, start_token: int) -> tuple[Tensor, Tensor]:
    """RNN inputs ``[start, c_0, ..., c_{t-1}, pad...]`` from observed click windows.

    A window holds the last ``H`` clicks, oldest first, left-padded with ``no_click``
    until there are ``H``; the inputs are left-aligned after one start token, as in
    training. Returns the inputs ``(B, H + 1)`` and the index of the state ``s_t``
    (after the last click) in the RNN outputs, ``(B,)``. Beyond ``H`` clicks the state
    is built from the window alone.
    """
    count = (clicks != no_click).sum(1)
    width = clicks.shape[1]
    shift = (torch.arange(width) + (width - count)[:, None]) % width
    aligned = clicks.gather(1, shift).masked_fill(torch.arange(width) >= count[:, None],
                                                  start_token)
    start = torch.full_like(clicks[:, :1], start_token)
    return torch.cat([start, aligned], dim=1), count


def _state_after_window(outputs: Tensor, count: Tensor) -> Tensor:
    return outputs.gather(1, count[:, None, None].expand(-1, 1, outputs.shape[-1]))[:, 0]


class AgentNetwork(nn.Module):
    """A's state model and item scores: embedding, RNN, linear layer over the catalogue."""

    def __init__(self, num_items: int, embedding_dim: int = 50, hidden_size: int = 512,
                 num_layers: int = 2) -> None:
        super().__init__()
        self.num_items = num_items
        self.embedding = nn.Embedding(num_items + 1, embedding_dim)  # last id: start token
        self.rnn = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True)
        self.scores = nn.Linear(hidden_size, num_items)  # W^a, b^a

    def forward(self, inputs: Tensor) -> Tensor:
        """Item logits ``(B, T, n)`` after each input of ``(B, T)``."""
        outputs, _ = self.rnn(self.embedding(inputs))
        return self.scores(outputs)


@dataclass
class AgentTraining:
    """REINFORCE hyper-parameters (paper: gamma 0.9)."""

    gamma: float = 0.9
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0


@dataclass
class IRecGANAgent:
    """Agent A as a recgym Policy (acts on the ``clicks`` observation).

    Args:
        num_items: catalogue size.
        slate_size: ``k``.
        embedding_dim: item embedding size (50 in the paper).
        hidden_size: LSTM hidden size (512 in the paper).
        num_layers: LSTM layers (2).
        greedy: recommend the top-k items instead of sampling without replacement.
        seed: seed of the sampling.
    """

    num_items: int
    slate_size: int = 10
    embedding_dim: int = 50
    hidden_size: int = 512
    num_layers: int = 2
    greedy: bool = False
    seed: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @isolated_global_rng
    def __post_init__(self) -> None:
        if not 1 <= self.slate_size <= self.num_items:
            raise ValueError(f"slate_size must be between 1 and num_items={self.num_items}, "
                             f"got {self.slate_size}")
        torch.manual_seed(self.seed)
        self.network = AgentNetwork(self.num_items, self.embedding_dim, self.hidden_size,
                                    self.num_layers)
        self.generator = torch.Generator().manual_seed(self.seed)

    @torch.no_grad()
    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Slates ``(B, k)`` from the users' click windows (eq. 4, without replacement)."""
        inputs, count = window_inputs(observation["clicks"].cpu(), self.num_items,
                                      self.num_items)
        logits = _state_after_window(self.network(inputs), count)
        if not self.greedy:
            uniforms = torch.rand(logits.shape, generator=self.generator).clamp_min(1e-12)
            logits = logits - torch.log(-torch.log(uniforms))  # Gumbel top-k
        return logits.topk(self.slate_size, dim=1).indices.to(observation["clicks"].device)

    def fit_offline(self, sessions: SessionTensors, training: AgentTraining | None = None,
                    progress: bool = True) -> IRecGANAgent:
        """REINFORCE on logged sessions (eq. 9 with ``q_D = 1``): the PG baseline."""
        training = training or AgentTraining()
        generator = torch.Generator().manual_seed(training.seed)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=training.learning_rate)
        k = sessions.slates.shape[-1]
        for epoch in range(training.epochs):
            total, batches = 0.0, 0
            order = torch.randperm(len(sessions.lengths), generator=generator)
            for index in tqdm(order.split(training.batch_size), desc=f"A epoch {epoch + 1}",
                              disable=not progress, leave=False):
                part = sessions.subset(index)
                clicked = part.mask & (part.positions < k)
                returns = discounted_returns(part.rewards * clicked, part.mask, training.gamma)
                previous = torch.cat([torch.full_like(part.clicked[:, :1], self.num_items),
                                      part.clicked[:, :-1]], dim=1)
                log_pi = F.log_softmax(self.network(previous), dim=-1)
                chosen = log_pi.gather(-1, part.clicked[..., None]).squeeze(-1)
                loss = -(returns * chosen * clicked).sum() / clicked.sum().clamp_min(1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            self.history.append({"epoch": epoch + 1, "loss": total / max(batches, 1)})
        return self

    def fit(self, sessions: SessionTensors, user_model: UserBehaviorModel,
            discriminator: SequenceDiscriminator | None = None,
            training: IRecGANTraining | None = None, progress: bool = True,
            optimizer_states: dict[str, dict] | None = None) -> IRecGANAgent:
        """IRecGAN's adversarial policy learning (sec. 5) on offline sessions.

        For every mini-batch of offline sessions: generate sessions with U and A (one per
        ``1 / generated_ratio`` offline ones), update D on offline against generated
        (eq. 5), score every generated prefix by Monte-Carlo roll-outs (eq. 6), update U
        on its ``q_D``-weighted likelihood (eq. 7; offline steps weigh 1) and A by
        REINFORCE with ``R^a_t = sum gamma^(t'-t) q_D (1 + lambda_r r_t')`` (eq. 10).
        ``user_model`` is trained in place; ``discriminator`` defaults to a new one.
        ``optimizer_states`` (a previous call's :attr:`optimizer_states`) continues Adam's
        moments, so a training run split over several calls equals one run.
        """
        training = training or IRecGANTraining()
        self.discriminator = discriminator or SequenceDiscriminator(self.num_items,
                                                                    seed=training.seed)
        generator = torch.Generator().manual_seed(training.seed)
        optimizers = {
            "agent": torch.optim.Adam(self.network.parameters(), lr=training.learning_rate),
            "user": torch.optim.Adam(user_model.parameters(), lr=training.learning_rate),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(),
                                              lr=training.learning_rate),
        }
        for name, state in (optimizer_states or {}).items():
            optimizers[name].load_state_dict(state)
        k = sessions.slates.shape[-1]
        greedy, self.greedy = self.greedy, False  # A generates by sampling (eq. 4)
        try:
            self._adversarial_epochs(sessions, user_model, training, generator, optimizers, k,
                                     progress)
        finally:
            self.greedy = greedy
        self.optimizer_states = {name: optimizer.state_dict()
                                 for name, optimizer in optimizers.items()}
        return self

    def _adversarial_epochs(self, sessions, user_model, training, generator, optimizers, k,
                            progress) -> None:
        from recgym.simulators.irecgan import IRecGANUsers
        from recgym.simulators.irecgan.discriminator import discriminator_loss
        from recgym.simulators.irecgan.rollout import generate, sequence_scores

        for epoch in range(training.epochs):
            order = torch.randperm(len(sessions.lengths), generator=generator)
            totals = {"loss_d": 0.0, "loss_u": 0.0, "loss_a": 0.0, "q_d": 0.0}
            batches = order.split(training.batch_size)
            for step, index in enumerate(tqdm(batches, desc=f"IRecGAN epoch {epoch + 1}",
                                              disable=not progress, leave=False)):
                offline = sessions.subset(index)
                users = IRecGANUsers(user_model, slate_size=k)
                seed = training.seed + 1_000_003 * epoch + 7919 * step
                n_generated = max(1, round(len(index) * training.generated_ratio))
                fake = generate(users, self, n_generated, seed=seed,
                                max_steps=training.max_steps)
                loss_d = discriminator_loss(self.discriminator, offline, fake)
                _step(optimizers["discriminator"], loss_d)
                q_d = sequence_scores(users, self, self.discriminator, fake,
                                      n_rollouts=training.n_rollouts, seed=seed,
                                      max_steps=training.max_steps)
                loss_u = -(_log_likelihood(user_model, offline, None, training)
                           + _log_likelihood(user_model, fake, q_d, training)) / (
                    offline.mask.sum() + fake.mask.sum())
                _step(optimizers["user"], loss_u)
                loss_a = (self._policy_loss(offline, torch.ones_like(offline.rewards), k,
                                            training)
                          + self._policy_loss(fake, q_d, k, training))
                _step(optimizers["agent"], loss_a)
                for name, value in (("loss_d", loss_d), ("loss_u", loss_u),
                                    ("loss_a", loss_a), ("q_d", q_d[fake.mask].mean())):
                    totals[name] += value.item()
            self.history.append({"epoch": epoch + 1, **{name: value / len(batches)
                                                        for name, value in totals.items()}})

    def _policy_loss(self, part: SessionTensors, q_d: Tensor, k: int,
                     training: IRecGANTraining) -> Tensor:
        """REINFORCE loss of eq. 10 on one batch of sessions (mean over clicked steps)."""
        clicked = part.mask & (part.positions < k)
        returns = discounted_returns(q_d * (1.0 + training.reward_weight * part.rewards)
                                     * clicked, part.mask, training.gamma)
        previous = torch.cat([torch.full_like(part.clicked[:, :1], self.num_items),
                              part.clicked[:, :-1]], dim=1)
        log_pi = F.log_softmax(self.network(previous), dim=-1)
        chosen = log_pi.gather(-1, part.clicked[..., None]).squeeze(-1)
        return -(returns * chosen * clicked).sum() / clicked.sum().clamp_min(1)

    def checkpoint(self) -> dict:
        """Configuration, network weights and history (loadable with ``weights_only``)."""
        config = {"num_items": self.num_items, "slate_size": self.slate_size,
                  "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size,
                  "num_layers": self.num_layers, "greedy": self.greedy, "seed": self.seed}
        return checkpoint_payload("irecgan-agent", config, self.network.state_dict(),
                                  history=self.history)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> IRecGANAgent:
        """Rebuild an agent saved by :meth:`checkpoint`; refuses other checkpoints."""
        check_checkpoint(checkpoint, "irecgan-agent")
        agent = cls(**checkpoint["config"])
        agent.network.load_state_dict(checkpoint["state_dict"])
        agent.history = list(checkpoint["history"])
        return agent

    def copy(self) -> IRecGANAgent:
        """An independent copy (network and sampler)."""
        return copy.deepcopy(self)


@dataclass
class IRecGANTraining:
    """Hyper-parameters of adversarial policy learning (paper, sec. 7.1).

    Attributes:
        gamma: discount of eq. 8-10 (0.9).
        reward_weight: ``lambda_r`` of eq. 10 (3).
        likelihood_reward_weight: ``lambda_p`` of eq. 3 and 7 (1).
        generated_ratio: generated per offline session (1:10).
        n_rollouts: Monte-Carlo completions per prefix for ``q_D`` (eq. 6).
        max_steps: cut generated sessions after this many steps.
        learning_rate: Adam step size for A, U and D.
        batch_size: offline sessions per update.
        epochs: passes over the offline sessions.
        seed: seeds shuffling and generation.
    """

    gamma: float = 0.9
    reward_weight: float = 3.0
    likelihood_reward_weight: float = 1.0
    generated_ratio: float = 0.1
    n_rollouts: int = 8
    max_steps: int = 50
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 5
    seed: int = 0


def _step(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _log_likelihood(user_model: UserBehaviorModel, part: SessionTensors, weights,
                    training: IRecGANTraining) -> Tensor:
    return user_model.log_likelihood(part.slates, part.positions, part.clicked, part.rewards,
                                     part.mask, training.likelihood_reward_weight,
                                     step_weights=weights).sum()


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``R_t = sum_{t' >= t} gamma^{t' - t} r_t'`` within each session, ``(B, T)``."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = (rewards[:, t] + gamma * running) * mask[:, t]
        returns[:, t] = running
    return returns


class UserModelPolicy:
    """The LSTM baseline: U recommends the ``k`` items it expects the user to click most."""

    def __init__(self, model: UserBehaviorModel, slate_size: int) -> None:
        self.model = model.eval()
        self.slate_size = slate_size

    @torch.no_grad()
    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Top-k items by ``(W_c s_t + b_c)^T e_i`` under U's state after the click window."""
        model = self.model
        inputs, count = window_inputs(observation["clicks"].cpu(), model.config.num_items,
                                      model.start_token)
        states, _ = model.states(inputs)
        query = model.click_projection(_state_after_window(states, count))
        scores = query @ model.item_embedding.weight[: model.config.num_items].T
        return scores.topk(self.slate_size, dim=1).indices.to(observation["clicks"].device)


@dataclass
class IRecGANFit:
    """Outcome of :func:`train_irecgan`: agent A, the adversarially trained U and D."""

    agent: IRecGANAgent
    user_model: UserBehaviorModel
    discriminator: SequenceDiscriminator

    def lstmd(self) -> UserModelPolicy:
        """The LSTMD baseline: U after adversarial training (eq. 7), ranking by click score."""
        return UserModelPolicy(self.user_model, self.agent.slate_size)


def train_irecgan(sessions: SessionTensors, user_model: UserBehaviorModel,
                  agent: IRecGANAgent, training: IRecGANTraining | None = None, *,
                  discriminator: SequenceDiscriminator | None = None,
                  progress: bool = False) -> IRecGANFit:
    """Adversarial training (sec. 5) of copies of ``user_model`` and ``agent``.

    ``user_model`` is U fitted by maximum likelihood (the LSTM baseline) and ``agent`` A
    pretrained by offline REINFORCE (the PG baseline); both are left untouched, so one
    run yields all four models of the paper's sec. 7.1 comparison. ``discriminator`` (a
    fresh D by default) is trained in place.
    """
    user_copy, agent_copy = copy.deepcopy(user_model).train(), agent.copy()
    agent_copy.fit(sessions, user_copy, discriminator, training, progress=progress)
    return IRecGANFit(agent_copy, user_copy.eval(), agent_copy.discriminator)
