"""Ratings and click streams into page views: sessions, display sets, feedback classes, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recgym.data import (
    LogDataset,
    display_sets_by_release,
    display_sets_by_time_window,
    feedback_from_events,
    feedback_from_ratings,
    gan_user_model_split,
    load_movielens,
    load_yoochoose,
    movielens_to_logs,
    sample_users,
    split_by_session,
    split_by_user,
    split_ids,
    timelines_to_sessions,
)


def year_ts(year: int, month: int = 6) -> int:
    return int(pd.Timestamp(f"{year}-{month:02d}-01", tz="UTC").timestamp())


def check_display_sets(slates, clicked, size):
    assert slates.shape == (len(clicked), size) and slates.dtype == np.int64
    assert ((slates == clicked[:, None]).sum(axis=1) == 1).all(), "clicked item exactly once"
    srt = np.sort(slates, axis=1)
    assert not (srt[:, 1:] == srt[:, :-1]).any(), "no repeats"


def test_feedback_classes():
    np.testing.assert_array_equal(feedback_from_ratings([0.5, 3.5, 4.0, 5.0]), [0, 0, 1, 1])
    np.testing.assert_array_equal(feedback_from_ratings([2, 3], threshold=3), [0, 1])
    np.testing.assert_array_equal(
        feedback_from_events([False, True, False], clicked=[False, True, True]), [0, 2, 1])


def test_timelines_to_sessions():
    inter = pd.DataFrame({
        "user_id": [2, 1, 1, 1, 2, 1],
        "item_id": [5, 3, 1, 2, 6, 4],
        "timestamp": [50, 10, 10, 5000, 60, 20],
    })
    one = timelines_to_sessions(inter)
    assert one["session_id"].tolist() == [0, 0, 0, 0, 1, 1]
    assert one["step"].tolist() == [0, 1, 2, 3, 0, 1]
    assert one["item_id"].tolist() == [1, 3, 4, 2, 5, 6]  # time order, item id breaks ties
    gap = timelines_to_sessions(inter, session_gap=1000)
    assert gap["session_id"].tolist() == [0, 0, 0, 1, 2, 2]
    cut = timelines_to_sessions(inter, max_session_length=2)
    assert cut["session_id"].tolist() == [0, 0, 1, 1, 2, 2]
    assert cut["step"].tolist() == [0, 1, 0, 1, 0, 1]


def test_display_sets_by_release_picks_nearest_earlier_years():
    # 10 items per year 2000..2009; with size 15 a 2005 rating takes all of 2005 and 5 of 2004
    release = np.repeat(np.arange(2000, 2010), 10).astype(float)
    clicked = np.array([55, 55, 3, 99])
    times = np.array([year_ts(2005)] * 3 + [year_ts(2009)])
    slates = display_sets_by_release(clicked, times, release, size=15, seed=0)
    check_display_sets(slates, clicked, 15)
    for row, click in enumerate(clicked):
        others = slates[row][slates[row] != click]
        years = release[others]
        year = 2005 if row < 3 else 2009
        assert (years <= year).all(), "nothing released after the rating"
        expected_full = set(np.flatnonzero(release == year)) - {click}
        assert expected_full <= set(others)  # the nearest year fully included
    # row 2 clicked a 2000 movie (not in the pool): 10 of 2005 + 4 of 2004
    assert np.sort(release[slates[2][slates[2] != 3]]).tolist() == [2004] * 4 + [2005] * 10
    assert not np.array_equal(slates[0], slates[1]), "random fillers and order differ per row"


def test_display_sets_by_release_is_seeded_and_uniform():
    release = np.repeat([1999.0, 2000.0], [30, 30])
    clicked = np.full(4000, 45)
    times = np.full(4000, year_ts(2000))
    a = display_sets_by_release(clicked, times, release, size=40, seed=3)
    b = display_sets_by_release(clicked, times, release, size=40, seed=3)
    c = display_sets_by_release(clicked, times, release, size=40, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # all 29 other 2000 movies in every set; 10 of the 30 1999 movies, uniformly
    assert np.isin(np.arange(30, 60), a).all()
    freq = np.bincount(a[a < 30], minlength=30) / len(a)
    np.testing.assert_allclose(freq, 10 / 30, atol=0.04)
    # the clicked item's position is uniform over the 40 slots
    pos = np.argmax(a == 45, axis=1)
    assert np.bincount(pos, minlength=40).min() > 50


def test_display_sets_by_release_both_directions_and_unknown_years():
    release = np.array([np.nan] + [2001.0] * 5 + [2003.0] * 5)
    clicked = np.array([0])
    slates = display_sets_by_release(clicked, [year_ts(2002)], release, size=8, seed=0,
                                     released_before=False)
    check_display_sets(slates, clicked, 8)
    with pytest.raises(ValueError, match="release year"):
        display_sets_by_release(clicked, [year_ts(2002)], release, size=20)


def test_display_sets_by_time_window():
    rng = np.random.default_rng(0)
    n = 3000
    times = np.sort(rng.uniform(0, 100_000, n))
    clicked = rng.integers(0, 300, n)
    slates = display_sets_by_time_window(clicked, times, size=10, window=600.0, seed=1)
    check_display_sets(slates, clicked, 10)
    # fillers come from items active within the window when enough are active
    checked = 0
    for row in rng.choice(n, 50, replace=False):
        lo = np.searchsorted(times, times[row] - 600, side="left")
        hi = np.searchsorted(times, times[row] + 600, side="right")
        active = set(clicked[lo:hi].tolist())
        if len(active - {clicked[row]}) >= 9:
            assert set(slates[row].tolist()) <= active
            checked += 1
    assert checked > 10
    again = display_sets_by_time_window(clicked, times, size=10, window=600.0, seed=1)
    np.testing.assert_array_equal(slates, again)


def test_display_sets_by_time_window_widens_when_sparse():
    times = np.array([0.0, 1.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0])
    clicked = np.array([0, 1, 2, 3, 4, 5])
    slates = display_sets_by_time_window(clicked, times, size=4, window=5.0, seed=0)
    check_display_sets(slates, clicked, 4)
    with pytest.raises(ValueError, match="distinct items"):
        display_sets_by_time_window(clicked, times, size=7)


def test_movielens_page_views_validate_and_follow_release_years(shared_data):
    ml = load_movielens(shared_data / "movielens-100k")
    logs = movielens_to_logs(ml, seed=0)
    assert isinstance(logs, LogDataset)
    assert len(logs) == 100_000 and logs.slate_size == 40 and logs.num_sessions == 943
    df = logs.logs
    assert (df["click"] >= 0).all()
    assert df["feedback"].sum() == (ml.interactions["rating"] >= 4).sum() == 55_375
    slates = logs.slates()
    check_display_sets(slates, df["click"].to_numpy(), 40)
    year = ml.items["year"].to_numpy(dtype=float, na_value=np.nan)
    rating_year = pd.to_datetime(df["timestamp"], unit="s").dt.year.to_numpy()
    others = slates[slates != df["click"].to_numpy()[:, None]].reshape(len(df), 39)
    assert (year[others] <= rating_year[:, None]).all()
    assert np.isfinite(year[others]).all()
    for _, g in df.groupby("session_id"):  # steps follow time
        assert (np.diff(g["timestamp"].to_numpy()) >= 0).all()
        assert g["step"].tolist() == list(range(len(g)))
    again = movielens_to_logs(ml, seed=0)
    assert again.equals(logs)


def test_movielens_click_threshold(shared_data):
    ml = load_movielens(shared_data / "movielens-latest-small")
    logs = movielens_to_logs(ml, click_threshold=4.0, size=20)
    clicked = logs.logs["click"].to_numpy() >= 0
    assert clicked.sum() == (ml.interactions["rating"] >= 4).sum()
    assert logs.slate_size == 20


def test_session_page_views_validate(shared_data):
    data = load_yoochoose(shared_data / "yoochoose-clicks-100k", part="test")
    logs = data.to_logs(size=10, window=1800, seed=0)
    assert len(logs) == 13_568 and logs.num_sessions == 3_416 and logs.slate_size == 10
    np.testing.assert_array_equal(logs.logs["click"], data.events["item_id"])
    assert "part" in logs.logs.columns


# ----------------------------------------------------------------------------- splits


def test_split_ids_sizes_and_validation():
    tr, va, te = split_ids(np.arange(1000), (0.5, 0.125, 0.375), seed=0)
    assert (len(tr), len(va), len(te)) == (500, 125, 375)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 1000
    with pytest.raises(ValueError, match="summing to 1"):
        split_ids(np.arange(10), (0.5, 0.5, 0.5), seed=0)


def test_gan_user_model_split_on_logs(shared_data):
    logs = movielens_to_logs(load_movielens(shared_data / "movielens-latest-small"), size=10)
    split = gan_user_model_split(logs, seed=0)
    users = [set(p.logs["user_id"]) for p in (split.train, split.val, split.test)]
    assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    assert [len(u) for u in users] == [305, 76, 229]  # 610 users: 50% / 12.5% / 37.5%
    assert len(split.train) + len(split.val) + len(split.test) == len(logs)
    assert split.train.num_items == logs.num_items
    again = gan_user_model_split(logs, seed=0)
    assert again.test.equals(split.test)
    other = gan_user_model_split(logs, seed=1)
    assert set(other.test_ids) != set(split.test_ids)


def test_split_by_user_and_session_on_frames():
    df = pd.DataFrame({"user_id": np.repeat(np.arange(20), 3), "session_id": np.arange(60)})
    by_user = split_by_user(df, (0.6, 0.2, 0.2), seed=5)
    parts = [set(p["user_id"]) for p in (by_user.train, by_user.val, by_user.test)]
    assert [len(p) for p in parts] == [12, 4, 4] and len(set.union(*parts)) == 20
    by_sess = split_by_session(df, seed=5)
    sess = [set(p["session_id"]) for p in (by_sess.train, by_sess.val, by_sess.test)]
    assert [len(s) for s in sess] == [48, 6, 6]
    assert not (sess[0] & sess[1]) and not (sess[0] & sess[2])
    with pytest.raises(KeyError, match="split_by_session"):
        split_by_user(df.drop(columns="user_id"))


def test_sample_users(shared_data):
    inter = load_movielens(shared_data / "movielens-100k").interactions
    sample = sample_users(inter, 100, seed=0, min_interactions=50)
    assert sample["user_id"].nunique() == 100
    assert sample.groupby("user_id").size().min() >= 50
    assert sample.equals(sample_users(inter, 100, seed=0, min_interactions=50))
    with pytest.raises(ValueError, match="only"):
        sample_users(inter, 10_000, seed=0)
