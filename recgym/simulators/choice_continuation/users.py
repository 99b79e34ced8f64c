"""The choice-continuation users: a batched ``UserSimulator`` of a fitted model, and its files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from recgym.core.simulator import Randomness, State, Step
from recgym.simulators.choice_continuation.model import (
    PARAMETER_NAMES,
    LoggedSessions,
    continue_logit,
    forward,
    log_choice,
)
from recgym.simulators.click_history import ClickHistoryUsers

CHECKPOINT_KIND = "choice-continuation"
FIT_COMMAND = "recgym fit choice-continuation --data LOGS --out FILE.pt"


class ChoiceContinuationUsers(ClickHistoryUsers):
    """Users of a fitted latent-state choice + continuation model (see the package docstring).

    ``parameters`` holds (``K`` latent states, ``n`` items):
        start: float64 ``(K,)`` start-state logits.
        attraction: float64 ``(K, n)``.
        acceptance: float64 ``(K, n)`` (large when the logs have no non-click).
        transition: float64 ``(n + 1, K, K)`` logits; row ``n``: after no click.
        continue_type: float64 ``(2,)``: no click, click.
        continue_state: float64 ``(K, 2)``.
        continue_item: float64 ``(n,)``.
    """

    def __init__(self, parameters: dict[str, Tensor], slate_size: int,
                 history_length: int) -> None:
        self.parameters = {name: value.detach().double() for name, value in parameters.items()}
        self.num_latent, num_items = self.parameters["attraction"].shape
        super().__init__(num_items, slate_size, history_length)
        p = self.parameters
        self._start = torch.softmax(p["start"], 0)
        self._transition = torch.softmax(p["transition"], -1).cumsum(-1)

    # -- UserSimulator

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Latent start states drawn, empty click history."""
        u = rng.uniform(1)[:, 0].double()
        z = (self._start.cumsum(0)[None, :] <= u[:, None]).sum(1).clamp(max=self.num_latent - 1)
        return {"latent": z, "history": self.empty_history(batch_size)}

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Draw the outcome in the latent state, whether the session goes on, the next state."""
        z, history = state["latent"], state["history"]
        batch = torch.arange(len(z))
        uniforms = rng.uniform(3).double()
        probabilities = log_choice(self.parameters, slate)[batch, z].exp()
        cumulative = probabilities.cumsum(1)
        position = (cumulative[:, :-1] <= uniforms[:, :1]).sum(1)
        clicked = position < self.slate_size
        item = slate.gather(1, position.clamp(max=self.slate_size - 1)[:, None])[:, 0]
        item = torch.where(clicked, item, self.num_items)
        logit = continue_logit(self.parameters, item, self.num_items)[batch, z]
        keep_going = uniforms[:, 1] < torch.sigmoid(logit)
        rows = self._transition[item, z]
        next_z = (rows[:, :-1] <= uniforms[:, 2:3]).sum(1)
        moved = torch.cat([history[:, 1:], item[:, None]], dim=1)
        return Step(state={"latent": next_z,
                           "history": torch.where(clicked[:, None], moved, history)},
                    reward=clicked.to(torch.float32),
                    clicked=torch.where(clicked, item, -1), terminated=~keep_going)

    # -- files

    def checkpoint(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint dict (``config``: the fit's options, kept for the record)."""
        return checkpoint_payload(CHECKPOINT_KIND, dict(config or {}, slate_size=self.slate_size,
                                                        history_length=self.history_length),
                                  {name: value.clone() for name, value in self.parameters.items()})

    def save(self, path: str | Path, config: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint atomically; return the path."""
        return save_checkpoint(path, self.checkpoint(config))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> ChoiceContinuationUsers:
        """Users of a ``recgym fit choice-continuation`` checkpoint file."""
        loaded = load_checkpoint(path, CHECKPOINT_KIND, rebuild=FIT_COMMAND)
        missing = sorted(PARAMETER_NAMES - set(loaded["state_dict"]))
        if missing:
            raise ValueError(f"{path}: a choice-continuation checkpoint without the parameters "
                             f"{missing}; rebuild it with `{FIT_COMMAND}`")
        config = loaded["config"]
        return cls(loaded["state_dict"], int(config["slate_size"]), int(config["history_length"]))

    @torch.no_grad()
    def page_view_probabilities(self, logs: pd.DataFrame) -> np.ndarray:
        """Outcome probabilities of each logged page given the session so far, ``(N, k + 1)``.

        Rows follow ``logs`` sorted by ``session_id``, ``step`` (as the other kinds).
        """
        data = LoggedSessions(logs, self.num_items)
        out = np.zeros((data.num_pages, self.slate_size + 1))
        forward(self.parameters, data, self.num_items, predictive=out)
        return out
