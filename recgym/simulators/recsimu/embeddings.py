"""Item embeddings for RecSimu's state: skip-gram with negative sampling over sessions.

RecSimu's items are represented by word2vec-style embeddings learned from browsing
sessions, each item a word and each session a sentence (Zhao et al. 2020, footnote 1;
Levy and Goldberg 2014). Here they are trained in torch: every pair of items within
``window`` positions of each other in a session is a positive pair, ``negatives`` items
drawn from the unigram distribution raised to 3/4 are negatives, and the loss is
``-log sigmoid(u . v) - sum log sigmoid(-u . v_neg)``. The vectors used are
``tanh`` of the trained parameters, so every coordinate lies in (-1, 1) as the paper's
state encoder assumes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def context_pairs(sessions: Sequence[np.ndarray], window: int) -> np.ndarray:
    """All (center, context) item pairs within ``window`` positions, int64 ``(P, 2)``."""
    lengths = np.array([len(s) for s in sessions])
    items = np.concatenate(sessions).astype(np.int64) if len(sessions) else np.zeros(0, np.int64)
    session_of = np.repeat(np.arange(len(sessions)), lengths)
    pairs = []
    for offset in range(1, window + 1):
        same = session_of[offset:] == session_of[:-offset]
        forward = np.stack([items[:-offset][same], items[offset:][same]], axis=1)
        pairs += [forward, forward[:, ::-1]]
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def train_item_embeddings(sessions: Sequence[np.ndarray], num_items: int, *, dim: int = 20,
                          window: int = 5, negatives: int = 5, epochs: int = 5,
                          batch_size: int = 4096, learning_rate: float = 0.01, seed: int = 0,
                          progress: bool = False) -> torch.Tensor:
    """Skip-gram embeddings of ``num_items`` items from item-id sessions.

    Args:
        sessions: one int array of item ids per session, in browsing order.
        num_items: catalogue size; items never browsed keep their random start.
        dim: ``|E|`` (20 in the paper).
        window: context window on each side.
        negatives: negative samples per positive pair.
        epochs: passes over all pairs.
        batch_size: pairs per Adam step.
        learning_rate: Adam step size.
        seed: seeds initialisation, shuffling and negative sampling.
        progress: show a progress bar.

    Returns:
        float32 ``(num_items, dim)`` with entries in (-1, 1).
    """
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.from_numpy(np.ascontiguousarray(context_pairs(sessions, window)))
    if len(pairs) and int(pairs.max()) >= num_items:
        raise ValueError(f"sessions hold item id {int(pairs.max())}, outside the catalogue of "
                         f"{num_items} items")
    counts = torch.bincount(pairs[:, 0], minlength=num_items).double() if len(pairs) else \
        torch.ones(num_items, dtype=torch.float64)
    noise = (counts.clamp_min(1.0) ** 0.75)
    noise /= noise.sum()
    center = torch.nn.Parameter(torch.randn(num_items, dim, generator=generator) * 0.1)
    context = torch.nn.Parameter(torch.randn(num_items, dim, generator=generator) * 0.1)
    optimizer = torch.optim.Adam([center, context], lr=learning_rate)
    starts = [start for _ in range(epochs) for start in range(0, len(pairs), batch_size)]
    order = None
    for start in tqdm(starts, desc="item embeddings", disable=not progress, leave=False):
        if start == 0:
            order = torch.randperm(len(pairs), generator=generator)
        batch = pairs[order[start:start + batch_size]]
        sampled = torch.multinomial(noise, len(batch) * negatives, replacement=True,
                                    generator=generator).view(len(batch), negatives)
        # F.embedding's backward sums repeated rows in a fixed order (reproducible runs)
        u = torch.tanh(F.embedding(batch[:, 0], center))
        v = torch.tanh(F.embedding(batch[:, 1], context))
        v_neg = torch.tanh(F.embedding(sampled, context))
        positive = F.logsigmoid((u * v).sum(-1))
        negative = F.logsigmoid(-(v_neg @ u[:, :, None]).squeeze(-1)).sum(-1)
        loss = -(positive + negative).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.tanh(center.detach()).float()
