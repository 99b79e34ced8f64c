"""Simple strong references for every table: EASE (Steck, WWW 2019) and item popularity.

EASE is the closed-form item-item model ``B = argmin ||X - XB||^2 + lambda ||B||^2`` with
``diag(B) = 0``: with ``P = (X^T X + lambda I)^{-1}``, ``B_ij = -P_ij / P_jj`` off the
diagonal. Scores are ``x B``. The Gram matrix is built from the sparse training matrix; ``B``
is dense ``M x M`` (float32 after the float64 inversion), so EASE suits catalogues up to a
few tens of thousands of items.

Popularity scores each item by its number of training users, the same for every user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from agents.cf.base import CFModel, check_interactions


@dataclass
class EASEConfig:
    """Configuration of `EASE`."""

    num_items: int
    l2: float = 500.0


class EASE(CFModel):
    """Embarrassingly shallow auto-encoder (Steck, 2019), closed form.

    Args:
        num_items: catalogue size ``M``.
        l2: the ridge weight lambda (500 for ML-20M in Steck's paper; tune on validation).
    """

    config_class = EASEConfig

    def __init__(self, num_items: int, l2: float = 500.0) -> None:
        super().__init__()
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        self.config = EASEConfig(num_items, float(l2))
        self.register_buffer("weights", torch.zeros(num_items, num_items))

    def fit(self, train: Any, valid: Any = None, *, checkpoint: str | None = None,
            progress: bool = False) -> EASE:
        """Solve for ``B`` on the training users' histories (`valid` is ignored).

        `checkpoint`, if given, receives the fitted model; `progress` is accepted for a
        uniform interface (the solve is one step).
        """
        x = check_interactions(train, self.num_items, "train")
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.l2
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.weights = torch.as_tensor(b, dtype=torch.float32)
        if checkpoint is not None:
            self.save(checkpoint)
        return self

    def score(self, x: Tensor) -> Tensor:
        """``x B``."""
        return x @ self.weights


@dataclass
class PopularityConfig:
    """Configuration of `Popularity`."""

    num_items: int


class Popularity(CFModel):
    """Recommend the most popular items (number of training users), identical for everyone.

    Args:
        num_items: catalogue size ``M``.
    """

    config_class = PopularityConfig

    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.config = PopularityConfig(num_items)
        self.register_buffer("counts", torch.zeros(num_items))

    def fit(self, train: Any, valid: Any = None, *, checkpoint: str | None = None,
            progress: bool = False) -> Popularity:
        """Count each item's training users (`valid`, `progress` ignored; saves to `checkpoint`)."""
        x = check_interactions(train, self.num_items, "train")
        self.counts = torch.as_tensor(np.asarray(x.sum(axis=0)).ravel(), dtype=torch.float32)
        if checkpoint is not None:
            self.save(checkpoint)
        return self

    def score(self, x: Tensor) -> Tensor:
        """The item counts, broadcast to every user."""
        return self.counts.expand(x.shape[0], -1)
