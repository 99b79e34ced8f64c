"""Liang et al. (2018) preprocessing, strong-generalisation split and the raw CF formats."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recgym.data import (
    liang_preprocess,
    load_liang_dataset,
    load_ml1m_implicit,
    load_movielens,
    read_ml20m_ratings,
    read_msd_triplets,
    read_netflix,
    strong_generalization_split,
)


def expected_liang_counts(users, items, ratings, min_rating, min_user, min_item=0):
    """Obviously-correct loop: binarise, item filter, then user filter; return counts."""
    pairs = [(u, i) for u, i, r in zip(users, items, ratings, strict=True)
             if min_rating is None or r >= min_rating]
    pairs = list(dict.fromkeys(pairs))
    if min_item:
        item_users = defaultdict(int)
        for _, i in pairs:
            item_users[i] += 1
        pairs = [(u, i) for u, i in pairs if item_users[i] >= min_item]
    user_items = defaultdict(int)
    for u, _ in pairs:
        user_items[u] += 1
    pairs = [(u, i) for u, i in pairs if user_items[u] >= min_user]
    return len(pairs), len({u for u, _ in pairs}), len({i for _, i in pairs})


def check_liang_invariants(kept, min_user, min_rating=None):
    per_user = kept.groupby("user_id").size()
    assert per_user.min() >= min_user
    assert not kept.duplicated(["user_id", "item_id"]).any()
    if min_rating is not None:
        assert kept["rating"].min() >= min_rating


@pytest.mark.parametrize("folder", ["movielens-100k", "movielens-latest-small"])
def test_liang_preprocess_counts_on_real_movielens(shared_data, folder):
    ml = load_movielens(shared_data / folder)
    inter = ml.interactions
    kept = liang_preprocess(inter)
    expected = expected_liang_counts(inter["user_id"].tolist(), inter["item_id"].tolist(),
                                     inter["rating"].tolist(), 4.0, 5)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == expected
    check_liang_invariants(kept, 5, 4.0)


def test_liang_preprocess_known_counts(shared_data):
    # Pinned from the files at hand (and recomputed by the loop above in the test before).
    kept = liang_preprocess(load_movielens(shared_data / "movielens-100k").interactions)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == (
        55_361, 938, 1_447)
    kept = liang_preprocess(load_movielens(shared_data / "movielens-latest-small").interactions)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == (
        48_562, 603, 6_298)


def test_liang_preprocess_msd_style_filters(shared_data):
    inter = load_movielens(shared_data / "movielens-100k").interactions
    kept = liang_preprocess(inter, min_rating=None, min_user_count=20, min_item_count=50)
    expected = expected_liang_counts(inter["user_id"].tolist(), inter["item_id"].tolist(),
                                     inter["rating"].tolist(), None, 20, 50)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == expected
    check_liang_invariants(kept, 20)


def test_ml1m_implicit_lcf_files(shared_data):
    data = load_ml1m_implicit(shared_data / "movielens-1m-implicit-lcf")
    assert (data.num_users, data.num_items) == (6_022, 3_043)
    assert (len(data.train), len(data.test)) == (796_244, 99_455)
    assert data.train["user_id"].nunique() == data.test["user_id"].nunique() == 6_022
    both = pd.concat([data.train, data.test])
    assert not both.duplicated().any(), "no (user, item) pair in both train and test"
    train, test = data.matrix("train"), data.matrix("test")
    assert train.shape == (6_022, 3_043) and train.nnz == 796_244 and test.nnz == 99_455
    assert train.multiply(test).nnz == 0


def test_liang_on_ml1m_implicit(shared_data):
    data = load_ml1m_implicit(shared_data / "movielens-1m-implicit-lcf")
    both = pd.concat([data.train, data.test], ignore_index=True)
    kept = liang_preprocess(both, min_rating=None, min_user_count=5)
    expected = expected_liang_counts(both["user_id"].tolist(), both["item_id"].tolist(),
                                     [1] * len(both), None, 5)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == expected
    assert expected == (895_699, 6_022, 3_043)
    split = strong_generalization_split(kept, 600, seed=0)
    check_split(split, kept)


def check_split(split, data):
    """Users disjoint, held-out histories = fold-in + target, targets int(0.2 n)."""
    sets = [set(split.train_users), set(split.val_users), set(split.test_users)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(map(len, sets)) == data["user_id"].nunique()
    assert split.train.shape == (len(split.train_users), split.num_items)
    train_items = set(data[data["user_id"].isin(sets[0])]["item_id"])
    assert set(split.item_ids) == train_items
    col = {item: c for c, item in enumerate(split.item_ids)}
    for users, fold_in, target in ((split.val_users, split.val_fold_in, split.val_target),
                                   (split.test_users, split.test_fold_in, split.test_target)):
        assert fold_in.multiply(target).nnz == 0
        by_user = data[data["user_id"].isin(users)].groupby("user_id")["item_id"].apply(set)
        for row in range(0, len(users), max(1, len(users) // 25)):  # a sample of users
            u = users[row]
            history = {col[i] for i in by_user.get(u, set()) if i in col}
            f = set(fold_in[row].indices)
            t = set(target[row].indices)
            assert f | t == history
            n = len(history)
            assert len(t) == (int(0.2 * n) if n >= 5 else 0)


def liang_reference_split(data, n_heldout, seed):
    """Straightforward re-statement of Liang et al.'s notebook procedure (slow, per user)."""
    uid = np.array(sorted(data["user_id"].unique()))
    uid = uid[np.random.RandomState(seed).permutation(len(uid))]
    n_users = len(uid)
    tr, vd, te = (uid[:n_users - 2 * n_heldout], uid[n_users - 2 * n_heldout:n_users - n_heldout],
                  uid[n_users - n_heldout:])
    train_plays = data[data["user_id"].isin(tr)]
    sid = list(pd.unique(train_plays["item_id"]))
    show2id = {s: i for i, s in enumerate(sid)}
    profile2id = {u: i for i, u in enumerate(uid)}

    def split_users(users):
        plays = data[data["user_id"].isin(users) & data["item_id"].isin(sid)]
        rng = np.random.RandomState(seed)
        fold, target = [], []
        for _, group in plays.groupby("user_id"):
            n = len(group)
            if n >= 5:
                idx = np.zeros(n, dtype=bool)
                idx[rng.choice(n, size=int(0.2 * n), replace=False)] = True
                fold.append(group[~idx])
                target.append(group[idx])
            else:
                fold.append(group)
        def pairs(frames, offset):
            f = pd.concat(frames) if frames else data.iloc[:0]
            return {(profile2id[u] - offset, show2id[i]) for u, i in zip(
                f["user_id"], f["item_id"], strict=True)}
        return pairs(fold, min(profile2id[u] for u in users)), pairs(
            target, min(profile2id[u] for u in users))

    return sid, tr, vd, te, split_users(vd), split_users(te)


def matrix_pairs(m):
    coo = m.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def test_split_matches_reference_procedure(shared_data):
    data = liang_preprocess(load_movielens(shared_data / "movielens-100k").interactions)
    split = strong_generalization_split(data, 100, seed=98765)
    sid, tr, vd, te, (vf, vt), (tf, tt) = liang_reference_split(data, 100, 98765)
    np.testing.assert_array_equal(split.item_ids, sid)
    np.testing.assert_array_equal(split.train_users, tr)
    np.testing.assert_array_equal(split.val_users, vd)
    np.testing.assert_array_equal(split.test_users, te)
    assert matrix_pairs(split.val_fold_in) == vf and matrix_pairs(split.val_target) == vt
    assert matrix_pairs(split.test_fold_in) == tf and matrix_pairs(split.test_target) == tt
    check_split(split, data)


def test_split_is_seeded_and_deterministic(shared_data):
    data = liang_preprocess(load_movielens(shared_data / "movielens-latest-small").interactions)
    a = strong_generalization_split(data, 50, seed=1)
    b = strong_generalization_split(data, 50, seed=1)
    c = strong_generalization_split(data, 50, seed=2)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert (a.test_target != b.test_target).nnz == 0
    assert (a.val_fold_in != b.val_fold_in).nnz == 0
    assert not np.array_equal(a.test_users, c.test_users)
    check_split(a, data)


def test_split_rejects_too_many_heldout_users():
    data = pd.DataFrame({"user_id": np.repeat(np.arange(10), 5), "item_id": np.tile(range(5), 10)})
    with pytest.raises(ValueError, match="at most 4"):
        strong_generalization_split(data, 5)


# ----------------------------------------------------------------------------- raw formats


def test_ml1m_dat_format(tmp_path, shared_data):
    """The ``::`` format of ML-1M, on a small file written from real ML-100K rows."""
    src = load_movielens(shared_data / "movielens-100k")
    sub = pd.read_csv(shared_data / "movielens-100k" / "u.data", sep="\t", header=None,
                      names=["u", "m", "r", "t"]).head(2000)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in sub.itertuples(index=False)))
    movies = src.items
    lines = []
    for row in movies.itertuples():
        genres = "|".join(c[len("genre_"):] for c in movies.columns
                          if c.startswith("genre_") and getattr(row, c, 0) == 1) or "unknown"
        lines.append(f"{row.movie_id}::{row.title}::{genres}\n")
    (folder / "movies.dat").write_bytes("".join(lines).encode("latin-1"))
    (folder / "users.dat").write_text("".join(
        f"{u}::M::25::4::12345\n" for u in sorted(sub["u"].unique())))
    ml = load_movielens(folder)
    assert ml.name == "ml-1m"
    assert len(ml.interactions) == 2000
    assert ml.num_users == sub["u"].nunique()
    assert ml.num_items == 1682
    assert ml.users["gender"].eq("M").all()
    got = ml.items["movie_id"].to_numpy()[ml.interactions["item_id"].to_numpy()]
    np.testing.assert_array_equal(got, sub["m"].to_numpy())
    np.testing.assert_array_equal(ml.interactions["rating"], sub["r"].astype(np.float32))
    assert ml.items.loc[0, "year"] == 1995 and ml.items.loc[0, "genre_Comedy"] == 1
    raw = read_ml20m_ratings(folder / "ratings.dat")
    assert list(raw.columns) == ["user_id", "item_id", "rating", "timestamp"]
    kept = liang_preprocess(raw)
    expected = expected_liang_counts(raw["user_id"].tolist(), raw["item_id"].tolist(),
                                     raw["rating"].tolist(), 4.0, 5)
    assert (len(kept), kept["user_id"].nunique(), kept["item_id"].nunique()) == expected


def test_ml20m_csv_format_and_load_liang_dataset(shared_data):
    # ml-latest-small's ratings.csv has ML-20M's exact format (userId,movieId,rating,timestamp).
    path = shared_data / "movielens-latest-small" / "ratings.csv"
    raw = read_ml20m_ratings(path)
    assert len(raw) == 100_836 and raw["user_id"].min() == 1  # original ids
    data, split = load_liang_dataset("ml-20m", path, n_heldout_users=50)
    assert len(data) == 48_562
    assert len(split.val_users) == len(split.test_users) == 50
    assert split.train.shape[0] == 603 - 100
    check_split(split, data)


def _netflix_sample():
    return pd.DataFrame({
        "movie": [1, 1, 1, 2, 2, 3, 3, 3, 3],
        "user": [30878, 2647871, 1283744, 30878, 822109, 2647871, 30878, 885013, 1283744],
        "rating": [4, 3, 5, 2, 5, 4, 4, 1, 5],
        "date": ["2005-12-26", "2005-05-03", "2005-11-17", "2004-01-05", "2005-05-13",
                 "2005-10-19", "2005-12-26", "2005-05-03", "2005-11-17"],
    })


def test_netflix_formats(tmp_path):
    sample = _netflix_sample()
    combined = []
    for movie, block in sample.groupby("movie"):
        combined.append(f"{movie}:\n")
        combined += [f"{u},{r},{d}\n" for u, r, d in
                     block[["user", "rating", "date"]].itertuples(index=False)]
        single = [f"{movie}:\n"] + [f"{u},{r},{d}\n" for u, r, d in
                                     block[["user", "rating", "date"]].itertuples(index=False)]
        (tmp_path / "training_set").mkdir(exist_ok=True)
        (tmp_path / "training_set" / f"mv_{movie:07d}.txt").write_text("".join(single))
    (tmp_path / "combined_data_1.txt").write_text("".join(combined))
    a = read_netflix(tmp_path / "combined_data_1.txt")
    b = read_netflix(tmp_path / "training_set")
    for got in (a, b):
        np.testing.assert_array_equal(got["item_id"], sample["movie"])
        np.testing.assert_array_equal(got["user_id"], sample["user"])
        np.testing.assert_array_equal(got["rating"], sample["rating"])
        assert got["date"].iloc[0] == pd.Timestamp("2005-12-26")
    kept = liang_preprocess(a, min_user_count=2)
    assert set(kept["user_id"]) == {30878, 1283744}
    (tmp_path / "bad.txt").write_text("30878,4,2005-12-26\n")
    with pytest.raises(ValueError, match="MovieID:"):
        read_netflix(tmp_path / "bad.txt")


def test_msd_triplets_format(tmp_path):
    # MSD-shaped: 400 users, 40 songs with skewed popularity, so that the preset filters
    # (songs >= 200 users, then users >= 20 songs) both remove something.
    rng = np.random.default_rng(0)
    users = [f"{h:040x}" for h in rng.integers(0, 2**62, size=400)]
    songs = [f"SO{h:016X}" for h in rng.integers(0, 2**62, size=40)]
    popularity = np.linspace(1.0, 0.3, 40)
    lines = []
    for u in users:
        for s, p in zip(songs, popularity, strict=True):
            if rng.random() < p:
                lines.append(f"{u}\t{s}\t{rng.integers(1, 9)}\n")
    (tmp_path / "train_triplets.txt").write_text("".join(lines))
    raw = read_msd_triplets(tmp_path / "train_triplets.txt")
    assert len(raw) == len(lines) and raw["user"].nunique() == raw["user_id"].nunique() == 400
    kept = liang_preprocess(raw, min_rating=None, min_user_count=20, min_item_count=200)
    expected = expected_liang_counts(raw["user"].tolist(), raw["song"].tolist(),
                                     [1] * len(raw), None, 20, 200)
    assert (len(kept), kept["user"].nunique(), kept["song"].nunique()) == expected
    assert 0 < expected[1] < 400 and 0 < expected[2] < 40, "both filters bite"
    data, split = load_liang_dataset("msd", tmp_path / "train_triplets.txt",
                                     n_heldout_users=20)
    assert len(data) == expected[0]
    check_split(split, data)


def test_planted_interactions_follow_the_planted_model():
    from recgym.data.cf import planted_interactions

    frame = planted_interactions(400, 200, seed=3)
    assert frame.equals(planted_interactions(400, 200, seed=3))
    assert not frame.equals(planted_interactions(400, 200, seed=4))
    per_user = frame.groupby("user_id").size()
    assert len(per_user) == 400 and per_user.min() >= 5 and per_user.max() <= 50
    assert not frame.duplicated().any()  # items drawn without replacement
    counts = np.bincount(frame["item_id"], minlength=200)
    assert counts[:10].sum() > 5 * counts[-10:].sum()  # the popularity bias ranks items 0 first
    # the taste term is personal: two users' histories overlap less than popularity alone gives

    def overlap(f: pd.DataFrame) -> float:
        x = np.zeros((400, 200))
        x[f["user_id"], f["item_id"]] = 1.0
        shared = x @ x.T / np.sqrt(np.outer(x.sum(1), x.sum(1)))
        return float(shared[np.triu_indices(400, 1)].mean())

    assert overlap(frame) < 0.9 * overlap(planted_interactions(400, 200, seed=3, taste_scale=0.0))


def test_load_cf_data_reads_planted_names_and_refuses_bad_ones():
    from agents.cf.train import load_cf_data

    data = load_cf_data("planted-300x100-s2")
    assert data.name == "planted-300x100-s2" and data.train.shape[0] == 240
    with pytest.raises(ValueError, match="planted-<users>x<items>"):
        load_cf_data("planted-300")
    with pytest.raises(ValueError, match="too small"):
        load_cf_data("planted-5x100")


def test_cf_quality_report_gives_paired_t_intervals(benchmark_module, tmp_path, capsys):
    """Paired test differences and stage-3 gains come with their 95% t interval over seeds."""
    bench = benchmark_module("cf_quality")
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "split.txt").write_text("toy split")
    for seed, (vae, ract, stage1, stage3) in enumerate([(0.30, 0.31, 0.30, 0.32),
                                                        (0.30, 0.32, 0.30, 0.33)]):
        history = [{"stage": "actor", "valid_ndcg@100": stage1},
                   {"stage": "actor-critic", "valid_ndcg@100": stage3}]
        for model, value in (("mult-vae", vae), ("ract", ract)):
            test = {m: {"mean": value, "sem": 0.01} for m in bench.METRICS}
            record = {"model": model, "seed": seed, "test": test, "train_seconds": 1.0,
                      "history": history if model == "ract" else []}
            (folder / f"{model}-toy-seed{seed}.json").write_text(json.dumps(record))
    bench.main(["--report", "--runs", str(tmp_path)])
    text = capsys.readouterr().out
    half = stats.t.ppf(0.975, 1) * 0.005  # two seeds: differences 0.01 and 0.02
    assert f"* ract: 0.0150 ± 0.0050 [{0.015 - half:+.4f}, {0.015 + half:+.4f}] (2 seed(s))" in text
    assert "* ract: 0.0250 ± 0.0050" in text  # stage-3 gains 0.02 and 0.03
