"""Batched users of IRecGAN's user model U: the ``UserSimulator`` behind ``IRecGAN-v0``."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from recgym.core import validation
from recgym.core.batch import merge_states
from recgym.core.checkpoint import load_checkpoint
from recgym.core.policy import repeated_positions
from recgym.core.simulator import Randomness, State, Step
from recgym.simulators.checkpoints import CheckpointUsers
from recgym.simulators.irecgan.discriminator import SequenceDiscriminator
from recgym.simulators.irecgan.model import UserBehaviorModel


class IRecGANUsers(CheckpointUsers):
    """Batched users of a fitted U (implements ``UserSimulator``).

    Args:
        model: the fitted user behaviour model.
        slate_size: items per slate ``k``.
        history_length: recent clicks the agent observes.
        discriminator: a trained sequence discriminator D; its score of the trajectory so
            far is then reported in ``info["discriminator_score"]`` every step (D's GRU
            state is carried along, so the cost is one GRU step).
        device: where the simulation runs.
    """

    checkpoint_kind = "irecgan-user"
    default_checkpoint = "irecgan-user-synthetic-mdp.pt"
    fit_command = "recgym fit irecgan-user"

    def __init__(self, model: UserBehaviorModel, *, slate_size: int = 10,
                 history_length: int = 10, discriminator: SequenceDiscriminator | None = None,
                 device: torch.device | str = "cpu") -> None:
        config = model.config
        slate_size = validation.integer("slate_size", slate_size, minimum=1,
                                        maximum=config.num_items)
        history_length = validation.integer("history_length", history_length, minimum=1)
        self.device = validation.device(device)
        # the model may still be training (IRecGAN updates U adversarially): no mode or
        # gradient flags are changed here; every method runs under no_grad
        self.model = model.to(self.device)
        self.num_items = config.num_items
        self.slate_size = slate_size
        self.history_length = history_length
        self.lstm = config.cell == "lstm"
        self._rnn_keys = ("output", "hidden", "cell") if self.lstm else ("output", "hidden")
        with torch.no_grad():
            start = torch.full((1, 1), model.start_token, device=self.device)
            output, memory = model.states(start)
        self._start_output = output[:, 0]
        memory = memory if self.lstm else (memory, torch.zeros_like(memory))
        self._start_memory = tuple(m.transpose(0, 1) for m in memory)  # (1, layers, hidden)
        self.discriminator = None if discriminator is None else discriminator.to(self.device)

    @torch.no_grad()
    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Every session starts from U's start state with no click yet."""
        hidden, cell = (m.expand(batch_size, -1, -1) for m in self._start_memory)
        state = {"output": self._start_output.expand(batch_size, -1), "hidden": hidden,
                 "cell": cell,
                 "history": torch.full((batch_size, self.history_length), self.num_items,
                                       dtype=torch.int64, device=self.device)}
        if self.discriminator is not None:
            state["d_hidden"] = torch.zeros(batch_size, self.discriminator.rnn.hidden_size,
                                            device=self.device)
        return state

    @torch.no_grad()
    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Click or leave (eq. 1), reward of the click (eq. 2), next RNN state."""
        model, k = self.model, slate.shape[1]
        logits = model.click_logits(state["output"], slate)
        logits[:, :k] = logits[:, :k].masked_fill(repeated_positions(slate), -float("inf"))
        cumulative = torch.softmax(logits, dim=1).cumsum(1)
        uniforms = rng.uniform(2)
        position = (cumulative[:, :-1] <= uniforms[:, :1]).sum(1)
        clicked_any = position < k
        item = slate.gather(1, position.clamp(max=k - 1)[:, None])[:, 0]
        reward_probability = torch.sigmoid(model.reward_logit(state["output"], item))
        reward = (clicked_any & (uniforms[:, 1] < reward_probability)).to(torch.float32)
        keep = ~clicked_any
        history = torch.cat([state["history"][:, 1:], item[:, None]], dim=1)
        clicked = torch.where(clicked_any, item, -1)
        next_state = {**state, **self._advance_rnn(state, item, clicked_any),
                      "history": torch.where(keep[:, None], state["history"], history)}
        info = {"reward_probability": torch.where(clicked_any, reward_probability, 0.0)}
        if self.discriminator is not None:
            features = self.discriminator.step_features(slate, clicked, reward)
            next_state["d_hidden"], info["discriminator_score"] = self.discriminator.advance(
                state["d_hidden"], features)
        return Step(state=next_state, reward=reward, clicked=clicked, terminated=keep,
                    info=info)

    def _advance_rnn(self, state: State, item: Tensor, clicked_any: Tensor) -> State:
        """U's RNN state after each user's click (users without a click keep theirs).

        Eager, only the users who clicked run through the RNN (the RNN is most of a step's
        time; with random slates about half of a batch clicks); a single env's one user
        takes a Python branch instead of the index bookkeeping. A compiled step runs every
        user and selects, since the number of clicks is unknown when the graph is built.
        """
        names = self._rnn_keys
        if torch.compiler.is_compiling():
            rows = {name: state[name] for name in names}
            return merge_states(clicked_any, self._rnn_step(rows, item), rows)
        if clicked_any.shape[0] == 1:
            return self._rnn_step(state, item) if bool(clicked_any) else {}
        index = clicked_any.nonzero()[:, 0]
        advanced = self._rnn_step({name: state[name][index] for name in names}, item[index])
        return {name: state[name].index_copy(0, index, advanced[name]) for name in names}

    def _rnn_step(self, rows: State, item: Tensor) -> State:
        """One RNN step of every given user from its state, on the clicked ``item``."""
        memory = tuple(rows[name].transpose(0, 1).contiguous() for name in self._rnn_keys[1:])
        output, memory = self.model.states(item[:, None], memory if self.lstm else memory[0])
        memory = memory if self.lstm else (memory,)
        return dict(zip(self._rnn_keys, (output[:, 0], *(m.transpose(0, 1) for m in memory)),
                        strict=True))

    def observe(self, state: State) -> dict[str, Tensor]:
        """The recent clicks, oldest first (``n`` = none yet), as a recommender sees them."""
        return {"clicks": state["history"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user spaces of the observation keys."""
        return {"clicks": gym.spaces.MultiDiscrete(
            np.full(self.history_length, self.num_items + 1, dtype=np.int64))}

    @classmethod
    def from_loaded(cls, loaded: dict, discriminator: str | Path | None = None,
                    **kwargs) -> IRecGANUsers:
        """U of a ``recgym fit irecgan-user`` checkpoint.

        ``discriminator``: a ``discriminator.pt`` from ``recgym fit irecgan``, for
        ``info["discriminator_score"]``.
        """
        model = UserBehaviorModel.from_checkpoint(loaded)
        judge = None
        if discriminator is not None:
            judge = SequenceDiscriminator.from_checkpoint(load_checkpoint(
                discriminator, "irecgan-discriminator",
                rebuild="recgym fit irecgan --data LOGS --out-dir DIR"))
            if judge.num_items != model.config.num_items:
                raise ValueError(f"discriminator {discriminator} knows {judge.num_items} items, "
                                 f"the user model {model.config.num_items}: fit them together")
        return cls(model, discriminator=judge, **kwargs)


