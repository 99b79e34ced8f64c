"""MovieLens loaders (100K, 1M, 20M, latest-small) and their download.

Each release is read from the GroupLens files as distributed (``u.data`` / ``u.item`` /
``u.user`` for 100K, ``::``-separated ``.dat`` files for 1M and 10M, CSV files for 20M and
ml-latest-small) into one `MovieLens` object: the ratings with contiguous 0-based user
and item ids, an item table (original movie id, title, release year, genre flags) and,
where the release has them, user demographics and tags.

Only ml-latest-small may be redistributed (GroupLens terms); recgym ships it in
``envs_data/`` and ``load_movielens("ml-latest-small")`` uses that copy. The others are
found under ``root`` or downloaded from GroupLens with ``download=True`` (SHA-256 checked
against the digests TensorFlow Datasets pins in ``url_checksums/movielens.txt``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recgym.data.download import download_file, extract_zip
from recgym.data.paths import default_data_root, shipped_dataset_path

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class MovieLensRelease:
    """Where a MovieLens release comes from and what it holds."""

    name: str
    archive: str
    sha256: str
    size_bytes: int
    n_ratings: int
    n_users: int
    redistributable: bool

    @property
    def url(self) -> str:
        """Download URL of the zip archive."""
        return GROUPLENS_URL + self.archive


MOVIELENS_RELEASES: dict[str, MovieLensRelease] = {
    r.name: r
    for r in (
        MovieLensRelease("ml-100k", "ml-100k.zip",
                         "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                         4_924_029, 100_000, 943, False),
        MovieLensRelease("ml-1m", "ml-1m.zip",
                         "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                         5_917_549, 1_000_209, 6_040, False),
        MovieLensRelease("ml-20m", "ml-20m.zip",
                         "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                         198_702_078, 20_000_263, 138_493, False),
        MovieLensRelease("ml-latest-small", "ml-latest-small.zip",
                         "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                         978_202, 100_836, 610, True),
    )
}
_ALIASES = {
    "100k": "ml-100k", "ml100k": "ml-100k", "movielens-100k": "ml-100k",
    "1m": "ml-1m", "ml1m": "ml-1m", "movielens-1m": "ml-1m",
    "20m": "ml-20m", "ml20m": "ml-20m", "movielens-20m": "ml-20m",
    "latest-small": "ml-latest-small", "movielens-latest-small": "ml-latest-small",
}
# Folder names a release may have under a root (the zip's own, then recgym's shared copies).
_FOLDERS = {
    "ml-100k": ("ml-100k", "movielens-100k"),
    "ml-1m": ("ml-1m", "movielens-1m"),
    "ml-20m": ("ml-20m", "movielens-20m"),
    "ml-latest-small": ("ml-latest-small", "movielens-latest-small"),
}

_YEAR_IN_TITLE = r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$"


@dataclass
class MovieLens:
    """A MovieLens release, with contiguous ids.

    Attributes:
        name: release name, e.g. ``"ml-latest-small"``.
        interactions: one row per rating, in file order: ``user_id``, ``item_id`` (int32,
            0-based), ``rating`` (float32), ``timestamp`` (int64, unix seconds).
        items: indexed by ``item_id``: ``movie_id`` (original id), ``title``, ``year``
            (release year, nullable), ``release_date`` where known, ``genre_<name>`` flags.
        users: indexed by ``user_id``: ``raw_user_id`` and demographics where the release
            has them.
        tags: user tags (ml-latest-small, 20M) with mapped ids, else None.
        path: folder the files were read from.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    tags: pd.DataFrame | None
    path: Path

    @property
    def num_users(self) -> int:
        """Number of users."""
        return len(self.users)

    @property
    def num_items(self) -> int:
        """Number of movies in the item table (rated or not)."""
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"MovieLens({self.name!r}: {len(self.interactions):,} ratings, "
            f"{self.num_users:,} users, {self.num_items:,} movies, from {self.path})"
        )


# ----------------------------------------------------------------------------- finding files


def canonical_movielens_name(name: str) -> str:
    """Map aliases (``"100k"``, ``"movielens-latest-small"``, ...) to a release name."""
    key = name.lower().strip()
    key = _ALIASES.get(key, key)
    if key not in MOVIELENS_RELEASES:
        raise ValueError(
            f"unknown MovieLens release {name!r}; known: {sorted(MOVIELENS_RELEASES)} "
            "(or pass the path of a folder holding the files)"
        )
    return key


def detect_movielens_format(folder: Path) -> str | None:
    """Return ``"100k"``, ``"dat"`` (1M/10M) or ``"csv"`` (20M/latest) from the files present."""
    if (folder / "u.data").is_file():
        return "100k"
    if (folder / "ratings.dat").is_file():
        return "dat"
    if (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file():
        return "csv"
    return None


def find_movielens(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """Return the folder holding release `name` under `root` (or the shipped copy), or None."""
    release = canonical_movielens_name(name)
    if root is None and release == "ml-latest-small":
        try:
            return shipped_dataset_path("ml-latest-small")
        except (FileNotFoundError, KeyError):
            root = None
    base = Path(root).expanduser() if root is not None else default_data_root()
    for folder in (base, *(base / f for f in _FOLDERS[release])):
        if folder.is_dir() and detect_movielens_format(folder):
            if folder == base and base.name not in _FOLDERS[release]:
                continue  # a bare root only counts when it is named for the release
            return folder
    return None


def download_movielens(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download and unpack release `name` under `root`; return its folder.

    The zip is checked against its pinned SHA-256 before it is unpacked.
    """
    release = MOVIELENS_RELEASES[canonical_movielens_name(name)]
    base = Path(root).expanduser() if root is not None else default_data_root()
    archive = download_file(release.url, base / release.archive, sha256=release.sha256)
    extract_zip(archive, base / f".{release.name}-unpacked")
    unpacked = base / f".{release.name}-unpacked" / release.name
    target = base / release.name
    if target.exists():
        raise FileExistsError(f"{target} exists but holds no MovieLens files; remove it")
    os.replace(unpacked, target)
    (base / f".{release.name}-unpacked").rmdir()
    return target


# ----------------------------------------------------------------------------- readers


def _read_dat(path: Path, names: list[str], dtypes: dict | None = None) -> pd.DataFrame:
    """Read a ``::``-separated GroupLens .dat file with the fast C parser."""
    raw = path.read_bytes().replace(b"::", b"\t")
    return pd.read_csv(
        io.BytesIO(raw), sep="\t", header=None, names=names, dtype=dtypes,
        encoding="latin-1", quoting=3, engine="c",
    )


def read_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """Read a raw MovieLens ratings file into ``user, movie, rating, timestamp`` columns.

    Understands ``u.data`` (tab-separated), ``ratings.dat`` (``UserID::MovieID::Rating::
    Timestamp``, ML-1M and ML-10M) and ``ratings.csv`` (``userId,movieId,rating,timestamp``
    with a header, ML-20M and ml-latest). Ids keep their original values.
    """
    path = Path(path)
    dtypes = {"user": np.int32, "movie": np.int32, "rating": np.float32, "timestamp": np.int64}
    names = list(dtypes)
    if path.suffix == ".dat":
        return _read_dat(path, names, dtypes)
    if path.suffix == ".csv":
        frame = pd.read_csv(
            path,
            dtype={"userId": np.int32, "movieId": np.int32, "rating": np.float32,
                   "timestamp": np.int64},
            engine="c",  # leaner than the pyarrow engine here: ~1 GiB peak for ML-20M
        )
        missing = {"userId", "movieId", "rating", "timestamp"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: expected columns userId,movieId,rating,timestamp; "
                             f"missing {sorted(missing)}")
        return frame.rename(columns={"userId": "user", "movieId": "movie"})[names]
    return pd.read_csv(path, sep="\t", header=None, names=names, dtype=dtypes, engine="c")


def _genre_flags(genres: pd.Series) -> pd.DataFrame:
    dummies = genres.fillna("").str.get_dummies(sep="|")
    dummies.columns = [f"genre_{c}" for c in dummies.columns]
    return dummies.astype(np.uint8)


def _year_from_title(title: pd.Series) -> pd.Series:
    return pd.to_numeric(title.str.extract(_YEAR_IN_TITLE, expand=False),
                         errors="coerce").astype("Int64")


def _read_movies(folder: Path, fmt: str) -> pd.DataFrame:
    """Movie table with original ids: movie, title, year, [release_date], genre_* flags."""
    if fmt == "100k":
        genre_names = pd.read_csv(folder / "u.genre", sep="|", header=None, names=["g", "i"],
                                  encoding="latin-1").dropna()["g"].tolist()
        cols = ["movie", "title", "release_date", "video_release_date", "imdb_url", *genre_names]
        raw = pd.read_csv(folder / "u.item", sep="|", header=None, names=cols,
                          encoding="latin-1", quoting=3)
        date = pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce")
        year = date.dt.year.astype("Int64")
        year = year.fillna(_year_from_title(raw["title"]))
        flags = raw[genre_names].astype(np.uint8)
        flags.columns = [f"genre_{g}" for g in genre_names]
        base = pd.DataFrame({"movie": raw["movie"].astype(np.int64), "title": raw["title"],
                             "year": year, "release_date": date, "imdb_url": raw["imdb_url"]})
        return pd.concat([base, flags], axis=1)
    if fmt == "dat":
        raw = _read_dat(folder / "movies.dat", ["movie", "title", "genres"])
    else:
        raw = pd.read_csv(folder / "movies.csv", dtype={"movieId": np.int64}).rename(
            columns={"movieId": "movie"})
    base = pd.DataFrame({"movie": raw["movie"].astype(np.int64), "title": raw["title"],
                         "year": _year_from_title(raw["title"])})
    out = pd.concat([base, _genre_flags(raw["genres"])], axis=1)
    links = folder / "links.csv"
    if fmt == "csv" and links.is_file():
        lk = pd.read_csv(links, dtype={"movieId": np.int64, "imdbId": str, "tmdbId": "Int64"})
        out = out.merge(lk.rename(columns={"movieId": "movie", "imdbId": "imdb_id",
                                           "tmdbId": "tmdb_id"}), on="movie", how="left")
    return out


def _read_users(folder: Path, fmt: str) -> pd.DataFrame | None:
    if fmt == "100k" and (folder / "u.user").is_file():
        return pd.read_csv(folder / "u.user", sep="|", header=None,
                           names=["user", "age", "gender", "occupation", "zip"],
                           dtype={"zip": str}, encoding="latin-1")
    if fmt == "dat" and (folder / "users.dat").is_file():
        return _read_dat(folder / "users.dat",
                         ["user", "gender", "age", "occupation", "zip"], {"zip": str})
    return None


def read_movielens_folder(folder: str | os.PathLike, name: str | None = None) -> MovieLens:
    """Read the MovieLens files in `folder` (format detected from the file names)."""
    folder = Path(folder).expanduser()
    fmt = detect_movielens_format(folder)
    if fmt is None:
        raise FileNotFoundError(
            f"{folder} holds no MovieLens ratings (looked for u.data, ratings.dat, ratings.csv "
            "with movies.csv)"
        )
    ratings_file = {"100k": "u.data", "dat": "ratings.dat", "csv": "ratings.csv"}[fmt]
    ratings = read_ratings(folder / ratings_file)
    movies = _read_movies(folder, fmt)

    # Contiguous ids: items over every listed (or rated) movie, users over raters.
    movie_ids = np.union1d(movies["movie"].to_numpy(), ratings["movie"].to_numpy())
    missing = np.setdiff1d(movie_ids, movies["movie"].to_numpy())
    if len(missing):
        movies = pd.concat([movies, pd.DataFrame({"movie": missing})], ignore_index=True)
    movies = movies.sort_values("movie", kind="stable").reset_index(drop=True)
    movies.index.name = "item_id"
    movies = movies.rename(columns={"movie": "movie_id"})

    users_table = _read_users(folder, fmt)
    user_ids = np.unique(ratings["user"].to_numpy())
    if users_table is not None:
        user_ids = np.union1d(user_ids, users_table["user"].to_numpy())
        users = users_table.set_index("user").reindex(user_ids).reset_index()
    else:
        users = pd.DataFrame({"user": user_ids})
    users = users.rename(columns={"user": "raw_user_id"})
    users.index.name = "user_id"

    interactions = pd.DataFrame({
        "user_id": np.searchsorted(user_ids, ratings["user"].to_numpy()).astype(np.int32),
        "item_id": np.searchsorted(movie_ids, ratings["movie"].to_numpy()).astype(np.int32),
        "rating": ratings["rating"].to_numpy(np.float32),
        "timestamp": ratings["timestamp"].to_numpy(np.int64),
    })
    tags = None
    if fmt == "csv" and (folder / "tags.csv").is_file():
        raw_tags = pd.read_csv(folder / "tags.csv", dtype={"tag": str})
        known = np.isin(raw_tags["userId"], user_ids) & np.isin(raw_tags["movieId"], movie_ids)
        raw_tags = raw_tags[known]
        tags = pd.DataFrame({
            "user_id": np.searchsorted(user_ids, raw_tags["userId"].to_numpy()),
            "item_id": np.searchsorted(movie_ids, raw_tags["movieId"].to_numpy()),
            "tag": raw_tags["tag"].to_numpy(),
            "timestamp": raw_tags["timestamp"].to_numpy(np.int64),
        })
    if name is None:
        name = _ALIASES.get(folder.name.lower(), folder.name)
    return MovieLens(name=name, interactions=interactions, items=movies, users=users,
                     tags=tags, path=folder)


def load_movielens(
    name: str | os.PathLike,
    root: str | os.PathLike | None = None,
    download: bool = False,
) -> MovieLens:
    """Load a MovieLens release by name, finding (or downloading) its files.

    Args:
        name: ``"ml-100k"``, ``"ml-1m"``, ``"ml-20m"`` or ``"ml-latest-small"`` (aliases
            such as ``"100k"`` work), or the path of a folder holding MovieLens files.
        root: folder to look in: ``root/<name>/`` (the zip's folder name), recgym's shared
            folder names (``root/movielens-100k/``), or ``root`` itself when it is named
            for the release. Defaults to the shipped copy for ml-latest-small, else
            ``$RECGYM_DATA`` or ``~/.cache/recgym/data``.
        download: fetch the zip from GroupLens into `root` when the files are not found.

    Raises:
        FileNotFoundError: the files are not there and ``download`` is False.
    """
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return read_movielens_folder(as_path)
    release = canonical_movielens_name(str(name))
    folder = find_movielens(release, root)
    if folder is None:
        if not download:
            base = Path(root).expanduser() if root is not None else default_data_root()
            raise FileNotFoundError(
                f"MovieLens {release} not found under {base} (looked for "
                f"{', '.join(_FOLDERS[release])}). Pass root= the folder holding it, or "
                f"download=True to fetch {MOVIELENS_RELEASES[release].url} (see the "
                "GroupLens terms in its README)."
            )
        folder = download_movielens(release, root)
    return read_movielens_folder(folder, name=release)
