"""RecSimu's training tuples: (state of N browsed items with feedback, next item, its feedback).

Following the paper's experimental settings, each session's first ``N`` items and their
feedback are the initial state and item ``N + 1`` the first action; sliding one position
at a time gives a sequence of (state, action, feedback) tuples. The last tuple of every
session is the test set; here the second-to-last is kept for validation (model and
hyper-parameter selection) and the rest is training data.

A browsed item of a log row is its ``click`` (the item the user interacted with) or,
for a page view without a click, the first item of its slate. Feedback classes come
from the ``feedback`` column (0 .. K-1), or from the click (1) / no click (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data import LogDataset


@dataclass
class BrowsingSequences:
    """Per-session browsed items and feedback, concatenated.

    Attributes:
        items: int64 ``(L,)`` item ids, sessions one after the other, in browsing order.
        feedback: int64 ``(L,)`` classes in ``0 .. num_feedback - 1``.
        session_starts: int64 ``(S + 1,)`` offsets of each session in ``items``.
        num_items: catalogue size.
        num_feedback: ``K``.
    """

    items: np.ndarray
    feedback: np.ndarray
    session_starts: np.ndarray
    num_items: int
    num_feedback: int

    @classmethod
    def from_logs(cls, logs: LogDataset | pd.DataFrame, *, num_items: int | None = None,
                  num_feedback: int | None = None) -> BrowsingSequences:
        """Browsing sequences of a log (see the module docstring for the reading)."""
        frame = logs.logs if isinstance(logs, LogDataset) else logs
        if isinstance(logs, LogDataset) and num_items is None:
            num_items = logs.num_items
        missing = {"session_id", "step", "slate", "click"} - set(frame.columns)
        if missing:
            raise ValueError(f"RecSimu needs log columns {sorted(missing)}; see the log schema "
                             "in recgym.data")
        frame = frame.sort_values(["session_id", "step"], kind="stable")
        click = frame["click"].to_numpy(np.int64)
        first_shown = np.array([slate[0] if len(slate) else -1 for slate in frame["slate"]],
                               dtype=np.int64)
        items = np.where(click >= 0, click, first_shown)
        if "feedback" in frame.columns:
            feedback = frame["feedback"].to_numpy(np.int64)
        else:
            feedback = (click >= 0).astype(np.int64)
        if (items < 0).any():
            raise ValueError("a page view has neither a click nor a shown item")
        num_items = int(items.max()) + 1 if num_items is None else num_items
        if items.max() >= num_items:
            raise ValueError(f"item id {int(items.max())} is outside the catalogue of "
                             f"{num_items} items")
        num_feedback = int(feedback.max()) + 1 if num_feedback is None else num_feedback
        if feedback.min() < 0 or feedback.max() >= num_feedback:
            raise ValueError(f"feedback classes must lie in 0 .. {num_feedback - 1}, got "
                             f"{int(feedback.min())} .. {int(feedback.max())}")
        sessions = frame["session_id"].to_numpy()
        boundaries = np.flatnonzero(sessions[1:] != sessions[:-1]) + 1
        starts = np.concatenate([[0], boundaries, [len(items)]]).astype(np.int64)
        return cls(items, feedback, starts, num_items, max(num_feedback, 2))

    def sessions(self) -> list[np.ndarray]:
        """Item ids of each session (for item embeddings)."""
        return np.split(self.items, self.session_starts[1:-1])


@dataclass
class Tuples:
    """(state, action, feedback) tuples.

    Attributes:
        state_items: int64 ``(T, N)``.
        state_feedback: int64 ``(T, N)``.
        action: int64 ``(T,)``, the next browsed item.
        feedback: int64 ``(T,)``, its feedback class.
        session: int64 ``(T,)``, index of the session each tuple comes from.
    """

    state_items: np.ndarray
    state_feedback: np.ndarray
    action: np.ndarray
    feedback: np.ndarray
    session: np.ndarray

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, mask: np.ndarray) -> Tuples:
        """The tuples where ``mask`` is true."""
        return Tuples(self.state_items[mask], self.state_feedback[mask], self.action[mask],
                      self.feedback[mask], self.session[mask])


@dataclass
class TupleSplit:
    """Train / validation / test tuples (test: each session's last tuple)."""

    train: Tuples
    valid: Tuples
    test: Tuples


def make_tuples(sequences: BrowsingSequences, state_length: int) -> Tuples:
    """Every window of ``state_length`` items followed by one more, in every session."""
    starts, stops = sequences.session_starts[:-1], sequences.session_starts[1:]
    counts = np.maximum(stops - starts - state_length, 0)
    session = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(starts, counts) + _ranges(counts)
    window = first[:, None] + np.arange(state_length)
    target = first + state_length
    return Tuples(sequences.items[window], sequences.feedback[window], sequences.items[target],
                  sequences.feedback[target], session)


def split_last_tuples(tuples: Tuples) -> TupleSplit:
    """Last tuple of each session: test; the one before: validation; the rest: train."""
    last = np.r_[tuples.session[1:] != tuples.session[:-1], True]
    before_last = np.r_[last[1:] & (tuples.session[1:] == tuples.session[:-1]), False]
    return TupleSplit(tuples.subset(~last & ~before_last), tuples.subset(before_last),
                      tuples.subset(last))


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``[0 .. c-1 for c in counts]`` concatenated."""
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - offsets


def browsing_logs_from_ratings(interactions: pd.DataFrame, *,
                               positive_threshold: float = 4.0) -> pd.DataFrame:
    """One session per user of rated items in time order, feedback 1 for a high rating.

    RecSimu's reading of MovieLens (sec. "Experiments", the issue's protocol): a rating is a
    browsed item, positive if ``rating >= positive_threshold`` and negative otherwise.
    """
    frame = interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    items = frame["item_id"].to_numpy(np.int64)
    return pd.DataFrame({
        "session_id": frame["user_id"].to_numpy(np.int64),
        "step": frame.groupby("user_id").cumcount().to_numpy(np.int64),
        "slate": list(items[:, None]),
        "click": items,
        "feedback": (frame["rating"].to_numpy() >= positive_threshold).astype(np.int64),
    })


def contiguous_feedback(logs: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Renumber the feedback classes present to 0 .. K-1 (e.g. view 1 / purchase 2 -> 0 / 1)."""
    present = sorted(int(c) for c in logs["feedback"].unique())
    renumbered = logs.copy()
    renumbered["feedback"] = np.searchsorted(present, logs["feedback"].to_numpy())
    return renumbered, present


SESSION_DATASETS = ("diginetica", "yoochoose")


def load_browsing_logs(spec: str, root: str | None = None) -> tuple[pd.DataFrame, int]:
    """Browsing logs and catalogue size from a log file, a MovieLens name or a session set.

    Args:
        spec: a log file (Parquet / CSV in the log schema), a MovieLens release
            (``ml-latest-small``, ``ml-100k``, ...; positive feedback: rating >= 4), or
            ``diginetica`` / ``yoochoose`` (feedback: the classes present, renumbered).
        root: folder holding the dataset's files (MovieLens: optional; sessions: needed).
    """
    from recgym.data import (
        feedback_from_clicks,
        load_diginetica,
        load_logs,
        load_movielens,
        load_yoochoose,
    )

    if Path(spec).is_file():
        dataset = load_logs(spec)
        logs = dataset.logs
        if "feedback" not in logs.columns:  # e.g. `recgym generate-logs` output
            logs = logs.assign(feedback=feedback_from_clicks(logs))
        return logs, dataset.num_items
    if spec in SESSION_DATASETS:
        if root is None:
            raise ValueError(f"dataset {spec} needs root=FOLDER holding its files")
        sessions = load_diginetica(root) if spec == "diginetica" else load_yoochoose(root)
        events = sessions.events
        logs = pd.DataFrame({"session_id": events["session_id"], "step": events["step"],
                             "slate": list(events["item_id"].to_numpy()[:, None]),
                             "click": events["item_id"], "feedback": events["feedback"]})
        logs, classes = contiguous_feedback(logs)
        if len(classes) < 2:
            raise ValueError(f"{spec} holds a single feedback class {classes}: nothing to predict")
        return logs, sessions.num_items
    try:
        movielens = load_movielens(spec, root=root)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise ValueError(f"{spec!r} is neither a log file, a MovieLens release, nor one of "
                         f"{SESSION_DATASETS}: {error}") from error
    return browsing_logs_from_ratings(movielens.interactions), movielens.num_items
