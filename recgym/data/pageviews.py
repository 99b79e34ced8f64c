"""Turning ratings and click streams into page views: sessions, display sets, feedback classes.

Most public data records what a user chose, not what was on the page. recgym rebuilds
the page ("display set") the way the papers it implements did:

* MovieLens, GAN user model paper (Chen et al., ICML 2019, sec. 6): "each display set is
  simulated by collecting 39 movies released near the time the movie is rated".
  `display_sets_by_release` reads "near" on release years: movies of the rating's year,
  then earlier years, then (only if the catalogue runs out) later ones; a movie not yet
  released cannot be on the page (``released_before=True``; False ranks years by
  distance in both directions). The year that completes the set contributes a uniform
  random subset, so equal ties are broken at random, and the slate order is shuffled so
  the chosen movie's position carries no signal.
* Session logs (YooChoose, DIGINETICA): `display_sets_by_time_window` draws the other
  items from those active (viewed or bought by anyone) within ``window`` seconds of the
  event, in proportion to that activity, widening the window when too few are active.
* Session logs, GAN user model paper's reading (sec. 6: for Last.fm "each display set is
  simulated by collecting 9 songs with the nearest time-stamp"; its YooChoose recipe is in
  an appendix we do not have): `display_sets_by_nearest_time` fills the set with the
  distinct items that other sessions clicked closest in time to the event.
  `session_page_views` turns a `SessionData` into such page views.
* Feedback classes as RecSimu (Zhao et al., AAAI 2020) used them: a rating >= 4 is
  positive (1), else negative (0); in sessions 0 skip / view, 1 click, 2 purchase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recgym.data.schema import LogDataset

if TYPE_CHECKING:
    from recgym.data.movielens import MovieLens
    from recgym.data.sessions import SessionData

FEEDBACK_SKIP = 0
FEEDBACK_CLICK = 1
FEEDBACK_PURCHASE = 2
_CHUNK_ROWS = 4096


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


def _finish_slates(
    others: np.ndarray, clicked: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Add the clicked item to each row of `others` and shuffle every row."""
    slates = np.concatenate([others, clicked[:, None]], axis=1)
    order = np.argsort(rng.random(slates.shape), axis=1)
    return np.take_along_axis(slates, order, axis=1)


def display_sets_by_release(
    clicked: np.ndarray,
    times: np.ndarray,
    release_year: np.ndarray,
    *,
    size: int = 40,
    seed: int = 0,
    released_before: bool = True,
) -> np.ndarray:
    """Display sets of the GAN user model paper: the clicked item and items released near then.

    Beware: users rate movies of every era, while the fillers are recent releases, so the
    clicked movie is usually the oldest of its set (96% of ml-latest-small page views):
    keep the release year out of the features a click model sees, or it learns that.

    Args:
        clicked: item id of each interaction, shape (n,).
        times: unix seconds of each interaction, shape (n,).
        release_year: release year of every item, shape (num_items,); NaN for unknown
            (such items are never drawn as fillers, but may be the clicked one).
        size: items per display set, the clicked one included (40 = 1 + 39).
        seed: seed of the random draws.
        released_before: only fill with items released in or before the rating's year,
            unless fewer than ``size`` such items exist.

    Returns:
        int64 array (n, size): each row holds the clicked item once, in a random position,
        and ``size - 1`` distinct other items.
    """
    clicked = np.asarray(clicked, dtype=np.int64)
    release_year = np.asarray(release_year, dtype=np.float64)
    known = np.flatnonzero(~np.isnan(release_year))
    if len(known) < size:
        raise ValueError(f"only {len(known)} items have a release year; need >= {size} "
                         "to build display sets of that size")
    years = release_year[known].astype(np.int64)
    bucket_years, bucket_of = np.unique(years, return_inverse=True)
    members = [known[bucket_of == b] for b in range(len(bucket_years))]
    counts = np.array([len(m) for m in members])
    event_year = pd.to_datetime(np.asarray(times), unit="s").year.to_numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((len(clicked), size - 1), dtype=np.int64)
    for year in np.unique(event_year):
        rows = np.flatnonzero(event_year == year)
        dist = bucket_years - year
        if released_before:
            # this year and earlier (nearest first), then later years (nearest first)
            order = np.lexsort((np.abs(dist), dist > 0))
        else:
            order = np.lexsort((dist, np.abs(dist)))
        cum = np.cumsum(counts[order])
        boundary = int(np.searchsorted(cum, size))  # first bucket reaching `size`
        full = (np.concatenate([members[b] for b in order[:boundary]])
                if boundary else np.zeros(0, np.int64))
        last = members[order[boundary]]
        need = size - len(full)
        for lo in range(0, len(rows), _CHUNK_ROWS):
            r = rows[lo:lo + _CHUNK_ROWS]
            n = len(r)
            keys = rng.random((n, len(last)))
            pick = np.argpartition(keys, need - 1, axis=1)[:, :need]
            pick = np.take_along_axis(pick, np.argsort(
                np.take_along_axis(keys, pick, axis=1), axis=1), axis=1)
            drawn = np.concatenate([np.broadcast_to(full, (n, len(full))), last[pick]], axis=1)
            # Drop the clicked item if drawn, else the boundary item with the largest key:
            # either way the rest is a uniform draw among the other items.
            hit = drawn == clicked[r, None]
            drop = np.where(hit.any(axis=1), hit.argmax(axis=1), size - 1)
            keep = np.ones((n, size), dtype=bool)
            keep[np.arange(n), drop] = False
            out[r] = drawn[keep].reshape(n, size - 1)
    return _finish_slates(out, clicked, rng)


def display_sets_by_time_window(
    clicked: np.ndarray,
    times: np.ndarray,
    *,
    size: int = 10,
    window: float = 3600.0,
    seed: int = 0,
    event_items: np.ndarray | None = None,
    event_times: np.ndarray | None = None,
) -> np.ndarray:
    """Display sets for session data: the clicked item and items active around that time.

    Args:
        clicked: item id of each event, shape (n,).
        times: time of each event in seconds, shape (n,).
        size: items per display set, the clicked one included.
        window: half-width in seconds of the activity window; doubled (up to the whole
            log) for events with too few other active items.
        seed: seed of the random draws.
        event_items: items of the activity log (default: `clicked`).
        event_times: times of the activity log (default: `times`).

    Returns:
        int64 array (n, size): the clicked item once, in a random position, and
        ``size - 1`` distinct other items, drawn in proportion to their activity.
    """
    clicked = np.asarray(clicked, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    ev_items = clicked if event_items is None else np.asarray(event_items, dtype=np.int64)
    ev_times = times if event_times is None else np.asarray(event_times, dtype=np.float64)
    distinct = np.unique(ev_items)
    if len(distinct) < size:
        raise ValueError(f"the log has {len(distinct)} distinct items; need >= {size} "
                         "for display sets of that size")
    order = np.argsort(ev_times, kind="stable")
    et, ei = ev_times[order], ev_items[order]
    span = float(et[-1] - et[0]) + 1.0
    rng = np.random.default_rng(seed)
    need = size - 1
    base_draws = max(4 * need, 32)
    draws = base_draws
    out = np.full((len(clicked), need), -1, dtype=np.int64)
    todo = np.arange(len(clicked))
    half = float(window)
    while len(todo):
        wide = half > 2 * span
        for lo_row in range(0, len(todo), _CHUNK_ROWS):
            r = todo[lo_row:lo_row + _CHUNK_ROWS]
            n = len(r)
            if wide:
                lo, hi = np.zeros(n, np.int64), np.full(n, len(et))
            else:
                lo = np.searchsorted(et, times[r] - half, side="left")
                hi = np.searchsorted(et, times[r] + half, side="right")
            width = hi - lo
            pos = lo[:, None] + (rng.random((n, draws)) * width[:, None]).astype(np.int64)
            cand = ei[np.minimum(pos, len(ei) - 1)]
            valid = (width[:, None] > 0) & (cand != clicked[r, None])
            # keep first occurrences only (stable sort puts the earliest draw first)
            valid &= _first_occurrences(cand)
            enough = valid.sum(axis=1) >= need
            if enough.any():
                v = valid[enough]
                take = v & (np.cumsum(v, axis=1) <= need)
                out[r[enough]] = cand[enough][take].reshape(-1, need)
            if wide and not enough.all():
                # Whole log as the window and still short: sample the distinct items.
                for i in r[~enough]:
                    pool = distinct[distinct != clicked[i]]
                    out[i] = rng.choice(pool, size=need, replace=False)
        if wide:
            break
        filled = out[todo, 0] >= 0
        todo = todo[~filled]
        # Retry once at the same width with more draws (a popular item can crowd the
        # draws), then widen the window.
        if draws == base_draws:
            draws = 8 * base_draws
        else:
            draws = base_draws
            half *= 2.0
    return _finish_slates(out, clicked, rng)


def display_sets_by_nearest_time(
    clicked: np.ndarray,
    times: np.ndarray,
    sessions: np.ndarray,
    *,
    size: int = 10,
    seed: int = 0,
    event_items: np.ndarray | None = None,
    event_times: np.ndarray | None = None,
    event_sessions: np.ndarray | None = None,
) -> np.ndarray:
    """Display sets for session data: the clicked item and those clicked nearest in time.

    The other ``size - 1`` items are the distinct items of the activity log's events
    closest in time to each event (either side), leaving out events of the same session
    (the user's own clicks) and the clicked item itself.

    Args:
        clicked: item id of each event, shape (n,).
        times: time of each event in seconds, shape (n,).
        sessions: session of each event, shape (n,).
        size: items per display set, the clicked one included (10 = 1 + 9, as in the paper).
        seed: seed of the shuffle that places the clicked item.
        event_items: items of the activity log (default: `clicked`).
        event_times: times of the activity log (default: `times`).
        event_sessions: sessions of the activity log (default: `sessions`).

    Returns:
        int64 array (n, size): the clicked item once, in a random position, and
        ``size - 1`` distinct other items.
    """
    clicked = np.asarray(clicked, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    sessions = np.asarray(sessions)
    ev_items = clicked if event_items is None else np.asarray(event_items, dtype=np.int64)
    ev_times = times if event_times is None else np.asarray(event_times, dtype=np.float64)
    ev_sessions = sessions if event_sessions is None else np.asarray(event_sessions)
    if len(np.unique(ev_items)) < size:
        raise ValueError(f"the activity log has {len(np.unique(ev_items))} distinct items; "
                         f"need >= {size} for display sets of that size")
    order = np.argsort(ev_times, kind="stable")
    et, ei, es = ev_times[order], ev_items[order], ev_sessions[order]
    need = size - 1
    out = np.full((len(clicked), need), -1, dtype=np.int64)
    todo = np.arange(len(clicked))
    reach = 4 * size
    while len(todo):
        reach = min(reach, len(et))
        offsets = np.arange(-reach, reach)
        for lo_row in range(0, len(todo), _CHUNK_ROWS):
            r = todo[lo_row:lo_row + _CHUNK_ROWS]
            position = np.searchsorted(et, times[r])[:, None] + offsets
            inside = (position >= 0) & (position < len(et))
            position = position.clip(0, len(et) - 1)
            cand = ei[position]
            gap = np.where(inside & (es[position] != sessions[r, None])
                           & (cand != clicked[r, None]), np.abs(et[position] - times[r, None]),
                           np.inf)
            by_gap = np.argsort(gap, axis=1, kind="stable")
            cand = np.take_along_axis(cand, by_gap, axis=1)
            valid = np.isfinite(np.take_along_axis(gap, by_gap, axis=1))
            # keep each item's nearest occurrence only
            valid &= _first_occurrences(cand)
            enough = valid.sum(axis=1) >= need
            take = valid[enough] & (np.cumsum(valid[enough], axis=1) <= need)
            out[r[enough]] = cand[enough][take].reshape(-1, need)
        todo = todo[out[todo, 0] < 0]
        if len(todo) and reach >= len(et):
            raise ValueError(f"{len(todo)} events have fewer than {need} other items clicked "
                             "by other sessions; use smaller display sets")
        reach *= 4
    return _finish_slates(out, clicked, np.random.default_rng(seed))


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


def events_to_logs(
    events: pd.DataFrame,
    *,
    num_items: int,
    items: pd.DataFrame | None = None,
    size: int = 10,
    window: float = 3600.0,
    seed: int = 0,
    display: str = "window",
) -> LogDataset:
    """Page views from session events (one clicked item per step), with time-based displays.

    `events` has ``session_id``, ``step``, ``item_id``, ``timestamp`` and optionally
    ``feedback`` / ``reward`` / ``user_id`` and extra columns (kept). Each event becomes a
    page view whose click is the event's item and whose slate is built by
    `display_sets_by_time_window` (``display="window"``) or `display_sets_by_nearest_time`
    (``"nearest"``, which ignores ``window``).
    """
    time_col = "time" if "time" in events.columns else "timestamp"
    item = events["item_id"].to_numpy(np.int64)
    times = events[time_col].to_numpy(np.float64)
    if display == "window":
        slates = display_sets_by_time_window(item, times, size=size, window=window, seed=seed)
    elif display == "nearest":
        slates = display_sets_by_nearest_time(item, times, events["session_id"].to_numpy(),
                                              size=size, seed=seed)
    else:
        raise ValueError(f"display must be 'window' or 'nearest', got {display!r}")
    logs = events.drop(columns=["item_id"]).copy()
    logs["slate"] = list(slates)
    logs["click"] = item
    front = ["session_id", "user_id", "step", "slate", "click", "feedback", "reward",
             "timestamp"]
    cols = [c for c in front if c in logs.columns]
    logs = logs[cols + [c for c in logs.columns if c not in cols]]
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


def _first_occurrences(values: np.ndarray) -> np.ndarray:
    """Bool mask of each row's first occurrence (in column order) of every value."""
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    first_sorted = np.ones_like(ordered, dtype=bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first
