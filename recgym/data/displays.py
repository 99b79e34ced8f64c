"""Display sets: rebuilding the page a user saw, for data that logs choices but not impressions.

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

Every builder returns an int64 array (events, size) holding the clicked item once, in a
random position, and ``size - 1`` distinct other items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Events handled per vectorised block, bounding the (rows, draws) scratch arrays.
_CHUNK_ROWS = 4096


def _finish_slates(
    others: np.ndarray, clicked: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Add the clicked item to each row of `others` and shuffle every row."""
    slates = np.concatenate([others, clicked[:, None]], axis=1)
    order = np.argsort(rng.random(slates.shape), axis=1)
    return np.take_along_axis(slates, order, axis=1)


def _first_occurrences(values: np.ndarray) -> np.ndarray:
    """Bool mask of each row's first occurrence (in column order) of every value."""
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    first_sorted = np.ones_like(ordered, dtype=bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


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
    members = [known[bucket_of == bucket] for bucket in range(len(bucket_years))]
    counts = np.array([len(m) for m in members])
    event_year = pd.to_datetime(np.asarray(times), unit="s").year.to_numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((len(clicked), size - 1), dtype=np.int64)
    for year in np.unique(event_year):
        rows = np.flatnonzero(event_year == year)
        distance = bucket_years - year
        if released_before:
            # this year and earlier (nearest first), then later years (nearest first)
            order = np.lexsort((np.abs(distance), distance > 0))
        else:
            order = np.lexsort((distance, np.abs(distance)))
        cumulative = np.cumsum(counts[order])
        boundary = int(np.searchsorted(cumulative, size))  # first bucket reaching `size`
        full = (np.concatenate([members[b] for b in order[:boundary]])
                if boundary else np.zeros(0, np.int64))
        last = members[order[boundary]]
        need = size - len(full)
        for start in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[start:start + _CHUNK_ROWS]
            n_chunk = len(chunk)
            keys = rng.random((n_chunk, len(last)))
            pick = np.argpartition(keys, need - 1, axis=1)[:, :need]
            pick = np.take_along_axis(pick, np.argsort(
                np.take_along_axis(keys, pick, axis=1), axis=1), axis=1)
            drawn = np.concatenate([np.broadcast_to(full, (n_chunk, len(full))), last[pick]],
                                   axis=1)
            # Drop the clicked item if drawn, else the boundary item with the largest key:
            # either way the rest is a uniform draw among the other items.
            hit = drawn == clicked[chunk, None]
            drop = np.where(hit.any(axis=1), hit.argmax(axis=1), size - 1)
            keep = np.ones((n_chunk, size), dtype=bool)
            keep[np.arange(n_chunk), drop] = False
            out[chunk] = drawn[keep].reshape(n_chunk, size - 1)
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
    activity_items = clicked if event_items is None else np.asarray(event_items, dtype=np.int64)
    activity_times = times if event_times is None else np.asarray(event_times, dtype=np.float64)
    distinct = np.unique(activity_items)
    if len(distinct) < size:
        raise ValueError(f"the log has {len(distinct)} distinct items; need >= {size} "
                         "for display sets of that size")
    order = np.argsort(activity_times, kind="stable")
    sorted_times, sorted_items = activity_times[order], activity_items[order]
    span = float(sorted_times[-1] - sorted_times[0]) + 1.0
    rng = np.random.default_rng(seed)
    need = size - 1
    base_draws = max(4 * need, 32)
    draws = base_draws
    out = np.full((len(clicked), need), -1, dtype=np.int64)
    todo = np.arange(len(clicked))
    half = float(window)
    while len(todo):
        wide = half > 2 * span
        for start in range(0, len(todo), _CHUNK_ROWS):
            chunk = todo[start:start + _CHUNK_ROWS]
            n_chunk = len(chunk)
            if wide:
                low, high = np.zeros(n_chunk, np.int64), np.full(n_chunk, len(sorted_times))
            else:
                low = np.searchsorted(sorted_times, times[chunk] - half, side="left")
                high = np.searchsorted(sorted_times, times[chunk] + half, side="right")
            width = high - low
            position = low[:, None] + (rng.random((n_chunk, draws))
                                       * width[:, None]).astype(np.int64)
            candidates = sorted_items[np.minimum(position, len(sorted_items) - 1)]
            valid = (width[:, None] > 0) & (candidates != clicked[chunk, None])
            # keep first occurrences only (stable sort puts the earliest draw first)
            valid &= _first_occurrences(candidates)
            enough = valid.sum(axis=1) >= need
            if enough.any():
                usable = valid[enough]
                take = usable & (np.cumsum(usable, axis=1) <= need)
                out[chunk[enough]] = candidates[enough][take].reshape(-1, need)
            if wide and not enough.all():
                # Whole log as the window and still short: sample the distinct items.
                for row in chunk[~enough]:
                    pool = distinct[distinct != clicked[row]]
                    out[row] = rng.choice(pool, size=need, replace=False)
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
    activity_items = clicked if event_items is None else np.asarray(event_items, dtype=np.int64)
    activity_times = times if event_times is None else np.asarray(event_times, dtype=np.float64)
    activity_sessions = sessions if event_sessions is None else np.asarray(event_sessions)
    n_distinct = len(np.unique(activity_items))
    if n_distinct < size:
        raise ValueError(f"the activity log has {n_distinct} distinct items; "
                         f"need >= {size} for display sets of that size")
    order = np.argsort(activity_times, kind="stable")
    sorted_times = activity_times[order]
    sorted_items = activity_items[order]
    sorted_sessions = activity_sessions[order]
    need = size - 1
    out = np.full((len(clicked), need), -1, dtype=np.int64)
    todo = np.arange(len(clicked))
    reach = 4 * size
    while len(todo):
        reach = min(reach, len(sorted_times))
        offsets = np.arange(-reach, reach)
        for start in range(0, len(todo), _CHUNK_ROWS):
            chunk = todo[start:start + _CHUNK_ROWS]
            position = np.searchsorted(sorted_times, times[chunk])[:, None] + offsets
            inside = (position >= 0) & (position < len(sorted_times))
            position = position.clip(0, len(sorted_times) - 1)
            candidates = sorted_items[position]
            gap = np.where(inside & (sorted_sessions[position] != sessions[chunk, None])
                           & (candidates != clicked[chunk, None]),
                           np.abs(sorted_times[position] - times[chunk, None]), np.inf)
            by_gap = np.argsort(gap, axis=1, kind="stable")
            candidates = np.take_along_axis(candidates, by_gap, axis=1)
            valid = np.isfinite(np.take_along_axis(gap, by_gap, axis=1))
            # keep each item's nearest occurrence only
            valid &= _first_occurrences(candidates)
            enough = valid.sum(axis=1) >= need
            take = valid[enough] & (np.cumsum(valid[enough], axis=1) <= need)
            out[chunk[enough]] = candidates[enough][take].reshape(-1, need)
        todo = todo[out[todo, 0] < 0]
        if len(todo) and reach >= len(sorted_times):
            raise ValueError(f"{len(todo)} events have fewer than {need} other items clicked "
                             "by other sessions; use smaller display sets")
        reach *= 4
    return _finish_slates(out, clicked, np.random.default_rng(seed))
