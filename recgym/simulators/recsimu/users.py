"""Batched RecSimu users: the ``UserSimulator`` behind ``RecSimu-v0`` (readings in its manual)."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from recgym.core import validation
from recgym.core.checkpoint import CheckpointError
from recgym.core.simulator import Randomness, State, Step
from recgym.simulators.checkpoints import CheckpointUsers
from recgym.simulators.recsimu.model import RecSimu


class RecSimuUsers(CheckpointUsers):
    """Batched RecSimu users (implements ``UserSimulator``).

    Args:
        model: a fitted :class:`~recgym.simulators.recsimu.model.RecSimu`.
        start_items: int64 ``(S, N)`` logged states sessions may start from.
        start_feedback: int64 ``(S, N)`` their feedback.
        slate_size: items shown per step.
        rewards: reward of each feedback class (default: 0 for class 0, 1 for class 1,
            ``purchase_reward`` for class 2).
        purchase_reward: reward of class 2 when ``rewards`` is not given.
        device: where the simulation runs.
    """

    checkpoint_kind = "recsimu"
    default_checkpoint = "recsimu-ml-latest-small.pt"
    fit_command = "recgym fit recsimu"

    def __init__(self, model: RecSimu, start_items: Tensor, start_feedback: Tensor, *,
                 slate_size: int = 1, rewards: Sequence[float] | None = None,
                 purchase_reward: float = 1.0, device: torch.device | str = "cpu") -> None:
        config = model.config
        if start_items.ndim != 2 or start_items.shape[1] != config.state_length:
            raise ValueError(f"start states must have shape (S, {config.state_length}) for this "
                             f"model (N = {config.state_length}), got {tuple(start_items.shape)}")
        if start_items.shape != start_feedback.shape or len(start_items) == 0:
            raise ValueError("start_items and start_feedback must be non-empty and equal-shaped")
        slate_size = validation.integer("slate_size", slate_size, minimum=1,
                                        maximum=config.num_items)
        purchase_reward = validation.real("purchase_reward", purchase_reward)
        if rewards is None:
            rewards = [0.0, 1.0, purchase_reward][: config.num_feedback] + \
                [purchase_reward] * max(config.num_feedback - 3, 0)
        rewards = validation.reals("rewards", rewards, length=config.num_feedback)
        model.embed(start_items)  # refuses states from another catalogue
        self.device = validation.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.num_items = config.num_items
        self.num_feedback = config.num_feedback
        self.state_length = config.state_length
        self.slate_size = slate_size
        self.start_items = start_items.to(self.device)
        self.start_feedback = start_feedback.to(self.device)
        # encoded once: a reset of many users (every user at a time limit) would otherwise
        # run the GRU over N items for each of them
        with torch.no_grad():
            self.start_hidden = self.model.discriminator.encoder(
                self.model.item_vectors[self.start_items], self.start_feedback)
        self.rewards = torch.tensor(rewards, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Start from logged states drawn uniformly, as the discriminator encodes them."""
        pick = (rng.uniform(1)[:, 0] * len(self.start_items)).long()
        pick = pick.clamp(max=len(self.start_items) - 1)
        return {"recent_items": self.start_items[pick], "feedback": self.start_feedback[pick],
                "hidden": self.start_hidden[pick]}

    @torch.no_grad()
    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Feedback on every shown item, reward, and the shifted state."""
        batch, k = slate.shape
        vectors = self.model.item_vectors[slate]
        hidden = state["hidden"]
        logits = self.model.discriminator.logits_from_encoding(
            hidden.repeat_interleave(k, dim=0), vectors.reshape(batch * k, -1))
        cumulative = self.model.feedback_probabilities(logits).cumsum(1).view(batch, k, -1)
        draws = rng.uniform(k)[:, :, None]
        feedback = (cumulative[:, :, :-1] <= draws).sum(-1)
        encoder = self.model.discriminator.encoder
        for position in range(k):
            hidden = encoder.advance(hidden, vectors[:, position], feedback[:, position])
        positive = feedback >= 1
        first = positive.to(torch.int8).argmax(1)
        clicked = torch.where(positive.any(1), slate.gather(1, first[:, None])[:, 0], -1)
        return Step(
            state={"recent_items": self._shift(state["recent_items"], slate),
                   "feedback": self._shift(state["feedback"], feedback), "hidden": hidden},
            reward=self.rewards[feedback].sum(1),
            clicked=clicked,
            terminated=torch.zeros(batch, dtype=torch.bool, device=self.device),
            info={"feedback": feedback},
        )

    def _shift(self, window: Tensor, new: Tensor) -> Tensor:
        """Append ``new`` to each user's window and keep its last ``N`` entries."""
        return torch.cat([window, new], 1)[:, -self.state_length:]

    def observe(self, state: State) -> dict[str, Tensor]:
        """The last ``N`` items and their feedback (the paper's state)."""
        return {"recent_items": state["recent_items"], "feedback": state["feedback"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observation keys."""
        n = self.state_length
        return {"recent_items": gym.spaces.MultiDiscrete(np.full(n, self.num_items,
                                                                 dtype=np.int64)),
                "feedback": gym.spaces.MultiDiscrete(np.full(n, self.num_feedback,
                                                             dtype=np.int64))}

    @classmethod
    def from_loaded(cls, loaded: dict, **kwargs) -> RecSimuUsers:
        """The model and the logged start states of a ``recgym fit recsimu`` checkpoint."""
        model = RecSimu.from_checkpoint(loaded)
        if "start_items" not in loaded:
            raise CheckpointError("this RecSimu checkpoint holds no start states: refit it with "
                                  f"`{cls.fit_command}`")
        return cls(model, loaded["start_items"], loaded["start_feedback"], **kwargs)


