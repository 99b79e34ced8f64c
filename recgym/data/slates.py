"""Reading logged page views: sessions in order, their slates and each page's outcome.

What every model fitted on slate logs needs from the schema's ``session_id``, ``step``,
``slate`` and ``click`` columns, written once: the off-policy estimators' count models,
the choice-continuation simulator and the fidelity instrument's kinds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def first_occurrence(slates: np.ndarray) -> np.ndarray:
    """Bool ``(n, k)``: the entry is the first occurrence of its item in the slate."""
    first = np.ones(slates.shape, bool)
    if slates.shape[1] < 2 or len(slates) == 0:
        return first
    ordered = np.sort(slates, axis=1)
    repeats = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(1))
    if len(repeats):  # logs rarely repeat items: only those rows need the slow check
        some = slates[repeats]
        for j in range(1, slates.shape[1]):
            first[repeats, j] = ~(some[:, :j] == some[:, j:j + 1]).any(1)
    return first


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


class SessionIndex:
    """Where the rows of each session lie, sessions numbered in order of first appearance.

    Built once per log, so that the many resamples of a bootstrap only gather rows.
    """

    def __init__(self, sessions: np.ndarray) -> None:
        codes, _ = pd.factorize(sessions)
        self.order = np.argsort(codes, kind="stable")
        self.lengths = np.bincount(codes)
        self.starts = np.r_[0, np.cumsum(self.lengths)[:-1]]

    def __len__(self) -> int:
        return len(self.lengths)

    def rows(self, picked: np.ndarray) -> np.ndarray:
        """Row indices of the sessions ``picked``, in turn, each keeping its rows' order.

        A bootstrap resample of whole sessions is ``picked`` drawn with replacement.
        """
        lengths = self.lengths[picked]
        offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.order[np.repeat(self.starts[picked], lengths) + offset]


def pick_sessions(logs: pd.DataFrame, picked: np.ndarray) -> pd.DataFrame:
    """The sessions ``picked`` (indices in order of first appearance), each copy a new session.

    Copies get ids ``0 .. len(picked) - 1`` in the order picked (:class:`SessionIndex`).
    """
    index = SessionIndex(logs["session_id"].to_numpy())
    resample = logs.iloc[index.rows(picked)].copy()
    resample["session_id"] = np.repeat(np.arange(len(picked)), index.lengths[picked])
    return resample.reset_index(drop=True)


def bootstrap_sessions(logs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A resample of whole sessions with replacement, each copy a session of its own."""
    count = logs["session_id"].nunique()
    return pick_sessions(logs, np.random.default_rng(seed).integers(0, count, count))
