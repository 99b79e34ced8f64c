"""Reference click models for the GAN user model's fidelity table (Chen et al. 2019, Table 1).

Each ranks the displayed items of a page view; Prec@k counts page views whose clicked
item is among the top k, as for the user model itself (ties broken at random, in
expectation: `recgym.simulators.gan_user.fit.ranked_precision`).

* ``popularity``: how often the item was clicked in training.
* ``display-ctr``: the item's click rate when displayed in training, ``(clicks + 1) /
  (displays + 2)``; no user state. It measures how much of a score comes from the way
  the display sets were built: on MovieLens sets (the rated movie and 39 released near
  the time) it learns which movies mostly serve as fillers.
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

from recgym.core.random import isolated_global_rng
from recgym.simulators.gan_user.fit import PageViews, ranked_precision
from recgym.simulators.gan_user.model import features_of

BASELINES = ("popularity", "display-ctr", "iknn", "lr")
BASELINE_NAMES = {"popularity": "popularity", "display-ctr": "item CTR in display sets",
                  "iknn": "IKNN", "lr": "LR click model (W&D without the deep part)"}


def _clicked(views: PageViews) -> tuple[np.ndarray, np.ndarray]:
    """Users and item ids of the page views with a click."""
    has_click = (views.choice < views.display.shape[1]).numpy()
    items = views.display.numpy()[np.arange(len(views)), np.minimum(views.choice.numpy(),
                                                                     views.display.shape[1] - 1)]
    return views.user[has_click], items[has_click]


def _precision(scores: Tensor, views: PageViews, ks: tuple[int, ...]) -> dict[int, float]:
    clicked = views.choice < views.display.shape[1]
    return ranked_precision(scores[clicked], views.choice[clicked], ks)


@isolated_global_rng
def baseline_precision(name: str, train: PageViews, test: PageViews, features: Tensor, *,
                       ks: tuple[int, ...] = (1, 2), epochs: int = 10,
                       seed: int = 0) -> dict[int, float]:
    """Prec@k of one reference model fitted on ``train`` and scored on ``test``."""
    num_items = len(features)
    users, items = _clicked(train)
    if name == "popularity":
        counts = torch.from_numpy(np.bincount(items, minlength=num_items).astype(np.float32))
        return _precision(counts[test.display], test, ks)
    if name == "display-ctr":
        clicks = np.bincount(items, minlength=num_items)
        displays = np.bincount(train.display.flatten().numpy(), minlength=num_items)
        rate = torch.from_numpy(((clicks + 1) / (displays + 2)).astype(np.float32))
        return _precision(rate[test.display], test, ks)
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
        model = LogisticClickModel(features.shape[1])
        model.fit(train, features, epochs=epochs, seed=seed)
        with torch.no_grad():
            scores = model.item_scores(features_of(test.history, features),
                                       features[test.display])
        return _precision(scores, test, ks)
    raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")


class LogisticClickModel(nn.Module):
    """The ``lr`` click model: a conditional logit over the display set and no click.

    An item's score is linear in its features ``f`` and in ``f * c``, where ``c`` is the
    mean feature vector of the user's last ``m`` clicks (zeros for missing clicks); the no
    click option scores 0. Fitted by maximum likelihood of the logged choices. As a policy
    (``agents.cascading_dqn.GreedyPolicy``) it is Table 3's W&D-LR without the deep part.

    Args:
        feature_dim: ``d``, item feature size.
    """

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.linear = nn.Linear(2 * feature_dim, 1)
        # the likelihood is convex: start from zero (every option equally likely), so a fit
        # depends only on its data and seed, not on torch's global generator
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def item_scores(self, history: Tensor, candidates: Tensor) -> Tensor:
        """Scores ``(B, K)`` of candidates ``(B, K, d)`` after clicks ``(B, m, d)``."""
        context = history.mean(1, keepdim=True)
        return self.linear(torch.cat([candidates, candidates * context], -1)).squeeze(-1)

    def fit(self, views: PageViews, features: Tensor, *, epochs: int = 10,
            learning_rate: float = 1e-2, seed: int = 0) -> LogisticClickModel:
        """Maximum likelihood of the page views' choices (Adam, mini-batches of 512)."""
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)
        for _ in range(epochs):
            for index in torch.randperm(len(views), generator=generator).split(512):
                scores = self.item_scores(features_of(views.history[index], features),
                                          features[views.display[index]])
                logits = torch.cat([scores, torch.zeros_like(scores[:, :1])], 1)
                loss = F.cross_entropy(logits, views.choice[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return self
