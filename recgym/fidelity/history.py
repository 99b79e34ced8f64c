"""What the simulator kinds that model page outcomes share: click histories and session ends.

Every non-privileged kind gives an agent the user's recent clicks
(:class:`~recgym.simulators.click_history.ClickHistoryUsers`), so the policy set runs
unchanged in the world and in each kind; :class:`HistoryUsers` steps users from outcome
and continuation probabilities, and :class:`NoClickEndsUsers` gives the logs' session rule
to kinds that model only the choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.simulator import Randomness, State, Step
from recgym.data.slates import logged_slates, outcomes
from recgym.simulators.click_history import ClickHistoryUsers


def held_out_sessions(logs: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """Whether each page view belongs to a random ``share`` of the sessions (at least one)."""
    sessions = logs["session_id"].unique()
    rng = np.random.default_rng(seed)
    held = rng.choice(sessions, max(1, int(share * len(sessions))), replace=False)
    return logs["session_id"].isin(held).to_numpy()


def last_clicks(logs: pd.DataFrame, no_click: int) -> np.ndarray:
    """The item clicked last before each page view of its session (``no_click``: none yet).

    ``logs`` must be sorted by ``session_id``, ``step``.
    """
    click = logs["click"].astype("Int64").where(logs["click"] >= 0)
    previous = click.groupby(logs["session_id"].to_numpy()).shift(1)
    filled = previous.groupby(logs["session_id"].to_numpy()).ffill()
    return filled.fillna(no_click).to_numpy(np.int64)


class HistoryUsers(ClickHistoryUsers):
    """Users whose state is their click history; subclasses give outcome probabilities."""

    def outcome_probabilities(self, last_click: Tensor, slate: Tensor) -> Tensor:
        """float64 ``(B, k + 1)``: click on each position, then no click."""
        raise NotImplementedError

    def continue_probability(self, clicked: Tensor) -> Tensor:
        """float64 ``(B,)``: probability of another page view after this outcome."""
        raise NotImplementedError

    def reset(self, batch_size: int, rng: Randomness) -> State:
        """Sessions start with an empty history."""
        return {"history": self.empty_history(batch_size)}

    def state_outcome_probabilities(self, state: State, slate: Tensor) -> Tensor:
        """:meth:`outcome_probabilities` in ``state`` (default: given the last click)."""
        return self.outcome_probabilities(state["history"][:, -1], slate)

    def next_state(self, state: State, slate: Tensor, position: Tensor, history: Tensor
                   ) -> State:
        """The state after the outcome ``position`` (``k``: no click); ``history`` is updated."""
        return {"history": history}

    def step(self, state: State, slate: Tensor, rng: Randomness) -> Step:
        """Draw the outcome, then whether the session goes on."""
        history = state["history"]
        cumulative = self.state_outcome_probabilities(state, slate).cumsum(1)
        uniforms = rng.uniform(2).double()
        position = (cumulative[:, :-1] <= uniforms[:, :1]).sum(1)
        clicked_any = position < self.slate_size
        item = slate.gather(1, position.clamp(max=self.slate_size - 1)[:, None])[:, 0]
        keep_going = uniforms[:, 1] < self.continue_probability(clicked_any)
        moved = torch.cat([history[:, 1:], item[:, None]], dim=1)
        history = torch.where(clicked_any[:, None], moved, history)
        return Step(state=self.next_state(state, slate, position, history),
                    reward=clicked_any.to(torch.float32),
                    clicked=torch.where(clicked_any, item, -1), terminated=~keep_going)

    def page_view_probabilities(self, logs: pd.DataFrame) -> np.ndarray:
        """Outcome probabilities of each logged page view (``logs`` sorted), ``(N, k + 1)``."""
        last = torch.as_tensor(last_clicks(logs, self.num_items))
        with torch.no_grad():
            return self.outcome_probabilities(last, torch.as_tensor(logged_slates(logs))).numpy()


def continuation_after_click(logs: pd.DataFrame) -> float:
    """Share of clicked page views that have a next page in their session (smoothed).

    ``logs`` sorted by ``session_id``, ``step``.
    """
    clicked = outcomes(logs) < len(logs["slate"].iloc[0])
    session = logs["session_id"].to_numpy()
    has_next = np.r_[session[1:] == session[:-1], False]
    return float((has_next[clicked].sum() + 0.5) / (clicked.sum() + 1.0))


class NoClickEndsUsers(HistoryUsers):
    """Users who leave at a page without a click and go on after one at a logged rate.

    The session structure of the logs (``continue_after_click``), for kinds whose model
    says what is clicked but not when a user leaves.
    """

    continue_after_click: float

    def continue_probability(self, clicked: Tensor) -> Tensor:
        """No click ends the session; a click continues with the logged rate."""
        return clicked.double() * self.continue_after_click
