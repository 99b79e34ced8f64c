"""Reference click models for the GAN user model's fidelity table (Chen et al. 2019, Table 1).

Each ranks the displayed items of a page view; Prec@k counts page views whose clicked
item is among the top k, as for the user model itself (ties broken at random, in
expectation: `recgym.simulators.gan_user.fit.ranked_precision`).

* ``popularity``: how often the item was clicked in training.
* ``iknn``: item-KNN on co-occurrence: cosine similarity of items' training click
  vectors over users, summed over the user's last ``m`` clicks (dense item x user
  incidence: fine for MovieLens-sized data).
* ``lr``: a conditional-logit (softmax over the display set) linear model on the same
  features as the user model: the item's features and their product with the mean of the
  last ``m`` clicked items' features. This is W&D-LR without the deep part.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recgym.simulators.gan_user.fit import PageViews, _features_of, ranked_precision

BASELINES = ("popularity", "iknn", "lr")
BASELINE_NAMES = {"popularity": "popularity", "iknn": "IKNN",
                  "lr": "LR click model (W&D without the deep part)"}


def _clicked(views: PageViews) -> tuple[np.ndarray, np.ndarray]:
    """Users and item ids of the page views with a click."""
    has_click = (views.choice < views.display.shape[1]).numpy()
    items = views.display.numpy()[np.arange(len(views)), np.minimum(views.choice.numpy(),
                                                                     views.display.shape[1] - 1)]
    return views.user[has_click], items[has_click]


def _precision(scores: Tensor, views: PageViews, ks: tuple[int, ...]) -> dict[int, float]:
    clicked = views.choice < views.display.shape[1]
    return ranked_precision(scores[clicked], views.choice[clicked], ks)


def baseline_precision(name: str, train: PageViews, test: PageViews, features: Tensor, *,
                       ks: tuple[int, ...] = (1, 2), epochs: int = 10,
                       seed: int = 0) -> dict[int, float]:
    """Prec@k of one reference model fitted on ``train`` and scored on ``test``."""
    num_items = len(features)
    users, items = _clicked(train)
    if name == "popularity":
        counts = torch.from_numpy(np.bincount(items, minlength=num_items).astype(np.float32))
        return _precision(counts[test.display], test, ks)
    if name == "iknn":
        _, user_index = np.unique(users, return_inverse=True)
        incidence = torch.zeros(num_items, int(user_index.max()) + 1)
        incidence[torch.from_numpy(items), torch.from_numpy(user_index)] = 1.0
        unit = F.normalize(incidence, dim=1)  # cosine similarity = dot of unit rows
        scores = torch.zeros(test.display.shape)
        for rows in torch.arange(len(test)).split(2048):
            shown = unit[test.display[rows]]  # (V, K, users)
            for column in range(test.history.shape[1]):
                past = test.history[rows, column]
                similarity = (shown @ unit[past.clamp_min(0)][:, :, None]).squeeze(-1)
                scores[rows] += similarity * (past >= 0)[:, None]
        return _precision(scores, test, ks)
    if name == "lr":
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = nn.Linear(2 * features.shape[1], 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

        def logits(views: PageViews) -> Tensor:
            context = _features_of(views.history, features).mean(1, keepdim=True)
            shown = features[views.display]
            scores = model(torch.cat([shown, shown * context], -1)).squeeze(-1)
            return torch.cat([scores, torch.zeros_like(scores[:, :1])], 1)  # no click: 0

        for _ in range(epochs):
            for index in torch.randperm(len(train), generator=generator).split(512):
                part = PageViews(train.history[index], train.display[index],
                                 train.choice[index], train.user[index.numpy()])
                loss = F.cross_entropy(logits(part), part.choice)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            return _precision(logits(test)[:, :-1], test, ks)
    raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
