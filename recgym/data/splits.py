"""Seeded splits of logs and interactions by user or by session.

A split shuffles the sorted distinct ids with ``numpy.random.default_rng(seed)`` and cuts
the permutation by the given fractions, so the same data and seed always give the same
split and the parts never share an id. `gan_user_model_split` is the 50% / 12.5% / 37.5%
user split of the GAN user model paper (Chen et al., ICML 2019, sec. 6); `sample_users`
draws the paper's "1,000 active users" of MovieLens. The Liang et al. strong-
generalisation split lives in `recgym.data.cf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from recgym.data.dataset import LogDataset

T = TypeVar("T", pd.DataFrame, LogDataset)
GAN_USER_MODEL_FRACTIONS = (0.5, 0.125, 0.375)


@dataclass
class Split(Generic[T]):
    """Train / validation / test parts of one dataset, and the ids that went to each."""

    train: T
    val: T
    test: T
    train_ids: np.ndarray
    val_ids: np.ndarray
    test_ids: np.ndarray


def split_ids(
    ids: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the distinct `ids` with `seed` and cut them by `fractions` (summing to 1).

    Part sizes are ``round(f * n)`` for train and validation; test gets the rest.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got "
                         f"{fractions}")
    unique = np.unique(np.asarray(ids))
    perm = unique[np.random.default_rng(seed).permutation(len(unique))]
    n_train = int(round(fractions[0] * len(unique)))
    n_val = int(round(fractions[1] * len(unique)))
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def _split_by(data: T, column: str, fractions: tuple[float, float, float], seed: int) -> Split:
    frame = data.logs if isinstance(data, LogDataset) else data
    if column not in frame.columns:
        hint = " (split_by_session works on any log)" if column == "user_id" else ""
        raise KeyError(f"cannot split by {column!r}: no such column{hint}")
    values = frame[column].to_numpy()
    parts = split_ids(values, fractions, seed)
    out = []
    for ids in parts:
        rows = frame[np.isin(values, ids)]
        out.append(data.with_logs(rows) if isinstance(data, LogDataset)
                   else rows.reset_index(drop=True))
    return Split(out[0], out[1], out[2], *parts)


def split_by_user(
    data: T, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
    *, user_col: str = "user_id",
) -> Split:
    """Split a log (`LogDataset` or DataFrame) or interactions so each user is in one part."""
    return _split_by(data, user_col, fractions, seed)


def split_by_session(
    data: T, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Split a log so each session is in one part."""
    return _split_by(data, "session_id", fractions, seed)


def gan_user_model_split(data: T, seed: int = 0, *, user_col: str = "user_id") -> Split:
    """Users split 50% train, 12.5% validation, 37.5% test, as in the GAN user model paper."""
    return _split_by(data, user_col, GAN_USER_MODEL_FRACTIONS, seed)


def sample_users(
    interactions: pd.DataFrame,
    n_users: int,
    seed: int = 0,
    *,
    min_interactions: int = 1,
    user_col: str = "user_id",
) -> pd.DataFrame:
    """Rows of `n_users` users drawn at random among those with >= `min_interactions` rows."""
    counts = interactions[user_col].value_counts()
    eligible = np.sort(counts.index[counts >= min_interactions].to_numpy())
    if n_users > len(eligible):
        raise ValueError(f"asked for {n_users} users but only {len(eligible)} have >= "
                         f"{min_interactions} interactions")
    chosen = np.random.default_rng(seed).choice(eligible, size=n_users, replace=False)
    return interactions[interactions[user_col].isin(chosen)].reset_index(drop=True)
