"""Loaders reproduce the counts stated in each ../shared/data README; downloads; shipped data."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recgym.data import (
    ChecksumError,
    LogDataset,
    download_file,
    envs_data_path,
    extract_zip,
    load_coat,
    load_diginetica,
    load_movielens,
    load_open_bandit,
    load_yoochoose,
    sha256_of,
    shipped_dataset_path,
)
from recgym.data import movielens as ml_module

# ----------------------------------------------------------------------------- MovieLens


def test_movielens_100k_counts(shared_data):
    ml = load_movielens("ml-100k", root=shared_data)
    assert ml.name == "ml-100k"
    r = ml.interactions
    assert len(r) == 100_000 and ml.num_users == 943 and ml.num_items == 1_682
    assert r["user_id"].nunique() == 943 and r["item_id"].nunique() == 1_682
    hist = r["rating"].value_counts().sort_index().to_dict()
    assert hist == {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert (r["timestamp"].min(), r["timestamp"].max()) == (874_724_710, 893_286_638)
    assert ml.users["raw_user_id"].tolist() == list(range(1, 944))
    assert ml.items["movie_id"].tolist() == list(range(1, 1683))
    genres = ml.items.filter(like="genre_")
    assert genres.shape[1] == 19
    assert (genres.sum(axis=1) >= 1).all() and (genres.sum(axis=1) > 1).sum() == 849
    assert ml.items["year"].notna().sum() == 1_681  # one movie has no release date
    assert set(ml.users.columns) == {"raw_user_id", "age", "gender", "occupation", "zip"}


def test_movielens_latest_small_counts(shared_data):
    ml = load_movielens("ml-latest-small", root=shared_data)
    r = ml.interactions
    assert len(r) == 100_836 and ml.num_users == 610
    assert r["item_id"].nunique() == 9_724 and ml.num_items == 9_742
    assert (r["timestamp"].min(), r["timestamp"].max()) == (828_124_615, 1_537_799_250)
    assert r["rating"].nunique() == 10 and r["rating"].min() == 0.5
    assert len(ml.tags) == 3_683
    labels = [c for c in ml.items.columns if c.startswith("genre_")]
    assert len(labels) == 20 and "genre_(no genres listed)" in labels
    toy = ml.items.iloc[0]
    assert toy["title"] == "Toy Story (1995)" and toy["year"] == 1995
    assert toy["genre_Animation"] == 1 and toy["imdb_id"] == "0114709"


def test_movielens_ids_map_back_to_raw_files(shared_data):
    ml = load_movielens(shared_data / "movielens-latest-small")
    raw = pd.read_csv(shared_data / "movielens-latest-small" / "ratings.csv")
    np.testing.assert_array_equal(
        ml.items["movie_id"].to_numpy()[ml.interactions["item_id"]], raw["movieId"])
    np.testing.assert_array_equal(
        ml.users["raw_user_id"].to_numpy()[ml.interactions["user_id"]], raw["userId"])


def test_shipped_ml_latest_small_is_the_default_and_identical(shared_data):
    folder = shipped_dataset_path("ml-latest-small")
    assert folder.parent == envs_data_path()
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "README.grouplens.txt"):
        assert sha256_of(folder / name) == sha256_of(
            shared_data / "movielens-latest-small" / name), name
    assert sha256_of(folder / "ratings.csv") == (
        "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646")
    ml = load_movielens("ml-latest-small")  # no root: the shipped copy
    assert ml.path == folder and len(ml.interactions) == 100_836


def test_shipped_data_cards_and_licences():
    root = envs_data_path()
    assert "ml-latest-small" in (root / "README.md").read_text()
    card = (root / "ml-latest-small" / "README.md").read_text()
    assert "redistribution" in card.lower() and "100,836" in card
    assert "redistribute" in (root / "ml-latest-small" / "README.grouplens.txt").read_text()
    obd = root / "open-bandit-dataset-small"
    assert "Apache" in (obd / "LICENSE").read_text() and "Apache" in (obd / "README.md").read_text()
    shipped = {p.name for p in root.iterdir() if p.is_dir()}
    assert shipped == {"ml-latest-small", "open-bandit-dataset-small"}, (
        "MovieLens 100K/1M/20M, Coat, YooChoose, DIGINETICA must not be shipped")
    datasets = sum(p.stat().st_size for name in shipped for p in (root / name).rglob("*")
                   if p.is_file())
    everything = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert datasets < 6_000_000 and everything < 12_000_000  # keep the package light


def test_load_movielens_missing_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_movielens("ml-1m", root=tmp_path)
    with pytest.raises(ValueError, match="unknown MovieLens release"):
        load_movielens("ml-5m", root=tmp_path)


# ----------------------------------------------------------------------------- downloads


def test_download_file_checks_sha256_and_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"recgym" * 1000)
    digest = sha256_of(src)
    dest = tmp_path / "out" / "file.bin"
    got = download_file(src.as_uri(), dest, sha256=digest, progress=False, chunk_bytes=512)
    assert got == dest and dest.read_bytes() == src.read_bytes()
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download_file(src.as_uri(), tmp_path / "bad.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "bad.bin").exists()
    assert not list(tmp_path.rglob("*.part")), "no partial file left behind"
    # A stale file with the wrong digest is replaced; a matching one is kept.
    dest.write_bytes(b"stale")
    download_file(str(src), dest, sha256=digest, progress=False)  # plain local path
    assert dest.read_bytes() == src.read_bytes()


def test_extract_zip_refuses_unsafe_members(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("ml-x/a.txt", "a")
    out = extract_zip(good, tmp_path / "unpacked")
    assert (out / "ml-x" / "a.txt").read_text() == "a"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="unsafe path"):
        extract_zip(evil, tmp_path / "evil")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "evil").exists()


def test_download_movielens_from_local_mirror(tmp_path, shared_data, monkeypatch):
    # Build an ml-100k.zip from the real files, serve it by file:// URL, pin its digest.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in ("u.data", "u.item", "u.user", "u.genre"):
            zf.write(shared_data / "movielens-100k" / f, f"ml-100k/{f}")
    release = ml_module.MOVIELENS_RELEASES["ml-100k"]
    patched = ml_module.MovieLensRelease(release.name, release.archive, sha256_of(archive),
                                         archive.stat().st_size, release.n_ratings,
                                         release.n_users, False)
    monkeypatch.setitem(ml_module.MOVIELENS_RELEASES, "ml-100k", patched)
    monkeypatch.setattr(ml_module, "GROUPLENS_URL", mirror.as_uri() + "/")
    root = tmp_path / "data"
    ml = load_movielens("ml-100k", root=root, download=True)
    assert len(ml.interactions) == 100_000 and ml.path == root / "ml-100k"
    assert load_movielens("100k", root=root).path == root / "ml-100k"  # found, no download
    # A corrupted mirror is caught by the checksum.
    archive.write_bytes(b"corrupt")
    with pytest.raises(ChecksumError):
        load_movielens("ml-100k", root=tmp_path / "other", download=True)


def test_pinned_checksums_present():
    for release in ml_module.MOVIELENS_RELEASES.values():
        assert len(release.sha256) == 64 and release.url.startswith("https://files.grouplens")
    assert [r.name for r in ml_module.MOVIELENS_RELEASES.values() if r.redistributable] == [
        "ml-latest-small"]


# ----------------------------------------------------------------------------- Open Bandit

OBD_EXPECTED = {  # README table: items, clicks, propensity min, max
    ("random", "all"): (80, 38, 0.0125, 0.0125),
    ("random", "men"): (34, 46, 1 / 34, 1 / 34),
    ("random", "women"): (46, 46, 1 / 46, 1 / 46),
    ("bts", "all"): (80, 42, 4.5e-05, 0.95424),
    ("bts", "men"): (34, 69, 0.000165, 0.72529),
    ("bts", "women"): (46, 46, 1e-06, 0.9628),
}


@pytest.mark.parametrize("policy, campaign", list(OBD_EXPECTED))
def test_open_bandit_counts(shared_data, policy, campaign):
    items, clicks, pmin, pmax = OBD_EXPECTED[(policy, campaign)]
    data = load_open_bandit(shared_data / "open-bandit-dataset-small", policy, campaign)
    rec = data.records
    assert len(rec) == 10_000 and data.num_items == items
    assert rec["item_id"].nunique() == items and int(rec["click"].sum()) == clicks
    assert rec["propensity"].min() == pytest.approx(pmin, rel=1e-3)
    assert rec["propensity"].max() == pytest.approx(pmax, rel=1e-3)
    assert set(rec["position"]) == {0, 1, 2}
    assert rec["timestamp"].min() >= pd.Timestamp("2019-11-24", tz="UTC")
    assert rec["timestamp"].max() < pd.Timestamp("2019-12-01", tz="UTC")
    assert rec.shape[1] + 1 == {80: 90, 34: 44, 46: 56}[items]  # + the unnamed index column
    logs = data.to_logs()
    assert isinstance(logs, LogDataset) and len(logs) == 10_000
    assert (logs.logs["click"] >= 0).sum() == clicks
    np.testing.assert_allclose(logs.logs["propensity"], rec["propensity"])


def test_shipped_open_bandit_is_the_default_and_identical(shared_data):
    folder = shipped_dataset_path("open-bandit-dataset-small")
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            rel = Path(policy) / campaign
            for name in (f"{campaign}.csv.gz", "item_context.csv"):
                assert sha256_of(folder / rel / name) == sha256_of(
                    shared_data / "open-bandit-dataset-small" / rel / name)
    default = load_open_bandit(policy="bts", campaign="men")
    assert int(default.records["click"].sum()) == 69
    with gzip.open(folder / "random" / "all" / "all.csv.gz", "rb") as fh:
        import hashlib

        assert hashlib.sha256(fh.read()).hexdigest().startswith("7168295b")


def test_open_bandit_bad_arguments():
    with pytest.raises(ValueError, match="policy must be one of"):
        load_open_bandit(policy="greedy")


# ----------------------------------------------------------------------------- Coat


def test_coat_counts(shared_data):
    coat = load_coat(shared_data / "coat")
    assert (coat.num_users, coat.num_items) == (290, 300)
    assert len(coat.train) == 6_960 and len(coat.test) == 4_640
    assert coat.train.groupby("user_id").size().eq(24).all()
    assert coat.test.groupby("user_id").size().eq(16).all()
    assert set(coat.train["rating"]) == set(coat.test["rating"]) == {1, 2, 3, 4, 5}
    both = coat.train.merge(coat.test, on=["user_id", "item_id"])
    assert len(both) == 366
    assert coat.propensities.min() == pytest.approx(0.0025, abs=5e-5)
    assert coat.propensities.max() == pytest.approx(0.690, abs=5e-4)
    assert coat.user_features.shape == (290, 14) and coat.item_features.shape == (300, 33)
    assert coat.item_features.columns[0] == "gender:men"
    for part in ("train", "test"):
        logs = coat.to_logs(part)
        assert logs.num_sessions == 290
        positives = (getattr(coat, part)["rating"] >= 4).sum()
        assert (logs.logs["click"] >= 0).sum() == positives == logs.logs["feedback"].sum()
    np.testing.assert_allclose(coat.to_logs("test").logs["propensity"], 16 / 300)


# ----------------------------------------------------------------------------- sessions


def test_yoochoose_counts(shared_data):
    folder = shared_data / "yoochoose-clicks-100k"
    expected = {"train": (70_278, 17_794, 2_933, 58), "test": (13_568, 3_416, 1_771, 78)}
    for part, (rows, sessions, items, longest) in expected.items():
        data = load_yoochoose(folder, part=part)
        ev = data.events
        assert len(ev) == rows and ev["session_id"].nunique() == sessions
        assert ev["item_id"].nunique() == items
        lengths = ev.groupby("session_id").size()
        assert lengths.min() == 2 and lengths.max() == longest
    both = load_yoochoose(folder)
    assert len(both.events) == 70_278 + 13_568 and both.num_items == 2_933
    test_items = set(both.events.loc[both.events["part"] == "test", "item_id"])
    assert test_items <= set(both.events.loc[both.events["part"] == "train", "item_id"])
    ev = both.events
    assert (ev.groupby("session_id")["time"].diff().dropna() >= 0).all()
    assert (ev["feedback"] == 1).all() and (ev["reward"] == 0).all()


def test_yoochoose_raw_format_with_buys(tmp_path):
    clicks = [
        "1,2014-04-07T10:51:09.277Z,214536502,0",
        "1,2014-04-07T10:54:09.868Z,214536500,0",
        "1,2014-04-07T10:54:46.998Z,214536506,0",
        "2,2014-04-07T13:56:37.614Z,214662742,0",
        "2,2014-04-07T13:57:19.373Z,214825110,S",
        "2,2014-04-07T13:58:37.446Z,214757390,2053",
    ]
    buys = [
        "1,2014-04-07T10:55:00.000Z,214536500,1046,1",  # bought after viewing it
        "2,2014-04-07T14:10:00.000Z,214500000,500,2",  # bought, never viewed
        "9,2014-04-07T14:10:00.000Z,214536502,500,1",  # session not in clicks
    ]
    (tmp_path / "yoochoose-clicks.dat").write_text("\n".join(clicks) + "\n")
    (tmp_path / "yoochoose-buys.dat").write_text("\n".join(buys) + "\n")
    data = load_yoochoose(tmp_path)
    ev = data.events
    assert data.stats["purchase_rows"] == 2 and data.stats["purchases_matched"] == 1
    assert data.stats["purchases_added"] == 1
    assert len(ev) == 7 and data.num_items == 7
    bought = ev[ev["feedback"] == 2]
    assert set(data.items.loc[bought["item_id"], "raw_item_id"]) == {214536500, 214500000}
    assert (bought["reward"] == 1.0).all()
    s1 = ev[ev["session_id"] == 1]
    assert s1["step"].tolist() == [0, 1, 2]
    assert s1["timestamp"].iloc[0] == int(pd.Timestamp("2014-04-07T10:51:09Z").timestamp())
    dropped = load_yoochoose(tmp_path, unmatched_purchases="drop")
    assert len(dropped.events) == 6 and dropped.stats["purchases_dropped"] == 1


def test_diginetica_counts(shared_data):
    folder = shared_data / "diginetica-cikm2016"
    views = load_diginetica(folder, unmatched_purchases="drop")
    ev = views.events
    assert len(ev) == 12_391 and ev["session_id"].nunique() == 2_986
    assert views.num_items == 7_139
    assert views.stats["items_without_category"] == 0
    assert views.stats["purchase_rows"] == 256
    assert ev.loc[ev["feedback"] == 2, "session_id"].nunique() <= 138
    days = pd.to_datetime(ev["timestamp"], unit="s")
    assert days.min().strftime("%Y-%m-%d") == "2016-01-03"
    assert days.max() < pd.Timestamp("2016-06-03")
    full = load_diginetica(folder)
    s = full.stats
    assert s["purchases"] == 252  # 256 rows, 4 repeat (session, item) pairs
    assert s["purchases_matched"] + s["purchases_added"] == s["purchases"]
    assert len(full.events) == 12_391 + s["purchases_added"]
    assert full.events.loc[full.events["feedback"] == 2, "session_id"].nunique() == 138
    cats = pd.read_csv(folder / "product-categories.csv", sep=";")
    assert len(cats) == 184_047 and cats["categoryId"].nunique() == 1_217


def test_session_logs_validate(shared_data):
    data = load_diginetica(shared_data / "diginetica-cikm2016")
    logs = data.to_logs(size=10, seed=0)
    assert len(logs) == len(data.events) and logs.slate_size == 10
    assert set(logs.logs["feedback"]) == {1, 2}
    np.testing.assert_array_equal(logs.logs["click"], data.events["item_id"])


def test_converted_real_logs_round_trip(tmp_path, shared_data):
    from recgym.data import load_logs

    for name, ds in (
        ("obd", load_open_bandit(shared_data / "open-bandit-dataset-small", "bts", "all")
         .to_logs()),
        ("digi", load_diginetica(shared_data / "diginetica-cikm2016").to_logs()),
        ("coat", load_coat(shared_data / "coat").to_logs("train")),
    ):
        back = load_logs(ds.save(tmp_path / f"{name}.parquet"))
        pd.testing.assert_frame_equal(back.logs, ds.logs)
        pd.testing.assert_frame_equal(back.items, ds.items)
        assert back.num_items == ds.num_items
