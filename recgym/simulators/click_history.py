"""Users whose observation is their recent clicks: the agent's view of a slate log.

The base of every simulator fitted on slate logs alone (``session_id``, ``step``,
``slate``, ``click``): an agent sees what a recommender sees, the last clicks, so a
policy runs unchanged in the world that wrote the logs and in the simulator fitted on
them.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from recgym.core.simulator import State


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
