"""How well RecSimu's generator imitates the logging recommender (the paper's Table 1).

Each held-out tuple has one logged next item. A recommender ranks the whole catalogue
for the tuple's state; MAP (with a single relevant item: the reciprocal rank) and
NDCG@40 score where the logged item lands. RecSimu's generator ranks items by the
Euclidean distance of their embedding to ``G(s)``; the references are popularity and a
GRU4Rec-style next-item model (a GRU over the browsed items, a softmax over the
catalogue, cross-entropy; Hidasi et al. 2015).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.core.random import isolated_global_rng
from recgym.simulators.recsimu.data import Tuples
from recgym.simulators.recsimu.model import RecSimu


def rank_of_target(scores: Tensor, target: Tensor) -> Tensor:
    """1-based rank of ``target`` ``(B,)`` among ``scores`` ``(B, n)`` (higher is better).

    Ties count against the target (pessimistic), so a constant scorer gets no credit.
    """
    target_score = scores.gather(1, target[:, None])
    return (scores >= target_score).sum(1)


def map_and_ndcg(ranks: Tensor, cutoff: int = 40) -> dict[str, float]:
    """MAP (reciprocal rank, one relevant item) and NDCG@cutoff from 1-based ranks."""
    ranks = ranks.double()
    ndcg = torch.where(ranks <= cutoff, 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
    return {"map": float((1.0 / ranks).mean()), f"ndcg@{cutoff}": float(ndcg.mean())}


@torch.no_grad()
def generator_ranks(model: RecSimu, tuples: Tuples, batch_size: int = 1024) -> Tensor:
    """Rank of each logged next item when items are ordered by distance to ``G(s)``."""
    model.eval()
    ranks = []
    for start in range(0, len(tuples), batch_size):
        part = slice(start, start + batch_size)
        items = torch.from_numpy(tuples.state_items[part])
        generated = model.generator(model.embed(items),
                                    torch.from_numpy(tuples.state_feedback[part]))
        scores = -torch.cdist(generated, model.item_vectors)
        ranks.append(rank_of_target(scores, torch.from_numpy(tuples.action[part])))
    return torch.cat(ranks)


def popularity_ranks(train: Tuples, test: Tuples, num_items: int) -> Tensor:
    """Ranks under item popularity (how often each item is the next item in training)."""
    counts = np.bincount(train.action, minlength=num_items).astype(np.float64)
    scores = torch.from_numpy(counts)[None].expand(len(test), -1)
    return rank_of_target(scores, torch.from_numpy(test.action))


class NextItemGRU(nn.Module):
    """GRU4Rec-style next-item model over item ids (embedding, GRU, catalogue softmax)."""

    def __init__(self, num_items: int, embedding_dim: int = 64, hidden_size: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_items, embedding_dim)
        self.gru = nn.GRU(embedding_dim, hidden_size, batch_first=True)
        self.output = nn.Linear(hidden_size, num_items)

    def forward(self, items: Tensor) -> Tensor:
        """Next-item logits ``(B, num_items)`` from item-id states ``(B, N)``."""
        _, last = self.gru(self.embedding(items))
        return self.output(last[0])


@isolated_global_rng
def gru4rec_ranks(train: Tuples, test: Tuples, num_items: int, *, epochs: int = 5,
                  batch_size: int = 500, learning_rate: float = 1e-3, seed: int = 0) -> Tensor:
    """Train :class:`NextItemGRU` on the training tuples; ranks of the test next items."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = NextItemGRU(num_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    items, target = torch.from_numpy(train.state_items), torch.from_numpy(train.action)
    for _ in range(epochs):
        for index in torch.randperm(len(target), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(items[index]), target[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        scores = model(torch.from_numpy(test.state_items))
    return rank_of_target(scores, torch.from_numpy(test.action))
