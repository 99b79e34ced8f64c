"""A CF model as a recgym `Policy`: recommend the top-k unseen items from a click history.

The observation key ``clicks`` (recgym's convention, e.g. SyntheticMDP-v0) holds the last
clicked item ids of each user, padded with ``num_items``. The history becomes the binary
input row ``x`` of the model (RaCT's ``x_h``), the model scores every item, items already
in the history are excluded, and the ``k`` best form the slate (ties go to the lower id).
The whole batch is scored in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from recgym.evaluation.ranking import rank_top

if TYPE_CHECKING:
    from agents.cf.base import CFModel


class CFPolicy:
    """Slates of ``k`` unseen items ranked by a CF model's scores of the user's history.

    Args:
        model: a fitted model from `agents.cf`.
        k: slate size.
        history_key: observation key holding the clicked item ids ``(B, L)``.
        pad_id: id that marks an empty history slot; defaults to ``model.num_items``
            (ids outside ``0 .. num_items - 1`` other than `pad_id` are an error).
    """

    def __init__(self, model: CFModel, k: int = 10, *, history_key: str = "clicks",
                 pad_id: int | None = None) -> None:
        if not 1 <= k <= model.num_items:
            raise ValueError(f"need 1 <= k <= num_items ({model.num_items}), got k={k}")
        self.model = model
        self.slate_size = k
        self.history_key = history_key
        self.pad_id = model.num_items if pad_id is None else pad_id

    def history_matrix(self, observation: dict[str, Tensor]) -> Tensor:
        """Binary ``(B, M)`` float histories from the observation's click ids."""
        if self.history_key not in observation:
            raise KeyError(f"observation has no {self.history_key!r} key (keys: "
                           f"{sorted(observation)}); pass history_key= the click-history key")
        clicks = torch.as_tensor(observation[self.history_key])
        if clicks.dim() == 1:
            clicks = clicks[None]
        clicks = clicks.long()
        n = self.model.num_items
        valid = (clicks >= 0) & (clicks < n)
        bad = ~valid & (clicks != self.pad_id)
        if bad.any():
            raise ValueError(f"click history holds item ids outside the model's catalogue "
                             f"0..{n - 1} (e.g. {clicks[bad][0].item()}); the env has more "
                             "items than the model was trained on")
        x = torch.zeros(clicks.shape[0], n + 1, dtype=torch.float32, device=clicks.device)
        x.scatter_(1, torch.where(valid, clicks, torch.full_like(clicks, n)), 1.0)
        return x[:, :n]

    @torch.no_grad()
    def scores(self, observation: dict[str, Tensor]) -> Tensor:
        """Model scores ``(B, M)`` of every item for each user in the batch."""
        x = self.history_matrix(observation)
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.score(x.cpu()).to(x.device)
        finally:
            self.model.train(was_training)

    def act(self, observation: dict[str, Tensor]) -> Tensor:
        """Int64 slates ``(B, k)`` of the best-scored items not in the history."""
        x = self.history_matrix(observation)
        scores = self.scores(observation)
        return rank_top(scores, self.slate_size, exclude=x > 0)
