"""Collaborative-filtering data: the Liang et al. (2018) preprocessing and split.

Mult-VAE (Liang et al., WWW 2018), RaCT (Lobel et al., ICLR 2020, appendix A and E.1) and
CF-SFL (table 1) all evaluate under *strong generalisation* on ML-20M, Netflix and MSD:

* binarise: keep ratings >= 4 (ML-20M, Netflix) or every play (MSD) as a 1;
* filter once, items first: songs listened to by >= 200 users (MSD only), then users with
  >= 5 interactions (ML-20M, Netflix) or >= 20 songs (MSD);
* shuffle the users with a seeded permutation; the last ``2 * n_heldout`` are validation
  and test users (10K / 40K / 50K each), the rest train;
* keep only items seen in the training users' rows (in order of first appearance);
* each held-out user with >= 5 items has ``int(0.2 * n)`` of them drawn at random as the
  *target* set, the rest are the *fold-in* input; users with fewer keep all as fold-in.

With ``seed=98765`` (the value in Liang et al.'s released notebook) the permutation and the
per-user draws consume a legacy ``numpy.random.RandomState`` in the same order as that
notebook (users in id order, validation then test, re-seeded), so the split matches it
for the same input file. Everything stays sparse: the result is scipy CSR matrices.

Also here: readers for the raw ML-20M (``ratings.csv``), Netflix Prize (``mv_*.txt`` or
``combined_data_*.txt``) and MSD taste-profile (``train_triplets.txt``) formats, and the
binarised ML-1M train/test files of the LCF / RecZoo split, and `planted_interactions`, an
ML-20M-shaped synthetic matrix drawn from a known low-rank preference model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recgym.data.movielens import read_ratings

LIANG_SEED = 98765


@dataclass(frozen=True)
class LiangConfig:
    """Preprocessing constants of one dataset in Liang et al. (2018) / RaCT appendix E.1."""

    min_rating: float | None
    min_user_count: int
    min_item_count: int
    n_heldout_users: int


LIANG_PRESETS: dict[str, LiangConfig] = {
    "ml-20m": LiangConfig(4.0, 5, 0, 10_000),
    "netflix": LiangConfig(4.0, 5, 0, 40_000),
    "msd": LiangConfig(None, 20, 200, 50_000),
}


# ----------------------------------------------------------------------------- helpers


def _positions(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each value in `keys` (-1 if absent); dense lookup for small int ids."""
    if (
        values.dtype.kind in "iu"
        and keys.dtype.kind in "iu"
        and len(keys)
        and keys.min() >= 0
        and values.min(initial=0) >= 0
    ):
        top = int(max(keys.max(), values.max(initial=0))) + 1
        if top <= 4 * len(values) + 10_000_000:
            table = np.full(top, -1, dtype=np.int64)
            table[keys] = np.arange(len(keys))
            return table[values]
    return pd.Index(keys).get_indexer(values)


def interactions_to_csr(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Binary CSR matrix (float32 ones) from row / column indices; duplicates count once."""
    data = np.ones(len(rows), dtype=np.float32)
    mat = sp.csr_matrix((data, (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


# ----------------------------------------------------------------------------- preprocessing


def liang_preprocess(
    interactions: pd.DataFrame,
    *,
    min_rating: float | None = 4.0,
    min_user_count: int = 5,
    min_item_count: int = 0,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str = "rating",
) -> pd.DataFrame:
    """Binarise and filter interactions as Liang et al. (2018) did.

    Args:
        interactions: one row per (user, item) event, any id types.
        min_rating: keep rows with ``rating >= min_rating`` (4.0 for ML-20M and Netflix,
            i.e. their ``> 3.5``); None keeps every row (MSD play counts).
        min_user_count: then keep users with at least this many remaining rows.
        min_item_count: first keep items with at least this many rows (MSD: 200);
            0 skips the item filter, as for ML-20M and Netflix.
        user_col: column of user ids.
        item_col: column of item ids.
        rating_col: column of ratings (only read when `min_rating` is set).

    Returns:
        The kept rows (all columns, original order, fresh index), duplicates of a
        (user, item) pair removed. The filters run once, not to a fixed point, as in
        the original, so an item may end below `min_item_count` after the user filter.
    """
    for col in (user_col, item_col) + ((rating_col,) if min_rating is not None else ()):
        if col not in interactions.columns:
            raise KeyError(f"liang_preprocess needs column {col!r}; columns are "
                           f"{list(interactions.columns)}")
    keep = np.ones(len(interactions), dtype=bool)
    if min_rating is not None:
        keep &= interactions[rating_col].to_numpy() >= min_rating
    frame = interactions.loc[keep] if not keep.all() else interactions
    dup = frame.duplicated([user_col, item_col]).to_numpy()
    if dup.any():
        frame = frame.loc[~dup]
    if min_item_count > 0:
        codes, _ = pd.factorize(frame[item_col])
        counts = np.bincount(codes)
        frame = frame.loc[counts[codes] >= min_item_count]
    if min_user_count > 0:
        codes, _ = pd.factorize(frame[user_col])
        counts = np.bincount(codes)
        frame = frame.loc[counts[codes] >= min_user_count]
    return frame.reset_index(drop=True)


@dataclass
class StrongGeneralizationSplit:
    """Users split into train / validation / test; held-out histories into fold-in / target.

    Every matrix is scipy CSR with float32 ones and ``len(item_ids)`` columns. Row ``r`` of
    `train` is user ``train_users[r]``; rows of the validation and test matrices follow
    `val_users` and `test_users` (original ids, in the shuffled order).
    """

    train: sp.csr_matrix
    val_fold_in: sp.csr_matrix
    val_target: sp.csr_matrix
    test_fold_in: sp.csr_matrix
    test_target: sp.csr_matrix
    item_ids: np.ndarray
    train_users: np.ndarray
    val_users: np.ndarray
    test_users: np.ndarray

    @property
    def num_items(self) -> int:
        """Number of items (columns): those seen in the training users' rows."""
        return len(self.item_ids)

    def summary(self) -> str:
        """A few lines of counts, for logs and `recgym data info`."""
        def nnz(m: sp.csr_matrix) -> str:
            return f"{m.nnz:,}"

        return "\n".join([
            f"items: {self.num_items:,}",
            f"train: {len(self.train_users):,} users, {nnz(self.train)} interactions",
            f"validation: {len(self.val_users):,} users, fold-in {nnz(self.val_fold_in)}, "
            f"target {nnz(self.val_target)}",
            f"test: {len(self.test_users):,} users, fold-in {nnz(self.test_fold_in)}, "
            f"target {nnz(self.test_target)}",
        ])


def _fold_in_target(
    user_ids: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    n_rows: int,
    n_items: int,
    seed: int,
    target_prop: float,
    min_items_for_target: int,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each held-out user's items into fold-in and target, Liang's draw order."""
    order = np.argsort(user_ids, kind="stable")  # users by id, file order within a user
    sorted_users = user_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    is_target_sorted = np.zeros(len(order), dtype=bool)
    rng = np.random.RandomState(seed)
    for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
        if size >= min_items_for_target:
            pick = rng.choice(size, size=int(target_prop * size), replace=False)
            is_target_sorted[start + pick] = True
    is_target = np.empty(len(order), dtype=bool)
    is_target[order] = is_target_sorted
    shape = (n_rows, n_items)
    fold_in = interactions_to_csr(rows[~is_target], cols[~is_target], shape)
    target = interactions_to_csr(rows[is_target], cols[is_target], shape)
    return fold_in, target


def strong_generalization_split(
    interactions: pd.DataFrame,
    n_heldout_users: int,
    *,
    seed: int = LIANG_SEED,
    target_prop: float = 0.2,
    min_items_for_target: int = 5,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> StrongGeneralizationSplit:
    """Split users into train / validation / test and held-out histories into fold-in / target.

    Args:
        interactions: binarised rows (e.g. from `liang_preprocess`), in file order.
        n_heldout_users: number of validation users, and also of test users.
        seed: seeds the user permutation and the target draws (98765 reproduces Liang
            et al.'s notebook on the same input).
        target_prop: share of each held-out user's items drawn as targets (0.2).
        min_items_for_target: held-out users with fewer items keep all as fold-in.
        user_col: column of user ids.
        item_col: column of item ids.
    """
    users_col = interactions[user_col].to_numpy()
    items_col = interactions[item_col].to_numpy()
    unique_users = np.unique(users_col)
    n_users = len(unique_users)
    if n_heldout_users < 1 or 2 * n_heldout_users >= n_users:
        raise ValueError(
            f"n_heldout_users={n_heldout_users} leaves no training users: there are "
            f"{n_users:,} users, so use at most {(n_users - 1) // 2:,}"
        )
    perm = np.random.RandomState(seed).permutation(n_users)
    shuffled = unique_users[perm]
    n_train = n_users - 2 * n_heldout_users
    rank = _positions(users_col, shuffled)

    train_rows = rank < n_train
    item_ids = pd.unique(items_col[train_rows])
    col = _positions(items_col, item_ids)
    n_items = len(item_ids)
    train = interactions_to_csr(rank[train_rows], col[train_rows], (n_train, n_items))

    parts = []
    for offset in (n_train, n_train + n_heldout_users):
        sel = (rank >= offset) & (rank < offset + n_heldout_users) & (col >= 0)
        parts.append(_fold_in_target(
            users_col[sel], rank[sel] - offset, col[sel], n_heldout_users, n_items,
            seed, target_prop, min_items_for_target,
        ))
    return StrongGeneralizationSplit(
        train=train,
        val_fold_in=parts[0][0],
        val_target=parts[0][1],
        test_fold_in=parts[1][0],
        test_target=parts[1][1],
        item_ids=np.asarray(item_ids),
        train_users=shuffled[:n_train],
        val_users=shuffled[n_train:n_train + n_heldout_users],
        test_users=shuffled[n_train + n_heldout_users:],
    )


# ----------------------------------------------------------------------------- raw formats


def read_ml20m_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """Read ML-20M ``ratings.csv`` (or ML-1M ``ratings.dat``) as original-id columns.

    Returns ``user_id``, ``item_id`` (original MovieLens ids), ``rating``, ``timestamp``.
    """
    frame = read_ratings(path)
    return frame.rename(columns={"user": "user_id", "movie": "item_id"})


def read_netflix(path: str | os.PathLike) -> pd.DataFrame:
    """Read Netflix Prize ratings: ``user_id`` (CustomerID), ``item_id`` (MovieID), ``rating``.

    `path` is one file or a folder of them, in either distributed layout: the original
    ``training_set/mv_0000001.txt`` files or Kaggle's ``combined_data_1.txt`` .. ``_4``.
    Both are blocks that start with a ``MovieID:`` line followed by
    ``CustomerID,Rating,YYYY-MM-DD`` lines. Also returns ``date`` (datetime64).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("combined_data_*.txt")) or sorted(path.glob("mv_*.txt"))
        if not files and (path / "training_set").is_dir():
            files = sorted((path / "training_set").glob("mv_*.txt"))
        if not files:
            raise FileNotFoundError(f"no combined_data_*.txt or mv_*.txt files in {path}")
        return pd.concat([read_netflix(f) for f in files], ignore_index=True)
    raw = pd.read_csv(path, header=None, names=["a", "rating", "date"], dtype={"a": str},
                      engine="c")
    header = raw["rating"].isna().to_numpy()
    if not header.any() or not header[0]:
        raise ValueError(f"{path} does not start with a 'MovieID:' line (Netflix Prize format)")
    a = raw["a"].to_numpy()
    movie_of_block = pd.to_numeric(pd.Series(a[header]).str.rstrip(":"), errors="raise")
    block = np.cumsum(header) - 1
    body = ~header
    return pd.DataFrame({
        "user_id": pd.to_numeric(pd.Series(a[body])).to_numpy(np.int64),
        "item_id": movie_of_block.to_numpy(np.int64)[block[body]],
        "rating": raw["rating"].to_numpy()[body].astype(np.float32),
        "date": pd.to_datetime(raw["date"].to_numpy()[body]),
    })


def read_msd_triplets(path: str | os.PathLike) -> pd.DataFrame:
    """Read the MSD taste-profile ``train_triplets.txt`` (``user<TAB>song<TAB>count``).

    Returns ``user``, ``song`` (original string ids), ``play_count`` and integer codes
    ``user_id`` / ``item_id`` (order of first appearance) for the CF functions.
    """
    raw = pd.read_csv(path, sep="\t", header=None, names=["user", "song", "play_count"],
                      dtype={"user": str, "song": str, "play_count": np.int32}, engine="c")
    raw["user_id"] = pd.factorize(raw["user"])[0].astype(np.int32)
    raw["item_id"] = pd.factorize(raw["song"])[0].astype(np.int32)
    return raw


def load_liang_dataset(
    name: str,
    path: str | os.PathLike,
    *,
    n_heldout_users: int | None = None,
    seed: int = LIANG_SEED,
) -> tuple[pd.DataFrame, StrongGeneralizationSplit]:
    """Read raw ML-20M / Netflix / MSD data, preprocess and split it as Liang et al. did.

    Args:
        name: ``"ml-20m"``, ``"netflix"`` or ``"msd"`` (selects reader and `LIANG_PRESETS`).
        path: the ratings file (or Netflix folder, or MSD triplets file).
        n_heldout_users: override the preset (10K / 40K / 50K), e.g. for small samples.
        seed: split seed.

    Returns:
        The preprocessed interactions and their strong-generalisation split.
    """
    key = name.lower()
    if key not in LIANG_PRESETS:
        raise ValueError(f"unknown Liang dataset {name!r}; known: {sorted(LIANG_PRESETS)}")
    cfg = LIANG_PRESETS[key]
    reader = {"ml-20m": read_ml20m_ratings, "netflix": read_netflix, "msd": read_msd_triplets}
    raw = reader[key](path)
    data = liang_preprocess(raw, min_rating=cfg.min_rating, min_user_count=cfg.min_user_count,
                            min_item_count=cfg.min_item_count)
    held = cfg.n_heldout_users if n_heldout_users is None else n_heldout_users
    return data, strong_generalization_split(data, held, seed=seed)


PLANTED_NAME = re.compile(r"planted-(\d+)x(\d+)(?:-s(\d+))?$")


def planted_interactions(num_users: int, num_items: int, *, dim: int = 16,
                         taste_scale: float = 1.5, popularity_exponent: float = 0.8,
                         median_items: float = 40.0, seed: int = 0) -> pd.DataFrame:
    """Binary interactions drawn from a planted multinomial preference model, ML-20M-shaped.

    Each user u has a taste ``z_u ~ N(0, I_dim)``, each item j a vector ``v_j`` and a
    popularity bias ``-popularity_exponent * log(rank_j)`` (a Zipf head and long tail; at the
    defaults the most popular item reaches about 59% of the users and the top 1% of the items
    take 11% of the interactions, ML-1M's 52% and 7.5%), and u picks ``n_u`` distinct items
    without replacement from ``softmax(bias + z_u . v_j)`` (Gumbel top-k). ``n_u = 5 +
    LogNormal(log(median_items), 1)``, capped at a quarter of the catalogue: ML-20M's
    binarised users have at least 5 items and a mean of 73 (here about 71). ``taste_scale``
    is the standard deviation of the taste term: preferences are personal, but the popular
    items still lead.

    Used to test collaborative-filtering claims made at ML-20M scale on more users than
    MovieLens-1M has, with a structure the models can learn (docs/cf.md).

    Returns:
        ``user_id``, ``item_id`` columns (int32), one row per interaction, binarised.
    """
    if num_users < 10 or num_items < 20:
        raise ValueError(f"planted matrix of {num_users} users x {num_items} items is too small: "
                         "need at least 10 users and 20 items")
    rng = np.random.default_rng(seed)
    bias = -popularity_exponent * np.log(np.arange(1, num_items + 1))
    items = rng.normal(0.0, taste_scale / np.sqrt(dim), (num_items, dim))
    counts = 5 + np.round(rng.lognormal(np.log(median_items), 1.0, num_users)).astype(np.int64)
    counts = np.minimum(counts, num_items // 4)
    rows, cols = [], []
    positions = np.arange(num_items)
    for start in range(0, num_users, 1000):
        stop = min(start + 1000, num_users)
        taste = rng.normal(0.0, 1.0, (stop - start, dim))
        keys = bias + taste @ items.T + rng.gumbel(size=(stop - start, num_items))
        order = np.argsort(-keys, axis=1)
        chosen = positions[None, :] < counts[start:stop, None]
        rows.append(np.nonzero(chosen)[0] + start)
        cols.append(order[chosen])
    return pd.DataFrame({"user_id": np.concatenate(rows).astype(np.int32),
                         "item_id": np.concatenate(cols).astype(np.int32)})


# ----------------------------------------------------------------------------- ML-1M implicit


@dataclass
class ImplicitSplit:
    """A binarised train/test split: (user_id, item_id) pairs with 0-based ids."""

    train: pd.DataFrame
    test: pd.DataFrame
    num_users: int
    num_items: int

    def matrix(self, part: str = "train") -> sp.csr_matrix:
        """The `part` ("train" or "test") as a (num_users, num_items) binary CSR matrix."""
        frame = {"train": self.train, "test": self.test}[part]
        return interactions_to_csr(frame["user_id"].to_numpy(), frame["item_id"].to_numpy(),
                                   (self.num_users, self.num_items))


def _read_adjacency_lists(path: Path) -> pd.DataFrame:
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = np.array(fields, dtype=np.int64)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected 'user item item ...' integers, "
                                 f"got {line.strip()[:80]!r}") from None
            users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
            items.append(ids[1:])
    return pd.DataFrame({
        "user_id": np.concatenate(users) if users else np.zeros(0, np.int64),
        "item_id": np.concatenate(items) if items else np.zeros(0, np.int64),
    })


def load_ml1m_implicit(root: str | os.PathLike) -> ImplicitSplit:
    """Load the binarised ML-1M train/test files of the LCF / RecZoo split.

    `root` holds ``train.txt`` and ``test.txt``, each line ``user item item ...`` with
    0-based ids (6,022 users and 3,043 items in the RecZoo copy).
    """
    root = Path(root).expanduser()
    for name in ("train.txt", "test.txt"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} is missing (ML-1M implicit LCF format)")
    train = _read_adjacency_lists(root / "train.txt")
    test = _read_adjacency_lists(root / "test.txt")
    both = pd.concat([train, test])
    return ImplicitSplit(train=train, test=test,
                         num_users=int(both["user_id"].max()) + 1,
                         num_items=int(both["item_id"].max()) + 1)
