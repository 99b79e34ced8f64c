"""Turning ratings and click streams into page views: sessions, display sets, feedback classes.

* MovieLens ratings (`ratings_to_logs`, `movielens_to_logs`), as the GAN user model paper
  (Chen et al., ICML 2019, sec. 6) built its page views: one page view per rating, the
  rated movie clicked among movies released near that time (`display_sets_by_release`).
* Session logs for the GAN user model (`session_page_views`): one page view per event,
  with the distinct items other sessions clicked nearest in time
  (`display_sets_by_nearest_time`); `sessions.events_to_logs` does the conversion.
* Feedback classes as RecSimu (Zhao et al., AAAI 2020) used them: a rating >= 4 is
  positive (1), else negative (0); in sessions 0 skip / view, 1 click, 2 purchase.

How display sets are rebuilt for data without impressions is in `displays`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recgym.data.dataset import LogDataset
from recgym.data.displays import display_sets_by_nearest_time, display_sets_by_release
from recgym.data.schema import FEEDBACK_CLICK, FEEDBACK_PURCHASE, FEEDBACK_SKIP
from recgym.data.sessions import SessionData, events_to_logs

if TYPE_CHECKING:
    from recgym.data.movielens import MovieLens

__all__ = [
    "display_sets_by_nearest_time",  # lived here before `displays`; still importable
    "feedback_from_events",
    "feedback_from_ratings",
    "movielens_to_logs",
    "ratings_to_logs",
    "session_page_views",
    "timelines_to_sessions",
]


def feedback_from_ratings(ratings: np.ndarray | pd.Series, threshold: float = 4.0) -> np.ndarray:
    """Binary feedback classes as RecSimu: 1 (positive) if ``rating >= threshold``, else 0."""
    return (np.asarray(ratings, dtype=np.float64) >= threshold).astype(np.int64)


def feedback_from_events(purchased: np.ndarray | pd.Series, clicked: np.ndarray | None = None
                         ) -> np.ndarray:
    """Session feedback classes: 2 if purchased, else 1 if clicked (default: all), else 0."""
    purchased = np.asarray(purchased, dtype=bool)
    clicked = np.ones_like(purchased) if clicked is None else np.asarray(clicked, dtype=bool)
    return np.where(purchased, FEEDBACK_PURCHASE,
                    np.where(clicked, FEEDBACK_CLICK, FEEDBACK_SKIP)).astype(np.int64)


def timelines_to_sessions(
    interactions: pd.DataFrame,
    *,
    session_gap: float | None = None,
    max_session_length: int | None = None,
    user_col: str = "user_id",
    time_col: str = "timestamp",
    item_col: str = "item_id",
) -> pd.DataFrame:
    """Order each user's interactions in time and cut them into numbered sessions.

    Args:
        interactions: one row per interaction, with user, time and item columns.
        session_gap: start a new session after this many idle seconds; None keeps each
            user's whole timeline as one session (the GAN user model's reading).
        max_session_length: cut longer sessions into pieces of at most this many steps.
        user_col: user column.
        time_col: time column (seconds).
        item_col: item column (breaks ties between equal times).

    Returns:
        A copy sorted by user, time and item, with ``session_id`` (0-based, contiguous)
        and ``step`` (0-based within the session) columns added.
    """
    frame = interactions.sort_values([user_col, time_col, item_col], kind="stable")
    frame = frame.reset_index(drop=True)
    users = frame[user_col].to_numpy()
    new = np.r_[True, users[1:] != users[:-1]]
    if session_gap is not None:
        times = frame[time_col].to_numpy(dtype=np.float64)
        new[1:] |= np.diff(times) > session_gap
    session = np.cumsum(new) - 1
    step = _cumcount(session)
    if max_session_length is not None:
        if max_session_length < 1:
            raise ValueError("max_session_length must be >= 1")
        new |= (step % max_session_length == 0)
        session = np.cumsum(new) - 1
        step = _cumcount(session)
    frame["session_id"] = session.astype(np.int64)
    frame["step"] = step.astype(np.int64)
    return frame


def _cumcount(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal consecutive values."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start


def ratings_to_logs(
    interactions: pd.DataFrame,
    release_year: np.ndarray,
    *,
    num_items: int,
    items: pd.DataFrame | None = None,
    size: int = 40,
    seed: int = 0,
    positive_threshold: float = 4.0,
    click_threshold: float | None = None,
    session_gap: float | None = None,
    max_session_length: int | None = None,
    released_before: bool = True,
) -> LogDataset:
    """Page views from ratings, as the GAN user model paper built them for MovieLens.

    Each rating is one page view: the display set holds the rated movie and
    ``size - 1`` movies released near the rating's time (`display_sets_by_release`); the
    rated movie is the click, and ``feedback`` is 1 if ``rating >= positive_threshold``.

    Args:
        interactions: ``user_id``, ``item_id``, ``rating``, ``timestamp`` columns.
        release_year: release year per item id (NaN if unknown).
        num_items: catalogue size.
        items: item table to attach.
        size: display-set size (40: the clicked movie and 39 others).
        seed: seed of the display-set draws.
        positive_threshold: ratings at or above it get feedback 1, others 0.
        click_threshold: if set, ratings below it are shown but not clicked (click -1).
        session_gap: idle seconds that start a new session (None: one per user).
        max_session_length: cut sessions longer than this.
        released_before: see `display_sets_by_release`.
    """
    frame = timelines_to_sessions(interactions, session_gap=session_gap,
                                  max_session_length=max_session_length)
    item = frame["item_id"].to_numpy(np.int64)
    slates = display_sets_by_release(item, frame["timestamp"].to_numpy(), release_year,
                                     size=size, seed=seed, released_before=released_before)
    rating = frame["rating"].to_numpy(np.float64)
    click = item if click_threshold is None else np.where(rating >= click_threshold, item, -1)
    logs = pd.DataFrame({
        "session_id": frame["session_id"].to_numpy(np.int64),
        "user_id": frame["user_id"].to_numpy(np.int64),
        "step": frame["step"].to_numpy(np.int64),
        "slate": list(slates),
        "click": click.astype(np.int64),
        "feedback": feedback_from_ratings(rating, positive_threshold),
        "timestamp": frame["timestamp"].to_numpy(np.int64),
        "rating": rating.astype(np.float32),
    })
    return LogDataset(logs, items=items, num_items=num_items)


def session_page_views(
    data: SessionData,
    *,
    size: int = 10,
    display: str = "nearest",
    window: float = 3600.0,
    max_sessions: int | None = None,
    seed: int = 0,
) -> LogDataset:
    """Page views of a session log for the GAN user model: one per event, sessions as users.

    Session logs are anonymous, so ``user_id`` is the session (the paper's user split
    becomes a session split). With ``max_sessions`` a seeded random subset of sessions
    is kept first, and display sets are built from that subset's activity.
    """
    events = data.events
    if max_sessions is not None and max_sessions < events["session_id"].nunique():
        chosen = np.random.default_rng(seed).choice(events["session_id"].unique(),
                                                    size=max_sessions, replace=False)
        events = events[events["session_id"].isin(chosen)].reset_index(drop=True)
    events = events.assign(user_id=events["session_id"].to_numpy())
    return events_to_logs(events, num_items=data.num_items, items=data.items, size=size,
                          window=window, seed=seed, display=display)


def movielens_to_logs(
    ml: MovieLens,
    *,
    size: int = 40,
    seed: int = 0,
    positive_threshold: float = 4.0,
    click_threshold: float | None = None,
    session_gap: float | None = None,
    max_session_length: int | None = None,
    released_before: bool = True,
) -> LogDataset:
    """`ratings_to_logs` for a loaded `MovieLens` release, with its item table attached."""
    years = ml.items["year"].to_numpy(dtype=np.float64, na_value=np.nan)
    return ratings_to_logs(
        ml.interactions, years, num_items=ml.num_items, items=ml.items, size=size, seed=seed,
        positive_threshold=positive_threshold, click_threshold=click_threshold,
        session_gap=session_gap, max_session_length=max_session_length,
        released_before=released_before,
    )

