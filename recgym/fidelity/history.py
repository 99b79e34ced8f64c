"""What every non-privileged simulator kind shares: logged page views and click histories.

The log helpers read the schema's ``slate`` and ``click`` columns into the outcome of each
page view; :class:`ClickHistoryUsers` is the observation every such kind gives an agent,
the user's recent clicks, so the policy set runs unchanged in the world and in each kind.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recgym.core.simulator import State
from recgym.evaluation.ope_models import first_occurrence


def sorted_logs(logs: pd.DataFrame) -> pd.DataFrame:
    """``logs`` ordered by ``session_id``, ``step`` (page views of a session in order)."""
    return logs.sort_values(["session_id", "step"], kind="stable").reset_index(drop=True)


def logged_slates(logs: pd.DataFrame) -> np.ndarray:
    """int64 ``(N, k)``: the slate of each page view."""
    return np.stack(logs["slate"].to_numpy()).astype(np.int64)


def outcomes(logs: pd.DataFrame) -> np.ndarray:
    """Each page view's outcome: the clicked slate position, ``k`` for no click, int ``(N,)``."""
    slates, click = logged_slates(logs), logs["click"].to_numpy(np.int64)
    hit = (slates == click[:, None]) & first_occurrence(slates)
    return np.where(click >= 0, hit.argmax(1), slates.shape[1])


def last_clicks(logs: pd.DataFrame, no_click: int) -> np.ndarray:
    """The item clicked last before each page view of its session (``no_click``: none yet).

    ``logs`` must be sorted by ``session_id``, ``step``.
    """
    click = logs["click"].astype("Int64").where(logs["click"] >= 0)
    previous = click.groupby(logs["session_id"].to_numpy()).shift(1)
    filled = previous.groupby(logs["session_id"].to_numpy()).ffill()
    return filled.fillna(no_click).to_numpy(np.int64)


class ClickHistoryUsers:
    """Base of users whose observation is their last ``history_length`` clicks."""

    def __init__(self, num_items: int, slate_size: int, history_length: int) -> None:
        self.num_items = num_items
        self.slate_size = slate_size
        self.history_length = history_length

    def empty_history(self, batch_size: int) -> Tensor:
        """int64 ``(B, history_length)`` of ``num_items``: no click yet."""
        return torch.full((batch_size, self.history_length), self.num_items,
                          dtype=torch.int64)

    def observe(self, state: State) -> dict[str, Tensor]:
        """The recent clicks (``num_items``: none yet); any other state stays hidden."""
        return {"clicks": state["history"]}

    def observation_spaces(self) -> dict[str, gym.Space]:
        """Single-user space of ``clicks``."""
        return {"clicks": gym.spaces.MultiDiscrete(
            np.full(self.history_length, self.num_items + 1, dtype=np.int64))}
