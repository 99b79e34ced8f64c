"""A CF model as a recgym `Policy`: recommend the top-k unseen items from a click history.

The observation key ``clicks`` (recgym's convention, e.g. SyntheticMDP-v0) holds the last
clicked item ids of each user, padded with ``num_items``. The history becomes the binary
input row ``x`` of the model (RaCT's ``x_h``), the model scores every item, items already
in the history are excluded, and the ``k`` best form the slate (ties go to the lower id).
The whole batch is scored in one call.

Two options serve envs whose ids differ from the model's columns or whose action is a
position in a candidate pool (GANUserModel-v0 with ``observe_ids=True``): ``item_ids`` maps
model columns to env ids (e.g. ``CFData.item_ids``; env items the model never saw are
ignored in histories and ranked last among candidates), and ``candidates_key`` ranks only
the pool's items and returns positions in the pool.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from recgym.evaluation.ranking import rank_top


class ScoringModel(Protocol):
    """What a policy needs of a CF model: its catalogue size and a batched ``score``."""

    num_items: int
    training: bool

    def score(self, x: Tensor) -> Tensor:
        """Scores ``(B, num_items)`` of every item for binary click rows ``x``."""
        ...

    def train(self, mode: bool = True) -> ScoringModel:
        """Switch training mode (the policy scores in eval mode)."""
        ...

    def eval(self) -> ScoringModel:
        """Switch to evaluation mode."""
        ...


class CFPolicy:
    """Slates of ``k`` unseen items ranked by a CF model's scores of the user's history.

    Args:
        model: a fitted model from `agents.cf`.
        k: slate size.
        history_key: observation key holding the clicked item ids ``(B, L)``.
        pad_id: id that marks an empty history slot; defaults to ``model.num_items``
            (without `item_ids`, ids outside ``0 .. num_items - 1`` other than `pad_id`
            are an error).
        item_ids: env item id of each model column (distinct, ``(num_items,)``); None
            means the env and the model share ids.
        candidates_key: observation key holding each step's candidate item ids ``(B, K)``;
            the slate is then ``k`` positions in that pool (best candidate first).
    """

    def __init__(self, model: ScoringModel, k: int = 10, *, history_key: str = "clicks",
                 pad_id: int | None = None, item_ids: np.ndarray | Tensor | None = None,
                 candidates_key: str | None = None) -> None:
        if not 1 <= k <= model.num_items:
            raise ValueError(f"need 1 <= k <= num_items ({model.num_items}), got k={k}")
        self.model = model
        self.slate_size = k
        self.history_key = history_key
        self.pad_id = model.num_items if pad_id is None else pad_id
        self.candidates_key = candidates_key
        self.column_of = None if item_ids is None else _column_lookup(item_ids, model.num_items)

    def _columns(self, ids: Tensor) -> Tensor:
        """Model columns of env ids; -1 for ids the model does not know (and for pads)."""
        if self.column_of is None:
            n = self.model.num_items
            return torch.where((ids >= 0) & (ids < n), ids, torch.full_like(ids, -1))
        lookup = self.column_of.to(ids.device)
        known = (ids >= 0) & (ids < len(lookup))
        return torch.where(known, lookup[ids.clamp(0, len(lookup) - 1)], torch.full_like(ids, -1))

    def _ids(self, observation: dict[str, Tensor], key: str, argument: str) -> Tensor:
        if key not in observation:
            raise KeyError(f"observation has no {key!r} key (keys: {sorted(observation)}); "
                           f"pass {argument}= the key that holds item ids (GANUserModel-v0 "
                           "shows ids only with observe_ids=True)")
        ids = torch.as_tensor(observation[key])
        return (ids[None] if ids.dim() == 1 else ids).long()

    def history_matrix(self, observation: dict[str, Tensor]) -> Tensor:
        """Binary ``(B, M)`` float histories from the observation's click ids."""
        clicks = self._ids(observation, self.history_key, "history_key")
        columns = self._columns(clicks)
        if self.column_of is None:
            bad = (columns < 0) & (clicks != self.pad_id)
            if bad.any():
                raise ValueError(f"click history holds item ids outside the model's catalogue "
                                 f"0..{self.model.num_items - 1} (e.g. {clicks[bad][0].item()})"
                                 "; the env has more items than the model was trained on: pass "
                                 "item_ids= (the env id of each model column)")
        n = self.model.num_items
        x = torch.zeros(clicks.shape[0], n + 1, dtype=torch.float32, device=clicks.device)
        x.scatter_(1, torch.where(columns >= 0, columns, torch.full_like(columns, n)), 1.0)
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
        """Int64 slates ``(B, k)``: best-scored unseen items, or pool positions."""
        x = self.history_matrix(observation)
        scores = self.scores(observation)
        if self.candidates_key is None:
            return rank_top(scores, self.slate_size, exclude=x > 0)
        candidates = self._columns(self._ids(observation, self.candidates_key, "candidates_key"))
        if self.slate_size > candidates.shape[1]:
            raise ValueError(f"k={self.slate_size} exceeds the {candidates.shape[1]} candidates")
        known = candidates >= 0
        safe = candidates.clamp_min(0)
        pool_scores = scores.gather(1, safe).masked_fill(~known, -1e30)
        seen = x.gather(1, safe).bool() & known
        return rank_top(pool_scores, self.slate_size, exclude=seen)


def _column_lookup(item_ids: np.ndarray | Tensor, num_items: int) -> Tensor:
    """Dense env-id -> model-column table (-1: unknown) from the column -> env-id array."""
    ids = torch.as_tensor(np.asarray(item_ids)).long().flatten()
    if len(ids) != num_items:
        raise ValueError(f"item_ids must give one env id per model column ({num_items}), "
                         f"got {len(ids)}")
    if len(ids) and int(ids.min()) < 0:
        raise ValueError("item_ids must be non-negative env item ids")
    if len(torch.unique(ids)) != len(ids):
        raise ValueError("item_ids must be distinct: two model columns map to one env item")
    lookup = torch.full((int(ids.max()) + 1 if len(ids) else 0,), -1, dtype=torch.int64)
    lookup[ids] = torch.arange(len(ids))
    return lookup
